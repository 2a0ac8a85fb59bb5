"""The boundary analysis, written back into MLflow: child-run tags, the parent's verdict and recommendation.

    python -m tuner.run ...                   # at the end of a search (and of a --resume)
    python -m tuner.report RUN_DIR            # again, after re-rendering with another --delta

Reads ``RUN_DIR/report/boundary.json`` (written by ``tuner.analysis.report``) and the results table. Each child
run gets the tags ``state`` (``tuner.analysis.outcomes``: no_effect, forgets_harmlessly, uncertain,
forgets_uncertain, damages, both_collapsed), ``p_harmless`` (the P(retain drop <= delta) that state read: the
boundary sampler's model, else the trial's own z-test), ``recommended`` and ``pareto`` and any missing ``eval/`` metric;
the parent its description (``mlflow.note.content``: the verdict), the recommended trial's params and scores as
``recommended/*`` metrics and the boundary as ``boundary/*``. Safe to repeat: tags and params are replaced,
eval metrics a run already has are not logged twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tuner.records.mlflow_layout import eval_metrics
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID, TrialRow
from tuner.records.tracking import Tracker

NOTE = "mlflow.note.content"


def sync_analysis(tracker: Tracker, run_dir: Path) -> None:
    """Tag the children and describe the parent from ``report/boundary.json``; nothing if it is missing."""
    path = Path(run_dir) / "report" / "boundary.json"
    if not path.is_file():
        return
    analysis = json.loads(path.read_text())
    rows = {r.trial_id: r for r in ResultsTable(Path(run_dir)).rows()}
    for trial_id, run in tracker.children().items():
        row = rows.get(trial_id)
        if row is not None:
            _tag_child(tracker, run, row, analysis)
    tracker.set_tags(tracker.parent_run_id, {NOTE: verdict_note(analysis.get("verdict")),
                                             "recommended": analysis.get("recommended") or "none"})
    tracker.log_metrics(tracker.parent_run_id, parent_metrics(analysis, rows))


def verdict_note(verdict: dict[str, Any] | str | None) -> str:
    """The report's structured verdict as markdown (one bullet per item) for the parent's description."""
    if not isinstance(verdict, dict):
        return verdict or ""
    lines = []
    for key, value in verdict.items():
        text = "; ".join(value) if isinstance(value, list) else str(value)
        lines.append(f"- **{key.replace('_', ' ')}**: {text}")
    return "\n".join(lines)


def _tag_child(tracker: Tracker, run: Any, row: TrialRow, analysis: dict[str, Any]) -> None:
    trial_id = row.trial_id
    if trial_id == BASELINE_ID:
        tags = {"state": "baseline"}
    else:
        p = analysis.get("p_harmless", {}).get(trial_id)
        tags = {"state": analysis.get("states", {}).get(trial_id) or row.status,
                "p_harmless": "" if p is None else f"{p:.3f}",
                "recommended": str(trial_id == analysis.get("recommended")).lower(),
                "pareto": str(trial_id in analysis.get("pareto", [])).lower()}
    tracker.set_tags(run.info.run_id, tags)
    missing = {k: v for k, v in eval_metrics(row).items() if k not in run.data.metrics}
    tracker.log_metrics(run.info.run_id, missing)


def parent_metrics(analysis: dict[str, Any], rows: dict[str, TrialRow]) -> dict[str, float]:
    """Baseline scores, the recommended trial's params and scores, the boundary ratio and its interval."""
    out: dict[str, float] = {"trials": len(rows) - (BASELINE_ID in rows),
                             "trials_scored": len(analysis.get("states", {}))}
    base = rows.get(BASELINE_ID)
    if base is not None:
        out |= {k.replace("eval/", "baseline/"): v for k, v in eval_metrics(base).items()}
    best = rows.get(analysis.get("recommended") or "")
    if best is not None:
        out |= {f"recommended/{k}": v for k, v in best.params.items() if isinstance(v, (int, float))}
        out |= {k.replace("eval/", "recommended/"): v for k, v in eval_metrics(best).items()}
        runs = analysis.get("replicates") or {}  # the point's runs: the trial and its replicates
        out |= {f"recommended/{k}": v for k, v in (("runs", len(runs.get("runs", []))), *runs.items())
                if isinstance(v, (int, float)) and math.isfinite(v)}
    fit = analysis.get("fit") or {}
    low, high = (list(fit.get("ratio_ci") or []) + [None, None])[:2]
    for key, value in (("ratio", fit.get("ratio")), ("ratio_low", low), ("ratio_high", high)):
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[f"boundary/{key}"] = float(value)
    return out
