"""Shared setup of the MLflow tests: ``test_report``'s synthetic run logged into its own sqlite store."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from tests.tuner.test_report import write_run
from tuner.analysis.report import render_report
from tuner.orchestration.context import default_uri
from tuner.records.mlflow_analysis import sync_analysis
from tuner.records.results import ResultsTable
from tuner.records.tracking import Tracker
from tuner.records.trial_runs import log_baseline, open_trial_run


class LoggedRun(NamedTuple):
    run_dir: Path
    tracker: Tracker
    ids: dict[str, str]  # trial id -> MLflow run id


@pytest.fixture
def logged_run(tmp_path: Path) -> LoggedRun:
    """The baseline and trials t00, t09, t99 as child runs of experiment ``exp``, analysis synced (twice)."""
    run_dir = write_run(tmp_path / "run")
    render_report(run_dir)
    tracker = Tracker.open(default_uri(run_dir), "exp", "parent", artifact_root=run_dir / "mlartifacts")
    rows = {r.trial_id: r for r in ResultsTable(run_dir).rows()}
    log_baseline(tracker, rows["baseline"], run_dir / "trials" / "baseline")
    ids = {t: open_trial_run(tracker, t, rows[t].params, {"lr": 1e-3}) for t in ("t00", "t09", "t99")}
    sync_analysis(tracker, run_dir)
    sync_analysis(tracker, run_dir)  # a second pass (resume, tuner.report) logs nothing twice
    return LoggedRun(run_dir, tracker, ids)
