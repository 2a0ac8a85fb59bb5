"""The SLURM jobs use the tools of the interpreter running the tests, not whatever `ray` is on PATH."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def test_jobs_find_this_interpreter_s_ray_and_python(job_env: dict[str, str]) -> None:
    bin_dir = Path(sys.executable).parent
    assert job_env["PATH"].split(os.pathsep)[0] == str(bin_dir)
    assert shutil.which("ray", path=job_env["PATH"]) == str(bin_dir / "ray")
    assert shutil.which(Path(sys.executable).name, path=job_env["PATH"]) == sys.executable
