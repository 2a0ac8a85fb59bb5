"""MLflow tracking: one parent run per search, one child run per trial (tag ``mlflow.parentRunId``).

    mlflow ui --backend-store-uri sqlite:///<run_dir>/mlflow.db          # the default store

Uses ``MlflowClient`` with explicit run ids (no global active run), so the search driver, the trial
drivers and the Train controllers can all log to the same runs. Child runs are looked up by their
``trial_id`` tag before one is created, so a resumed search never duplicates a trial's run.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

SECRET = re.compile(r"token|secret|password|api_key|credential", re.IGNORECASE)


def relocate_store(db: Path, old_dir: Path, new_dir: Path) -> int:
    """Point a moved run directory's sqlite store at its new artifact folder; returns the rows changed.

    MLflow keeps absolute ``file://`` artifact locations per experiment and run, and has no API to change
    them, so this rewrites the ``experiments.artifact_location`` and ``runs.artifact_uri`` prefixes in place.
    """
    if not Path(db).is_file():  # the search stopped before MLflow was opened: nothing to point elsewhere
        return 0
    old, new = Path(old_dir).as_uri(), Path(new_dir).as_uri()
    changed = 0
    with sqlite3.connect(db) as con:
        for table, column, key in (("experiments", "artifact_location", "experiment_id"),
                                   ("runs", "artifact_uri", "run_uuid")):
            rows = con.execute(f"SELECT {key}, {column} FROM {table}").fetchall()
            for row_id, value in rows:
                if value and (value == old or value.startswith(old + "/")):
                    con.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (new + value[len(old):], row_id))
                    changed += 1
    con.close()
    return changed


def ui_command(uri: str) -> str:
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1"
    return f"open {uri} in a browser"


def runs_link(uri: str, experiment_id: str) -> str:
    """The experiment's runs table (MLflow 3 opens its GenAI traces view without ``workflowType``)."""
    server = "http://127.0.0.1:5000" if uri.startswith("sqlite:") else uri.rstrip("/")
    return f"{server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


class Tracker:
    """Thin, picklable handle: tracking URI + experiment + parent run id."""

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str):
        self.uri, self.experiment_id, self.parent_run_id = uri, experiment_id, parent_run_id

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri)

    @classmethod
    def open(cls, uri: str, experiment: str, run_name: str, artifact_root: Path | None,
             parent_run_id: str | None = None, tags: dict[str, str] | None = None) -> Tracker:
        """Create (or, on resume, reopen) the parent run of a search."""
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = artifact_root.resolve().as_uri() if artifact_root and uri.startswith("sqlite:") else None
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        if parent_run_id:
            client.update_run(parent_run_id, status="RUNNING")
        else:
            parent_run_id = client.create_run(experiment_id, run_name=run_name, tags=tags or {}).info.run_id
        return cls(uri, experiment_id, parent_run_id)

    def find_child(self, trial_id: str) -> str | None:
        """The run id of a trial's child run, if it has one."""
        found = self.client.search_runs([self.experiment_id], filter_string=(
            f"tags.mlflow.parentRunId = '{self.parent_run_id}' and tags.trial_id = '{trial_id}'"))
        return found[0].info.run_id if found else None

    def children(self) -> dict[str, Any]:
        """The parent's child runs (``mlflow.entities.Run``) by their ``trial_id`` tag."""
        runs = self.client.search_runs([self.experiment_id], max_results=5000,
                                       filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}'")
        return {run.data.tags["trial_id"]: run for run in runs if "trial_id" in run.data.tags}

    def child_run(self, trial_id: str, name: str, params: dict[str, Any]) -> tuple[str, bool]:
        """The trial's child run id, and whether it is new: the existing one (resume, status RUNNING again)
        or a new one named ``name`` with ``params``."""
        run_id = self.find_child(trial_id)
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
            return run_id, False
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={"mlflow.parentRunId": self.parent_run_id, "trial_id": trial_id})
        self.log_params(run.info.run_id, params)
        return run.info.run_id, True

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        flat = {k: v for k, v in _flatten(params).items() if not SECRET.search(k)}
        items = [Param(k, str(v)[:6000]) for k, v in flat.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and math.isfinite(float(v))]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def log_points(self, run_id: str, points: list[tuple[str, float, int]]) -> None:
        """Metric history points ``(key, value, step)``, in batches."""
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v, step in points if math.isfinite(float(v))]
        for start in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[start:start + 1000])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        elif path.exists():
            self.client.log_artifact(run_id, str(path), artifact_path)

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
