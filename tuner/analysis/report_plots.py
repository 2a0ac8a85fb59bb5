"""The report's three figures, each returned as a ``Plot`` (matplotlib's object API on the Agg canvas).

* ``tradeoff_png``     forget vs retain accuracy: Pareto front, baseline, chance lines, delta band
* ``harmless_map_png`` P(harmless) over (retain_coef, remove_coef), log axes, 0.5 line, one panel per beta_kl
* ``curves_png``       training curves, one small panel per metric, one line per trial

Every scored trial's point carries its trial id. Figures are at most MAX_WIDTH inches wide at 100 dpi, so the
HTML page (1200 px) shows them at their own size, text unscaled.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from search_spaces.facts import AMBIGUOUS
from trainables.evaluation.result import CHANCE_ACCURACY
from trainables.objective import step_metrics
from tuner.analysis.boundary import BoundaryAnalysis, OutcomeState
from tuner.analysis.boundary_fit import BoundaryFit
from tuner.records.schema import TrialRow

STATE_STYLE: dict[OutcomeState | None, tuple[str, str]] = {  # colour, marker
    OutcomeState.FORGETS_HARMLESSLY: ("#2ca02c", "o"),
    OutcomeState.NO_EFFECT: ("#7f7f7f", "s"),
    OutcomeState.BOTH_DEGRADED: ("#ff7f0e", "^"),
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
    scored = _scored(trials)
    if not scored:
        return None
    fig = _figure(7.5, 5.5)
    ax = fig.add_subplot()
    if baseline is not None and baseline.scored:
        b = baseline.retain.acc
        ax.axhspan(100 * (b - a.delta), 100 * b, color="#2ca02c", alpha=0.12,
                   label=f"within δ={100 * a.delta:g} pts of baseline")
        ax.errorbar(100 * baseline.forget.acc, 100 * b, xerr=100 * baseline.forget.stderr,
                    yerr=100 * baseline.retain.stderr, fmt="*", ms=16, mfc="none", color="black", zorder=1,
                    label="baseline")
    for state in STATE_STYLE:
        pts = [t for t in scored if a.states.get(t.trial_id) is state]
        if pts:
            colour, marker = STATE_STYLE[state]
            ax.errorbar([100 * t.forget.acc for t in pts], [100 * t.retain.acc for t in pts],
                        xerr=[100 * t.forget.stderr for t in pts], yerr=[100 * t.retain.stderr for t in pts],
                        fmt=marker, color=colour, ecolor=colour, elinewidth=0.6, alpha=0.85, ms=6, zorder=3,
                        label=state.value if state else "scored (no baseline)")
    labelled = _label(ax, [(t.trial_id, 100 * t.forget.acc, 100 * t.retain.acc) for t in scored])
    by_id = {t.trial_id: t for t in scored}
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
    return _png(fig, labelled)


def harmless_map_png(trials: Sequence[TrialRow], a: BoundaryAnalysis) -> Plot | None:
    """P(harmless) contours (0.1 / 0.5 / 0.9) under the trials, which are drawn by state."""
    pts = [t for t in _scored(trials) if _numeric(t.params, "retain_coef", "remove_coef", above=0.0)]
    if not pts:
        return None
    fit = a.fit
    levels: list[float | None] = [b for b, _ in fit.by_slice] if fit and fit.by_slice else [None]
    ncols = min(2, len(levels))
    fig = _figure(5.0 * ncols + 1.2, 4.6 * -(-len(levels) // ncols))
    axes = fig.subplots(-(-len(levels) // ncols), ncols, squeeze=False).ravel()
    for ax in axes[len(levels):]:
        ax.set_visible(False)
    axes = axes[:len(levels)]
    labelled = 0
    ret = np.array([t.params["retain_coef"] for t in pts], dtype=float)
    rem = np.array([t.params["remove_coef"] for t in pts], dtype=float)
    grid_r, grid_m = np.meshgrid(np.geomspace(ret.min() / 1.5, ret.max() * 1.5, 120),
                                 np.geomspace(rem.min() / 1.5, rem.max() * 1.5, 120))
    filled = None
    for ax, beta in zip(axes, levels, strict=True):
        if fit is not None:
            beta_coord = {} if beta is None else {"beta_kl": beta}
            p = fit.p_harmless({"retain_coef": grid_r, "remove_coef": grid_m, **beta_coord})
            filled = ax.contourf(grid_r, grid_m, p, levels=np.linspace(0, 1, 11), cmap="RdYlGn", alpha=0.55)
            ax.contour(grid_r, grid_m, p, levels=list(AMBIGUOUS), colors="dimgrey", linestyles="--", linewidths=1)
            ax.contour(grid_r, grid_m, p, levels=[0.5], colors="black", linewidths=2)
        for state, (colour, marker) in STATE_STYLE.items():
            sel = [t for t in pts if a.states.get(t.trial_id) is state and _in_band(t, beta, fit)]
            if sel:
                ax.scatter([t.params["retain_coef"] for t in sel], [t.params["remove_coef"] for t in sel],
                           c=colour, marker=marker, edgecolors="black", linewidths=0.5, s=40,
                           label=state.value if state else "scored (no baseline)", zorder=3)
        shown = [t for t in pts if _in_band(t, beta, fit)]
        labelled += _label(ax, [(t.trial_id, t.params["retain_coef"], t.params["remove_coef"]) for t in shown])
        best = [t for t in shown if t.trial_id == a.recommended]
        if best:
            ax.scatter(best[0].params["retain_coef"], best[0].params["remove_coef"], s=260, facecolors="none",
                       edgecolors="black", linewidths=2, label="recommended", zorder=4)
        ax.set(xscale="log", yscale="log", xlabel="retain_coef", ylabel="remove_coef",
               title=("P(harmless)" if fit else "Trials by state (no fit)")
               + (f", beta_kl ≈ {beta:.3g}" if beta is not None else ""))
    legend = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=5, fontsize=8)
    if filled is not None:
        fig.colorbar(filled, ax=list(axes), label="P(harmless); black line = 0.5, dashed = 0.1 / 0.9")
    else:
        fig.suptitle(textwrap.fill(a.fit_note or "No boundary fit.", 75), fontsize=9)
    return _png(fig, labelled)


def curves_png(curves: Mapping[str, list[dict[str, Any]]],
               states: Mapping[str, OutcomeState]) -> Plot | None:
    """One panel per logged metric of ``CURVE_METRICS``; each trial a line coloured by its state."""
    metrics = [m for m in CURVE_METRICS if any(m in rec for recs in curves.values() for rec in recs)]
    if not metrics:
        return None
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = _figure(3.7 * ncols, 2.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        for trial_id, recs in curves.items():
            xy = [(r["step"], r[metric]) for r in recs if "step" in r and _numeric(r, metric)]
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
    return _png(fig, 0)


def _label(ax: Any, points: Sequence[tuple[str, float, float]]) -> int:
    """Write each trial id next to its point (offset up-right); returns how many were written."""
    for trial_id, x, y in points:
        ax.annotate(trial_id, (x, y), gid=f"trial-label-{trial_id}", **LABEL)
    return len(points)


def _in_band(t: TrialRow, beta: float | None, fit: BoundaryFit | None) -> bool:
    """Is the trial's beta_kl closer to ``beta`` than to any other panel's level?"""
    if beta is None or fit is None:
        return True
    levels = [b for b, _ in fit.by_slice]
    value = float(t.params.get("beta_kl", fit.at_slice or 0.0))
    return min(levels, key=lambda b: abs(b - value)) == beta


def _numeric(record: Mapping[str, Any], *names: str, above: float = -np.inf) -> bool:
    """Are all ``names`` finite numbers above ``above`` in ``record``?"""
    values = [record.get(n) for n in names]
    return all(isinstance(v, (int, float)) and np.isfinite(v) and v > above for v in values)


def _scored(trials: Sequence[TrialRow]) -> list[TrialRow]:
    return [t for t in trials if t.status == "done" and t.scored]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(min(width, MAX_WIDTH), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure, labelled: int) -> Plot:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Plot(buf.getvalue(), round(fig.get_figwidth() * DPI), labelled)
