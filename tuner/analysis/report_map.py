"""The harmless-region figure: the fit's P(retain drop <= delta) over the boundary's coordinates, with the trials.

    harmless_map_png(trials, a)     # a Plot, or None without a trial that has the boundary's coordinates

Panels by the run's boundary (``a.boundary``):

    ratio_to set        x = ratio_to, y = along (log axes), one panel per slice level (the trials nearest it)
    no ratio, slice_by  x = along (log), y = slice_by, one panel
    along alone         x = along (log), y = P, one panel

In each 2-D panel: colour = P, black line = P 0.5 (the estimated boundary), dotted band = 0.1 < P < 0.9 (the
boundary's interval, ``AMBIGUOUS``), faded = extrapolated: no trial of the panel within ``NEAR`` of
the point, in units of the panel's width and height (log axes in decades). Points are coloured by outcome state.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.patches import Patch

from search_spaces.facts import AMBIGUOUS
from tuner.analysis import report_plots as plots
from tuner.analysis.axes import nearest_level, number
from tuner.analysis.boundary import P_LABEL, BoundaryAnalysis
from tuner.records.schema import TrialRow

NEAR = 0.2  # a point farther than this from every trial of its panel (panel = 1 x 1) is extrapolated
N_GRID = 120
BAND = {"hatches": ["...."], "colors": "none"}
FAR = {"colors": "white", "alpha": 0.6}


def harmless_map_png(trials: Sequence[TrialRow], a: BoundaryAnalysis) -> plots.Plot | None:
    b, fit = a.boundary, a.fit
    axes_names = [n for n in (b.ratio_to, b.along) if n] if b.ratio_to else [b.along, b.slice_by]
    pts = [t for t in plots.scored_trials(trials)
           if all(number(t.params.get(n), n != b.slice_by) for n in axes_names if n)]
    if not pts:
        return None
    x_name, y_name = axes_names
    levels: list[float | None] = [lv for lv, _ in fit.by_slice] if b.ratio_to and fit and fit.by_slice else [None]
    ncols = min(2, len(levels))
    fig = plots.figure(5.0 * ncols + 1.2, 4.6 * -(-len(levels) // ncols))
    panels = fig.subplots(-(-len(levels) // ncols), ncols, squeeze=False).ravel()
    for ax in panels[len(levels):]:
        ax.set_visible(False)
    panels = panels[:len(levels)]
    xs = _grid([t.params[x_name] for t in pts], log=True)
    ys = _grid([t.params[y_name] for t in pts], log=y_name != b.slice_by) if y_name else None
    filled, labelled = None, 0
    for ax, level in zip(panels, levels, strict=True):
        shown = [t for t in pts if level is None or nearest_level(t.params.get(b.slice_by), levels) == level]
        at = {b.slice_by: level} if level is not None else {}
        if ys is None:
            labelled += _line_panel(ax, shown, a, xs, x_name)
        else:
            if fit is not None:
                filled = _p_panel(ax, shown, fit, xs, ys, (x_name, y_name), at, y_log=y_name != b.slice_by)
            labelled += _points(ax, shown, a, x_name, y_name)
            ax.set(xscale="log", yscale="log" if y_name != b.slice_by else "linear", xlabel=x_name, ylabel=y_name)
        ax.set_title((P_LABEL if fit else "Trials by state (no fit)")
                     + (f", {b.slice_by} ≈ {level:.3g}" if level is not None else ""))
    legend = {label: h for ax in panels for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    if filled is not None:
        legend |= {f"{AMBIGUOUS[0]:g} < P < {AMBIGUOUS[1]:g}: the boundary's interval":
                   Patch(facecolor="none", edgecolor="black", hatch=BAND["hatches"][0]),
                   f"faded: extrapolated, no trial within {NEAR:g} of the panel":
                   Patch(facecolor="white", edgecolor="grey")}
        fig.colorbar(filled, ax=list(panels), label=f"{P_LABEL} from {fit.describe()}; black line: 0.5")
    elif fit is None:
        fig.suptitle(textwrap.fill(a.fit_note or "No boundary fit.", 75), fontsize=9)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=4, fontsize=8)
    return plots.png(fig, labelled)


def _p_panel(ax: Any, shown: list[TrialRow], fit: Any, xs: np.ndarray, ys: np.ndarray, names: tuple[str, str],
             at: dict[str, Any], y_log: bool) -> Any:
    """P colours, the 0.5 line, the 0.1-0.9 band and the extrapolated region of one panel; returns the colours."""
    gx, gy = np.meshgrid(xs, ys)
    p = fit.p_harmless({names[0]: gx, names[1]: gy, **at})
    filled = ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap="RdYlGn", alpha=0.55)
    ax.contourf(gx, gy, p, levels=list(AMBIGUOUS), **BAND)
    ax.contour(gx, gy, p, levels=list(AMBIGUOUS), colors="dimgrey", linestyles="--", linewidths=1)
    ax.contour(gx, gy, p, levels=[0.5], colors="black", linewidths=2)
    far = _distance(gx, gy, shown, names, y_log) > NEAR
    if far.any():
        ax.contourf(gx, gy, far.astype(float), levels=[0.5, 1.5], **FAR)
    return filled


def _distance(gx: np.ndarray, gy: np.ndarray, shown: list[TrialRow], names: tuple[str, str],
              y_log: bool) -> np.ndarray:
    """Each grid point's distance to the nearest shown trial, the panel's extent = 1 on each axis."""
    def unit(values: Any, grid: np.ndarray, log: bool) -> np.ndarray:
        v, g = (np.log10(values), np.log10(grid)) if log else (np.asarray(values, dtype=float), grid)
        return (v - g.min()) / max(float(np.ptp(g)), 1e-12)

    if not shown:
        return np.full(gx.shape, np.inf)
    tx = unit([t.params[names[0]] for t in shown], gx, True)
    ty = unit([t.params[names[1]] for t in shown], gy, y_log)
    ux, uy = unit(gx, gx, True), unit(gy, gy, y_log)
    return np.min(np.hypot(ux[..., None] - tx, uy[..., None] - ty), axis=-1)


def _points(ax: Any, shown: list[TrialRow], a: BoundaryAnalysis, x_name: str, y_name: str) -> int:
    """The panel's trials by state, their ids and the recommended ring; returns the labels written."""
    for state, (colour, marker) in plots.STATE_STYLE.items():
        sel = [t for t in shown if a.states.get(t.trial_id) is state]
        if sel:
            ax.scatter([t.params[x_name] for t in sel], [t.params[y_name] for t in sel], c=colour, marker=marker,
                       edgecolors="black", linewidths=0.5, s=40, label=state.value if state else "scored (no baseline)",
                       zorder=3)
    best = [t for t in shown if t.trial_id == a.recommended]
    if best:
        ax.scatter(best[0].params[x_name], best[0].params[y_name], s=260, facecolors="none", edgecolors="black",
                   linewidths=2, label="recommended", zorder=4)
    return plots.label_points(ax, [(t.trial_id, t.params[x_name], t.params[y_name]) for t in shown])


def _line_panel(ax: Any, shown: list[TrialRow], a: BoundaryAnalysis, xs: np.ndarray, x_name: str) -> int:
    """A boundary along one coordinate: the fit's P curve with its band, trials at the P their state read."""
    if a.fit is not None:
        p = a.fit.p_harmless({x_name: xs})
        ax.plot(xs, p, color="black", lw=1.5, label=f"fit's {P_LABEL}")
        ax.axhspan(*AMBIGUOUS, facecolor="none", edgecolor="grey", hatch=BAND["hatches"][0])
    ax.axhline(0.5, color="black", ls=":", lw=1)
    for state, (colour, marker) in plots.STATE_STYLE.items():
        sel = [t for t in shown if a.states.get(t.trial_id) is state and t.trial_id in a.p_harmless]
        if sel:
            ax.scatter([t.params[x_name] for t in sel], [a.p_harmless[t.trial_id] for t in sel], c=colour,
                       marker=marker, edgecolors="black", linewidths=0.5, s=40, label=state.value, zorder=3)
    ax.set(xscale="log", xlabel=x_name, ylabel=P_LABEL, ylim=(-0.05, 1.05))
    placed = [t for t in shown if t.trial_id in a.p_harmless]
    return plots.label_points(ax, [(t.trial_id, t.params[x_name], a.p_harmless[t.trial_id]) for t in placed])


def _grid(values: list[float], log: bool) -> np.ndarray:
    """N_GRID points over the trials' values: a factor 1.5 beyond them on a log axis, 5% of the span on a linear one."""
    lo, hi = min(values), max(values)
    if log:
        return np.geomspace(lo / 1.5, hi * 1.5, N_GRID)
    pad = 0.05 * (hi - lo) or 0.5
    return np.linspace(lo - pad, hi + pad, N_GRID)
