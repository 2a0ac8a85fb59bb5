"""Boundary error against trials: median and interquartile band per method (PNG bytes, Agg canvas)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tuner.bench_search.metrics import TARGET, Target, error_curves
from tuner.bench_search.replay import Trace


def error_png(traces: dict[str, list[Trace]], grid_size: int, target: Target = TARGET) -> bytes:
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, runs in traces.items():
        med, q25, q75 = error_curves(runs)
        n = np.arange(1, len(med) + 1)
        (line,) = ax.plot(n, med, lw=1.8, label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(n, q25, q75, color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(target.max_error, color="black", ls="--", lw=1, label=f"target {target.max_error:g} decades")
    ax.set_xlabel(f"completed trials (full grid: {grid_size})")
    ax.set_ylabel("boundary error, decades of remove_coef")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
