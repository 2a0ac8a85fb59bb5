"""Where a search's output goes: the console shows the search, ``<run_dir>/logs/`` holds everything else.

    python -m tuner.run ...              # console: world build, baseline, progress line, trial lines, summary
    python -m tuner.run ... --verbose    # the same, plus Tune's status table, every worker line, library INFO
    tail -f <run_dir>/logs/workers.log   # Ray workers' stdout/stderr: Train controllers and workers, lm-eval, raylet
    less <run_dir>/logs/driver.log       # library loggers (ray, tune, mlflow, optuna) from INFO up, Tune's table

Worker lines reach the driver through Ray's log stream (``ray.init(log_to_driver=True)``); by default they go to
``workers.log`` instead of the console, so lines Ray flushes late cannot follow the summary (which is printed
after ``ray.shutdown()`` anyway). Library loggers keep
their console handlers for warnings and errors; a few known-harmless warnings are dropped there by message.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

LIBRARY_LOGGERS = ("ray", "mlflow", "optuna", "alembic")
HARMLESS = (  # (logger, message regex): warnings that need no action from the user of a search
    ("ray", r"^Token authentication is enabled for this Ray cluster"),  # the local default since Ray 2.59
    # Tune's warn_if_slow (0.5 s): the boundary sampler's GP fit inside searcher calls trips it on every trial
    ("ray", r"^The `[\w.]+` operation took [\d.]+ s, which may be a performance bottleneck\.$"),
    # the same check on the result callbacks (the status file, MLflow curves) on a loaded machine
    ("ray", r"^Processing trial results took [\d.]+ s, which may be a performance bottleneck\."),
)
WORKER_HANDLER = "unlearn_tuner_logs"


def log_dir(run_dir: Path) -> Path:
    path = Path(run_dir) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Harmless(logging.Filter):
    """Drops the records of one logger tree whose message matches a known-harmless pattern."""

    def __init__(self, patterns: list[str]) -> None:
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(p.search(record.getMessage()) for p in self.patterns)


def quiet_libraries(verbose: bool) -> None:
    """Before ``ray.init``: library console handlers show only warnings and errors (everything with
    ``verbose``), known-harmless ones dropped."""
    for name in LIBRARY_LOGGERS:
        patterns = [p for n, p in HARMLESS if n == name]
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, _DriverLog):
                continue
            if not verbose:
                handler.setLevel(max(handler.level, logging.WARNING))
            if patterns and not any(isinstance(f, _Harmless) for f in handler.filters):
                handler.addFilter(_Harmless(patterns))


class _DriverLog(logging.FileHandler):
    """``logs/driver.log``; one per process (a later search in the same process replaces it)."""


def route_driver_logs(run_dir: Path) -> None:
    """Library loggers from INFO up also to ``logs/driver.log`` (once the run directory exists)."""
    file = _DriverLog(log_dir(run_dir) / "driver.log")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _DriverLog)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(file)


class WorkerLogFile:
    """A handler of Ray's worker log stream: each line, prefixed like Ray's console, appended to one file."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the Ray connection
        self.lock = threading.Lock()

    def __call__(self, data: dict[str, Any]) -> None:
        who = data.get("actor_name") or data.get("task_name") or ""
        stream = ", stderr" if data.get("is_err") else ""
        prefix = f"({who + ' ' if who else ''}pid={data.get('pid')}, ip={data.get('ip')}{stream})"
        with self.lock:
            self.file.writelines(f"{prefix} {line}\n" for line in data.get("lines", []))


def route_worker_logs(run_dir: Path, verbose: bool) -> None:
    """After ``ray.init(log_to_driver=True)``: worker lines, and the raylet's messages pushed to the driver
    ("N PYTHON worker processes have been started ..."), to ``logs/workers.log``; to the console too only with
    ``verbose``. Uses the handler registry Ray's own client server uses for the worker stream; the raylet's
    messages bypass it (``print_to_stdstream`` in the driver's error listener), so that function is replaced."""
    import ray._private.worker as ray_worker
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    handler = WorkerLogFile(log_dir(run_dir) / "workers.log")
    dispatcher.remove_handler(WORKER_HANDLER)
    dispatcher.add_handler(WORKER_HANDLER, handler)
    if not verbose:
        dispatcher.remove_handler("ray_print_logs")
        ray_worker.print_to_stdstream = lambda data, ignore_prefix: handler(data)
