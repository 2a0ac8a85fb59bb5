"""What a search run directory holds, read for the report.

reads   RUN_DIR/results.jsonl                    one TrialRow.to_dict() per line; the last line per
                                                 trial_id wins; trial_id "baseline" is the unadapted model
        RUN_DIR/trials/<trial_id>/metrics.jsonl  optional training curves: {"step": 32, "loss": ...} per line
        RUN_DIR/run_config.json                  optional: space, preset, seed, delta, num_samples, ...
        RUN_DIR/stop.json                        optional: the boundary sampler's stopping rule fired
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.boundary_search.stopping import STOP_FILE, stop_reason
from tuner.records.schema import BASELINE_ID, TrialRow


class ReportInputError(Exception):
    """The run directory cannot be read; nothing was written."""


@dataclass(frozen=True)
class RunData:
    """What a run directory holds: trials in order of first appearance, the baseline row, curves, config."""

    trials: list[TrialRow]
    baseline: TrialRow | None
    curves: dict[str, list[dict[str, Any]]]
    config: dict[str, Any]
    stop: str  # why the search stopped, "" when the run directory does not say


def load_run(run_dir: Path) -> RunData:
    """Read results.jsonl (last line per trial_id wins), metrics.jsonl curves, run_config.json, stop.json."""
    results = run_dir / "results.jsonl"
    if not run_dir.is_dir():
        raise ReportInputError(f"run directory {run_dir} does not exist")
    if not results.is_file():
        raise ReportInputError(f"{results} not found; is {run_dir} a search run directory?")
    rows: dict[str, TrialRow] = {}
    for number, line in enumerate(results.read_text().splitlines(), start=1):
        try:
            row = TrialRow.from_dict(json.loads(line)) if line.strip() else None
        except (ValueError, KeyError, TypeError) as e:
            raise ReportInputError(f"{results}:{number} is not a TrialRow: {e}") from e
        if row is not None:
            rows[row.trial_id] = row  # a later line replaces the row but keeps its position
    config_path = run_dir / "run_config.json"
    try:
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    except ValueError as e:
        raise ReportInputError(f"{config_path} is not valid JSON: {e}") from e
    baseline = rows.pop(BASELINE_ID, None)
    curves = {t: _read_curve(run_dir / "trials" / t / "metrics.jsonl") for t in rows}
    return RunData(list(rows.values()), baseline, {t: c for t, c in curves.items() if c}, config,
                   why_stopped(run_dir, config, len(rows)))


def why_stopped(run_dir: Path, config: dict[str, Any], n_trials: int) -> str:
    """The stopping rule's sentence (stop.json), else the one the search recorded, else the budget cap."""
    num_samples = config.get("num_samples")
    if (run_dir / STOP_FILE).is_file():
        return stop_reason(run_dir, num_samples or 0)
    recorded = config.get("extra", {}).get("stop_reason", "")
    if recorded or not isinstance(num_samples, int):
        return recorded
    if n_trials >= num_samples:
        return f"ran to the budget cap (--num-samples {num_samples})"
    return (f"{n_trials} of --num-samples {num_samples} trials recorded: the search was interrupted or is "
            "still running")


def _read_curve(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records in order; a torn last line (crash mid-write) is skipped."""
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return [r for r in records if isinstance(r, dict)]
