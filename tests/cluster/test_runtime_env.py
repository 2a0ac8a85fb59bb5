"""What ``cluster.submit`` uploads as the job's working_dir, matched by Ray's own exclude matcher."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from ray._private.runtime_env.packaging import _get_excludes

from cluster.submit import runtime_env

ROOT = Path(__file__).resolve().parents[2]


def test_released_world_weights_are_uploaded_and_other_checkpoints_are_not(tmp_path):
    env = runtime_env(Namespace(working_dir=ROOT, hf_offline=False, mlflow_uri=None, report_interval=5))
    excluded = _get_excludes(ROOT, env["excludes"])
    released = sorted((ROOT / "trainables" / "miniworld" / "released").glob("*/*.safetensors"))
    assert released and not any(excluded(p) for p in released)
    assert excluded(ROOT / "runs" / "x" / "adapter" / "adapter_model.safetensors")
    assert excluded(ROOT / "outputs" / "model.safetensors") and excluded(ROOT / ".venv" / "bin" / "python")
