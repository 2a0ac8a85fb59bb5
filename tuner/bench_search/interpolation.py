"""The replay's answer model between grid points, checked: the centre of every grid cell trained for real and
compared with what the table's interpolation answers there.

    python -m tuner.bench_search.interpolation --table world0 --workers 2 --drop-scales 0.01 0.02 0.05 0.1
    python -m tuner.bench_search.interpolation --table world1 --seed 1

The centres (per axis the midpoints of consecutive grid values, in the axis' coordinate: the points farthest from
the grid) are a table of their own, built and cached like the grid's (``TableSpec.seed_table(seed, centred=True)``),
trained with one training seed and read against that seed's grid table, so both sides live in the same seed's
landscape and the residual is interpolation error plus eval noise:

    residual = measured - Surface(seed table, drop_scale)(centre)        (retain drop and forget, in points)

per answer model (linear, then asinh(drop / s) for each ``--drop-scales`` s; forget is linear in every model), over
every cell, over the cells the boundary crosses (the cell's corner drops on both sides of δ: the same cells for
every model) and over the centres the model places near the edge (its drop in ``real.EDGE_BAND``, where harmlessness
is decided), with how often the model calls a centre harmless (drop ≤ δ) where the measurement does not, and the
reverse.
Prints a markdown table and, for a table of several training seeds, how the replay's ``draws`` landscapes
spread between grid points (``seed_spread``); writes ``interpolation_<table>_seed<seed>.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces.facts import DEFAULT_DELTA, retain_drop
from tuner.bench_search.answers import DROP_SCALE, AnswerModel, RealisticAnswers
from tuner.bench_search.real import EDGE_BAND
from tuner.bench_search.surface import Surface
from tuner.bench_search.table import Table
from tuner.bench_search.tables import TABLES

DROP_SCALES = (0.005, 0.01, 0.02, 0.05)

CELL_SETS = ("all", "crossing", "edge")  # every cell, those the boundary crosses, the model's edge (module doc)


def corner_range(grid_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per grid cell, the min, max and mean of its corners' values (an axis of one value is its own cell)."""
    lo = hi = mean = grid_values
    for ax in range(grid_values.ndim):
        if grid_values.shape[ax] > 1:
            first, second = (tuple(s if j == ax else slice(None) for j in range(grid_values.ndim))
                             for s in (slice(0, -1), slice(1, None)))
            lo, hi = np.minimum(lo[first], lo[second]), np.maximum(hi[first], hi[second])
            mean = (mean[first] + mean[second]) / 2
    return lo, hi, mean


def seed_spread(mean: Table, centres: Table, delta: float) -> dict[str, Any]:
    """How the replay's ``draws`` landscapes spread between grid points, over all cells and those the mean's boundary
    crosses (rms over the cells, points): the seed tables' sd at the cells' corners, the landscapes' sd at the
    centres (the seed tables interpolated) and the forget sd ``restore_seed_var`` adds back there."""
    params, columns = centres.points(), _columns(centres)
    at_centres = np.array([Surface(t, DROP_SCALE).values(columns)[:, :2] for t in mean.seeds])  # seeds x cells x 2
    answers = RealisticAnswers(mean, AnswerModel(), seed=0)
    added = np.array([answers.smoothed_seed_sd(p)[0] for p in params])
    corner_var = [corner_range(np.var([getattr(t, side) for t in mean.seeds], axis=0, ddof=1))[2].ravel()
                  for side in ("forget", "retain")]
    landscape_var = at_centres.var(axis=0, ddof=1)  # cells x 2
    out = {}
    for name, keep in (("all", np.ones(len(params), bool)), ("crossing", _crossing(mean, delta))):
        out[name] = {"cells": int(keep.sum()), "forget_added": _rms(added ** 2, keep)}
        for k, side in enumerate(("forget", "retain")):
            out[name][side] = {"corners": _rms(corner_var[k], keep),
                               "landscapes_at_centres": _rms(landscape_var[:, k], keep)}
    return out


def _columns(centres: Table) -> dict[str, np.ndarray]:
    """The centres' parameter columns, in the order of ``centres.points()``."""
    return {name: np.array([p[name] for p in centres.points()]) for name in centres.names}


def _crossing(grid: Table, delta: float) -> np.ndarray:
    """Per cell (flat), whether its corners' retain drops lie on both sides of ``delta``."""
    lo, hi, _ = corner_range(grid.retain_drop())
    return ((lo <= delta) & (hi > delta)).ravel()


def _rms(variances: np.ndarray, keep: np.ndarray) -> float:
    """The rms sd over the kept cells, in points."""
    return float(100 * np.sqrt(np.mean(variances[keep])))


def compare(grid: Table, centres: Table, delta: float, drop_scale: float | None) -> dict[str, Any]:
    """Residuals of one answer model at the centres: over all cells, the crossing ones and the model's edge."""
    answered = Surface(grid, drop_scale).values(_columns(centres))
    model_drop = retain_drop(grid.baseline_retain, answered[:, 1])
    measured_drop = centres.retain_drop().ravel()
    drop_residual, forget_residual = measured_drop - model_drop, centres.forget.ravel() - answered[:, 0]
    crossing = _crossing(grid, delta)

    def summary(keep: np.ndarray) -> dict[str, Any]:
        n = int(keep.sum())
        out: dict[str, Any] = {"cells": n}
        for name, r in (("drop", drop_residual[keep]), ("forget", forget_residual[keep])):
            out[name] = {"mean": float(r.mean()) if n else None, "se": float(r.std(ddof=1) / np.sqrt(n)) if n > 1
                         else None, "rms": float(np.sqrt(np.mean(r ** 2))) if n else None}
        out["model_harmless_measured_not"] = int((keep & (model_drop <= delta) & (measured_drop > delta)).sum())
        out["measured_harmless_model_not"] = int((keep & (model_drop > delta) & (measured_drop <= delta)).sum())
        return out

    edge = (model_drop > EDGE_BAND[0]) & (model_drop <= EDGE_BAND[1])
    sets = dict(zip(CELL_SETS, (np.ones_like(crossing), crossing, edge), strict=True))
    return {"drop_scale": drop_scale, **{name: summary(keep) for name, keep in sets.items()}}


def markdown(models: list[dict[str, Any]]) -> str:
    """One row per answer model and cell set: residual mean ± se and RMS (points), and the misread cells."""
    lines = ["| answer model | cells | n | drop residual | drop RMS | forget residual | forget RMS | "
             "harmless: model not measured / measured not model |", "|---|---|---|---|---|---|---|---|"]
    for m in models:
        name = "linear" if m["drop_scale"] is None else f"asinh(drop / {m['drop_scale']:g})"
        for cells in CELL_SETS:
            s = m[cells]
            if not s["cells"]:
                continue
            d, f = s["drop"], s["forget"]
            lines.append(f"| {name} | {cells} | {s['cells']} | {_points(d)} | {100 * d['rms']:.2f} | {_points(f)} | "
                         f"{100 * f['rms']:.2f} | "
                         f"{s['model_harmless_measured_not']} / {s['measured_harmless_model_not']} |")
    return "\n".join(lines)


def _points(residual: dict[str, Any]) -> str:
    """A residual's mean ± se in points (the ± where there is an se)."""
    se = f" ± {100 * residual['se']:.2f}" if residual["se"] is not None else ""
    return f"{100 * residual['mean']:+.2f}{se}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tuner.bench_search.interpolation",
                                 description=__doc__.split("\n\n")[0])
    named = [k for k, t in TABLES.items() if t.synthetic is None]
    ap.add_argument("--table", required=True, choices=named, help="a named mini-world table (tables.TABLES)")
    ap.add_argument("--seed", type=int, default=0, help="the training seed: one of the table's (default 0)")
    ap.add_argument("--drop-scales", type=float, nargs="+", default=list(DROP_SCALES),
                    help="asinh(drop / s) answer models compared with the linear one (fractions in (0, 1))")
    ap.add_argument("--delta", type=float, default=DEFAULT_DELTA)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench_search") / "interpolation")
    args = ap.parse_args(argv)
    spec = TABLES[args.table]
    if args.seed not in spec.train_seeds:
        ap.error(f"--seed {args.seed}: table {args.table} is built with training seeds {spec.train_seeds}; "
                 f"choose one of them")
    bad = [s for s in args.drop_scales if not 0 < s < 1]
    if bad:
        ap.error(f"--drop-scales {bad}: a scale is a retain drop, a fraction in (0, 1) (e.g. 0.05)")
    grid, centres = (spec.seed_table(args.seed, args.workers, centred=c) for c in (False, True))
    models = [compare(grid, centres, args.delta, s) for s in (None, *args.drop_scales)]
    spread = seed_spread(spec.load(args.workers), centres, args.delta) if len(spec.train_seeds) > 1 else None
    result = {"table": args.table, "seed": args.seed, "delta": args.delta, "models": models, "seed_spread": spread}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"interpolation_{args.table}_seed{args.seed}.json"
    path.write_text(json.dumps(result, indent=1))
    print(markdown(models))
    if spread:
        print("\n| cells | n | forget sd: corners / landscapes at centres / added | retain sd: corners / landscapes "
              "at centres |\n|---|---|---|---|")
        for name, v in spread.items():
            f, r = v["forget"], v["retain"]
            print(f"| {name} | {v['cells']} | {f['corners']:.2f} / {f['landscapes_at_centres']:.2f} / "
                  f"{v['forget_added']:.2f} | {r['corners']:.2f} / {r['landscapes_at_centres']:.2f} |")
    print(f"\n{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
