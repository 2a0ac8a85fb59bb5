"""The report's tables, each (title, header, rows) of strings:

* Outcomes   what each trial did: state, forget / retain ± stderr, Δ forget, the retain drop ± stderr against
             delta with its retain side, the P(drop <= delta) the state read, flags; params last (the boundary's first)
* Training metrics   how it trained: final training metrics, the alternative-format scores, timings
* Not scored failed / diverged trials with their errors
* Run config the run's settings with paths relative to the run directory and the effective training config
             (preset + overrides + the space's fixed values; searched keys show their sampled range)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainables.evaluation.result import TaskScore
from tuner.analysis.boundary import P_LABEL, BoundaryAnalysis
from tuner.analysis.outcomes import retain_drop_se
from tuner.analysis.report_plots import CURVE_METRICS
from tuner.analysis.run_data import RunData
from tuner.records.schema import TrialRow

Table = tuple[str, list[str], list[list[str]]]  # title, header, rows
OUTCOMES = "Outcomes"
HIDDEN_CONFIG = ("train_config", "fixed", "extra")  # shown flattened below the run-level keys


def tables(data: RunData, a: BoundaryAnalysis, run_dir: Path) -> list[Table]:
    out = [outcome_table(data, a), training_table(data)]
    failed = [[t.trial_id, t.status, t.error[:300]] for t in data.trials if t.trial_id in a.unscored]
    if failed:
        out.append(("Not scored", ["trial", "status", "error"], failed))
    if data.config:
        out.append(("Run config", ["key", "value"], config_rows(data.config, run_dir, data.trials)))
    return out


def outcome_table(data: RunData, a: BoundaryAnalysis) -> Table:
    rows = _rows(data)
    params = _keys([t.params for t in rows], a.boundary.names())
    base = data.baseline if data.baseline and data.baseline.scored else None
    body = []
    for t in rows:
        state = a.states.get(t.trial_id)
        p = a.p_harmless.get(t.trial_id)
        body.append([t.trial_id, state.value if state else t.status, _acc(t.forget), _acc(t.retain),
                     _delta(t.forget, base and base.forget, t.is_baseline), _against(t, a, base),
                     "" if p is None else f"{p:.2f}", ", ".join(_flags(t, a)),
                     *(_cell(t.params.get(k)) for k in params)])
    header = ["trial", "state", "forget %", "retain %", "Δ forget", f"retain drop vs δ = {100 * a.delta:g}",
              P_LABEL, "flags", *params]
    return OUTCOMES, header, body


def training_table(data: RunData) -> Table:
    rows = _rows(data)
    metrics = {t.trial_id: t.train_metrics or (data.curves.get(t.trial_id) or [{}])[-1] for t in rows}
    keys = _keys(list(metrics.values()), CURVE_METRICS)
    alt = next((t.alt_format for t in rows if t.alt_format), "")
    body = [[t.trial_id, t.status, *(_cell(metrics[t.trial_id].get(k)) for k in keys),
             *((_acc(t.forget_alt), _acc(t.retain_alt)) if alt else ()),
             _seconds(t.train_seconds), _seconds(t.eval_seconds)] for t in rows]
    header = ["trial", "status", *keys, *((f"forget % ({alt})", f"retain % ({alt})") if alt else ()),
              "train s", "eval s"]
    return "Training metrics", header, body


def config_rows(config: dict[str, Any], run_dir: Path, trials: list[TrialRow]) -> list[list[str]]:
    """Run-level keys, then ``train.<key>`` with the values trials actually ran with."""
    roots = {str(Path(config.get("run_dir", run_dir))), str(run_dir.resolve())}
    rows = [[k, _relative(_cell(v), roots)] for k, v in config.items() if k not in HIDDEN_CONFIG]
    rows += [[f"extra.{k}", _relative(_cell(v), roots)] for k, v in config.get("extra", {}).items()]
    fixed = config.get("fixed", {})
    searched = {k for t in trials for k in t.params}
    for key, value in sorted({**config.get("train_config", {}), **fixed}.items()):
        if key in searched:
            text = "searched: " + _range([t.params[key] for t in trials if key in t.params])
        else:
            text = _relative(_cell(value), roots) + (" (fixed by the space)" if key in fixed else "")
        rows.append([f"train.{key}", text])
    return rows


def _range(values: list[Any]) -> str:
    """'0.1 – 30' for numbers, the distinct values otherwise."""
    if all(isinstance(v, (int, float)) for v in values):
        return f"{_cell(min(values))} – {_cell(max(values))}"
    return ", ".join(dict.fromkeys(_cell(v) for v in values))


def _flags(t: TrialRow, a: BoundaryAnalysis) -> list[str]:
    flags = ["recommended"] if t.trial_id == a.recommended else []
    flags += ["tied"] if t.trial_id in a.tied else []
    flags += ["confirm"] if t.trial_id in a.stronger else []
    flags += ["Pareto"] if t.trial_id in a.pareto else []
    return flags


def _against(t: TrialRow, a: BoundaryAnalysis, base: TrialRow | None) -> str:
    """'3.3 ± 1.0 > 2: uncertain': the drop (points) ± its stderr, its side of delta, and the state's retain side."""
    state = a.states.get(t.trial_id)
    if state is None or base is None:
        return ""
    drop, se = retain_drop_se(t, base)
    return (f"{100 * drop:.1f} ± {100 * se:.1f} {'≤' if drop <= a.delta else '>'} {100 * a.delta:g}: "
            f"{state.retain.value}")


def _rows(data: RunData) -> list[TrialRow]:
    return ([data.baseline] if data.baseline else []) + data.trials


def _relative(text: str, roots: set[str]) -> str:
    """Paths under the run directory written relative to it ("." for the directory itself)."""
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root + "/", "./").replace(root, ".")
    return text


def _keys(dicts: list[dict[str, Any]], first: tuple[str, ...]) -> list[str]:
    """Union of keys: those in ``first`` in that order, then the rest in order of appearance."""
    seen = list(dict.fromkeys(k for d in dicts for k in d if k != "step"))
    return [k for k in first if k in seen] + [k for k in seen if k not in first]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else v if isinstance(v, str) else json.dumps(v)


def _seconds(v: float | None) -> str:
    return f"{v:.0f}" if v else ""


def _acc(s: TaskScore | None) -> str:
    return f"{100 * s.acc:.1f} ± {100 * s.stderr:.1f}" if s else ""


def _delta(s: TaskScore | None, base: TaskScore | None, is_baseline: bool) -> str:
    return f"{100 * (s.acc - base.acc):+.1f}" if s and base and not is_baseline else ""
