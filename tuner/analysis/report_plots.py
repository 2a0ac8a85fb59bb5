"""The report's three figures, each returned as a ``Plot`` (matplotlib's object API on the Agg canvas).

* ``tradeoff_png``     forget vs retain accuracy: Pareto front, baseline, chance lines, delta band
* ``harmless_map_png`` (``report_map``) the fit's P(drop <= delta) over the boundary's coordinates
* ``curves_png``       training curves, one small panel per metric, one line per trial

Points are coloured by outcome state (``STATE_STYLE``, the states of ``tuner.analysis.outcomes``).

Every scored trial's point carries its trial id. Figures are at most MAX_WIDTH inches wide at 100 dpi, so the
HTML page (1200 px) shows them at their own size, text unscaled.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainables.evaluation.result import CHANCE_ACCURACY
from trainables.objective import step_metrics
from tuner.analysis.boundary import BoundaryAnalysis
from tuner.analysis.outcomes import OutcomeState
from tuner.records.schema import TrialRow

STATE_STYLE: dict[OutcomeState | None, tuple[str, str]] = {  # colour, marker; green / yellow / red by retain side
    OutcomeState.FORGETS_HARMLESSLY: ("#2ca02c", "o"),
    OutcomeState.NO_EFFECT: ("#98df8a", "s"),
    OutcomeState.FORGETS_UNCERTAIN: ("#bcbd22", "D"),
    OutcomeState.UNCERTAIN: ("#dbdb8d", "d"),
    OutcomeState.DAMAGES: ("#ff7f0e", "^"),
    OutcomeState.BOTH_COLLAPSED: ("#d62728", "X"),
    None: ("#1f77b4", "o"),  # scored, but no baseline to label it against
}
MAX_WIDTH, DPI = 11.5, 100
LABEL = {"fontsize": 7, "textcoords": "offset points", "xytext": (5, 4), "zorder": 5}
CURVE_METRICS = step_metrics()


@dataclass(frozen=True)
class Plot:
    png: bytes
    width: int  # pixels
    labelled: int  # trial-id annotations drawn


def tradeoff_png(trials: Sequence[TrialRow], baseline: TrialRow | None, a: BoundaryAnalysis) -> Plot | None:
    """Forget acc (x, lower = more forgetting) vs retain acc (y); ring = recommended trial; hollow star = baseline,
    drawn under the trials so a trial at the baseline's accuracies stays visible."""
    done = scored_trials(trials)
    if not done:
        return None
    fig = figure(7.5, 5.5)
    ax = fig.add_subplot()
    if baseline is not None and baseline.scored:
        b = baseline.retain.acc
        ax.axhspan(100 * (b - a.delta), 100 * b, color="#2ca02c", alpha=0.12,
                   label=f"within δ={100 * a.delta:g} pts of baseline")
        ax.errorbar(100 * baseline.forget.acc, 100 * b, xerr=100 * baseline.forget.stderr,
                    yerr=100 * baseline.retain.stderr, fmt="*", ms=16, mfc="none", color="black", zorder=1,
                    label="baseline")
    for state in STATE_STYLE:
        pts = [t for t in done if a.states.get(t.trial_id) is state]
        if pts:
            colour, marker = STATE_STYLE[state]
            ax.errorbar([100 * t.forget.acc for t in pts], [100 * t.retain.acc for t in pts],
                        xerr=[100 * t.forget.stderr for t in pts], yerr=[100 * t.retain.stderr for t in pts],
                        fmt=marker, color=colour, ecolor=colour, elinewidth=0.6, alpha=0.85, ms=6, zorder=3,
                        label=state.value if state else "scored (no baseline)")
    labelled = label_points(ax, [(t.trial_id, 100 * t.forget.acc, 100 * t.retain.acc) for t in done])
    by_id = {t.trial_id: t for t in done}
    front = [by_id[i] for i in a.pareto if i in by_id]
    ax.plot([100 * t.forget.acc for t in front], [100 * t.retain.acc for t in front], "--", color="black",
            lw=1, drawstyle="steps-post", label="Pareto front")
    if a.recommended in by_id:
        t = by_id[a.recommended]
        ax.plot(100 * t.forget.acc, 100 * t.retain.acc, "o", ms=16, mfc="none", mec="black", mew=2,
                label=f"recommended ({t.trial_id})")
    ax.axvline(100 * CHANCE_ACCURACY, color="grey", ls=":", lw=1)
    ax.axhline(100 * CHANCE_ACCURACY, color="grey", ls=":", lw=1, label="chance (25%)")
    ax.set(xlabel="forget accuracy, % (← more forgetting)", ylabel="retain accuracy, % (↑ better)",
           title="Forget vs retain: every scored trial ± stderr")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return png(fig, labelled)


def curves_png(curves: Mapping[str, list[dict[str, Any]]],
               states: Mapping[str, OutcomeState]) -> Plot | None:
    """One panel per logged metric of ``CURVE_METRICS``; each trial a line coloured by its state."""
    metrics = [m for m in CURVE_METRICS if any(m in rec for recs in curves.values() for rec in recs)]
    if not metrics:
        return None
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = figure(3.7 * ncols, 2.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        for trial_id, recs in curves.items():
            xy = [(r["step"], r[metric]) for r in recs if "step" in r and numeric(r, metric)]
            if xy:
                ax.plot(*zip(*xy, strict=True), color=STATE_STYLE[states.get(trial_id)][0], lw=1, alpha=0.7)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    shown = {states.get(t) for t in curves}
    handles = [axes[0].plot([], [], color=c, label=s.value if s else "unlabelled")[0]
               for s, (c, _) in STATE_STYLE.items() if s in shown]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 2 * ncols), fontsize=8)
    return png(fig, 0)


def label_points(ax: Any, points: Sequence[tuple[str, float, float]]) -> int:
    """Write each trial id next to its point (offset up-right); returns how many were written."""
    for trial_id, x, y in points:
        ax.annotate(trial_id, (x, y), gid=f"trial-label-{trial_id}", **LABEL)
    return len(points)


def numeric(record: Mapping[str, Any], *names: str, above: float = -np.inf) -> bool:
    """Are all ``names`` finite numbers above ``above`` in ``record``?"""
    values = [record.get(n) for n in names]
    return all(isinstance(v, (int, float)) and np.isfinite(v) and v > above for v in values)


def scored_trials(trials: Sequence[TrialRow]) -> list[TrialRow]:
    return [t for t in trials if t.status == "done" and t.scored]


def figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(min(width, MAX_WIDTH), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure, labelled: int) -> Plot:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Plot(buf.getvalue(), round(fig.get_figwidth() * DPI), labelled)
