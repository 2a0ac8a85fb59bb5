"""One MLflow child run per trial, and one for the baseline: opened, filled as the trial goes, finished.

    python -m tuner.run --space kl_boundary --preset miniworld-small --num-samples 2 steps=8
    # child runs: "<trial_id> retain=7.27 remove=5.91 beta_kl=0.603", params retain_coef=7.273 ...,
    # metrics train/loss ... (every report), eval/forget_acc ..., time/model_load ... (seconds per phase),
    # artifacts config.json, lm_eval/, adapter/

The layout (names, keys, rounding) is ``tuner.records.mlflow_layout``; the analysis tags come later
(``tuner.records.mlflow_analysis``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tuner.records.mlflow_layout import (
    adapter_readme,
    constants_and_curves,
    eval_metrics,
    rounded_params,
    run_name,
    train_metrics,
)
from tuner.records.schema import BASELINE_ID, TrialRow
from tuner.records.tracking import Tracker


def open_trial_run(tracker: Tracker, trial_id: str, params: dict[str, Any], config: dict[str, Any]) -> str:
    """The trial's child run (reopened on resume): searched params once, the full config as ``config.json``."""
    run_id, new = tracker.child_run(trial_id, run_name(trial_id, params), rounded_params(params))
    if new:
        tracker.client.log_dict(run_id, config, "config.json")
    return run_id


def log_report(tracker: Tracker, run_id: str, report: dict[str, Any]) -> None:
    """One training report (forwarded to the Tune driver) as ``train/`` metrics at its step."""
    if "step" in report:
        tracker.log_metrics(run_id, train_metrics(report), step=int(report["step"]))


def log_trial_result(tracker: Tracker, run_id: str, row: TrialRow, history: list[dict[str, Any]],
                     trial_dir: Path, adapter: Path | None, base_model: str) -> None:
    """A finished trial: constants as params (or their curves), eval metrics, lm-eval JSON, the adapter."""
    params, curves = constants_and_curves(history)
    tracker.log_params(run_id, params)
    tracker.log_points(run_id, curves)
    step = int(history[-1]["step"]) if history else 0
    tracker.log_metrics(run_id, eval_metrics(row), step=step)
    tracker.log_artifacts(run_id, trial_dir / "lm_eval.json", "lm_eval")
    if adapter and adapter.exists():
        log_adapter(tracker, run_id, row, adapter, base_model)
    tracker.set_tags(run_id, {"status": row.status})


def log_phases(tracker: Tracker, run_id: str, phase_seconds: dict[str, float]) -> None:
    """Where the trial's time went: ``time/<phase>`` metrics in seconds (``TrialRow.phase_seconds``)."""
    tracker.log_metrics(run_id, {f"time/{name}": seconds for name, seconds in phase_seconds.items()})


def log_adapter(tracker: Tracker, run_id: str, row: TrialRow, adapter: Path, base_model: str) -> None:
    """The LoRA adapter folder, its README replaced by one that names the trial, its params and scores."""
    tracker.log_artifacts(run_id, adapter, "adapter")
    with tempfile.TemporaryDirectory() as tmp:
        readme = Path(tmp) / "README.md"
        readme.write_text(adapter_readme(row, base_model))
        tracker.log_artifacts(run_id, readme, "adapter")


def log_baseline(tracker: Tracker, row: TrialRow, trial_dir: Path) -> None:
    """The unadapted model as a child run named ``baseline``, with the trials' eval columns; once."""
    if tracker.find_child(BASELINE_ID):
        return
    run_id, _ = tracker.child_run(BASELINE_ID, BASELINE_ID, {})
    tracker.log_metrics(run_id, eval_metrics(row))
    log_phases(tracker, run_id, row.phase_seconds)
    tracker.log_artifacts(run_id, trial_dir / "lm_eval.json", "lm_eval")
    tracker.set_tags(run_id, {"status": row.status, "state": "baseline"})
    tracker.finish(run_id)


def log_failure(tracker: Tracker, run_id: str, status: str, error: str) -> None:
    """A failed or diverged trial: its status and error (the last 4000 characters) as tags, the run FAILED."""
    tracker.set_tags(run_id, {"status": status, "error": error[-4000:]})
    tracker.finish(run_id, failed=True)

