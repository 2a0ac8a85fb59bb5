"""Checks before a search starts: the training run's checks (``trainables.preflight``) plus the MLflow store.

Each check raises ``ConfigError`` with one line that names the problem and the fix; ``tuner.run`` prints it as
``error: ...`` and exits 2, before Ray starts and before anything is created.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from trainables.config import ConfigError
from trainables.preflight import check_train_run, check_writable_dir


def check_mlflow_uri(uri: str, tries: int = 2, timeout: float = 3.0) -> None:
    """An http(s) tracking server answers one request (any HTTP status); a sqlite store's folder is writable."""
    if uri.startswith("sqlite:///"):
        check_writable_dir(Path(uri.removeprefix("sqlite:///")).parent, f"--mlflow-uri {uri}: folder")
        return
    if not uri.startswith(("http://", "https://")):
        return
    reason = ""
    for attempt in range(tries):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
            return
        except urllib.error.HTTPError:
            return  # the server answered
        except (urllib.error.URLError, OSError) as e:
            reason = str(getattr(e, "reason", e))
            if attempt + 1 < tries:
                time.sleep(0.5)
    raise ConfigError(f"--mlflow-uri {uri}: no MLflow server answers ({reason}); start it (mlflow server "
                      f"--host 127.0.0.1 --port PORT) or drop --mlflow-uri for sqlite in the run directory")


def check_search(ctx: Any) -> None:
    """Everything a ``SearchContext`` needs before Ray starts: run directory, MLflow, cluster, GPUs, assets."""
    check_writable_dir(ctx.path, "run directory")
    check_mlflow_uri(ctx.mlflow_uri)
    check_train_run(ctx.trial_config({}), ctx.gpus_per_worker, ctx.workers_per_trial, ctx.address)
