"""Training-seed variance of a mini-world: the same points trained with several ``seed`` values (LoRA init and
batch order), each trial through the table builder's code path (``build_table.run_point``), one at a time.

    nice -n 10 python -m tuner.bench_search.seed_variance --seeds 4 --md seed_variance.md
    python -m tuner.bench_search.seed_variance --seeds 1 --point 1 3 0.3 --point 1 10 0.3   # a probe
    python -m tuner.bench_search.seed_variance --table world1    # over a named table's training-seed tables

Finished trials are appended to ``<out>/seed_points.jsonl`` and reused on a rerun (same preset and overrides).
Prints a markdown table: per point the mean and the seed-to-seed sd (ddof 1) of forget and retain accuracy
beside the mean lm-eval stderr, and the pooled sd = sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over the
points, the value ``answers.AnswerModel`` takes as its ``seed_sd_*`` default. ``--table`` trains nothing: it reads
the seed tables a named table is the mean of (``tables.TABLES``) and prints the pooled sd over every grid point and
over those near the edge (the mean's retain drop in ``EDGE_BAND``), and per seed how far its boundary and its best
harmless forget lie from the mean's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces.facts import DEFAULT_DELTA
from tuner.bench_search.answers import DROP_SCALE
from tuner.bench_search.build_table import run_point
from tuner.bench_search.real import EDGE_BAND
from tuner.bench_search.surface import Surface
from tuner.bench_search.table import Table
from tuner.bench_search.tables import TABLES

# (retain_coef, remove_coef, beta_kl, region), inside kl_boundary's miniworld ranges; the regions as measured on the
# default world (4 seeds): at beta_kl 0.3 the ratio remove/retain 0.03 changes nothing, 1 starts forgetting, 3
# forgets to ~60 % at a ~1-point retain drop, 10 damages; at beta_kl 1 the same happens a factor ~3 further out
POINTS: tuple[tuple[float, float, float, str], ...] = (
    (10.0, 0.3, 0.3, "no effect"), (1.0, 1.0, 0.3, "edge"), (1.0, 3.0, 0.3, "edge"), (1.0, 10.0, 0.3, "damage"),
    (10.0, 0.3, 1.0, "no effect"), (1.0, 3.0, 1.0, "no effect"), (1.0, 10.0, 1.0, "edge"), (1.0, 30.0, 1.0, "damage"),
)
NAMES = ("retain_coef", "remove_coef", "beta_kl")


def measure(points: list[tuple[float, float, float, str]], seeds: int, preset: str, overrides: dict[str, Any],
            sink: Path) -> list[dict[str, Any]]:
    """Every (point, seed) trial, reusing the matching records already in ``sink``."""
    done = {_key(r): r for r in _read(sink) if r["preset"] == preset and r["overrides"] == overrides}
    for r, x, b, _ in points:
        params = dict(zip(NAMES, (r, x, b), strict=True))
        for seed in range(seeds):
            record = {"preset": preset, "overrides": overrides, "params": params, "seed": seed}
            if _key(record) in done:
                continue
            out = run_point(preset, {**overrides, "seed": seed}, params, baseline=False)
            record |= {k: out[k] for k in ("forget", "retain", "diverged")}
            with open(sink, "a") as f:
                f.write(json.dumps(record) + "\n")
            done[_key(record)] = record
            print(f"seed {seed} {params}: forget {out['forget']['acc']:.4f} retain {out['retain']['acc']:.4f}",
                  file=sys.stderr)
    return list(done.values())


def summary(points: list[tuple[float, float, float, str]], seeds: int, records: list[dict[str, Any]]) -> dict:
    """Per point: mean, seed sd and mean lm-eval stderr of both sides; pooled seed sd per side."""
    by_key = {_key(r): r for r in records}
    rows, pooled = [], {"forget": [], "retain": []}
    for r, x, b, region in points:
        params = dict(zip(NAMES, (r, x, b), strict=True))
        runs = [by_key[_key({"params": params, "seed": s})] for s in range(seeds)]
        row = {"params": params, "region": region, "n": len(runs)}
        for side in ("forget", "retain"):
            acc = np.array([run[side]["acc"] for run in runs])
            sd = float(acc.std(ddof=1)) if len(acc) > 1 else float("nan")
            row[side] = {"mean": float(acc.mean()), "seed_sd": sd,
                         "lmeval_stderr": float(np.mean([run[side]["stderr"] for run in runs]))}
            pooled[side].append((len(acc) - 1, sd))
        rows.append(row)
    return {"points": rows, "pooled_sd": {side: _pool(v) for side, v in pooled.items()}}


def table_summary(table: Table, delta: float) -> str:
    """Seed-to-seed spread of a multi-seed table (``Table.seeds``), as markdown lines (points: accuracy x 100)."""
    acc = {side: np.array([getattr(t, side) for t in table.seeds]) for side in ("forget", "retain")}
    drop = table.retain_drop()
    edge = (drop > EDGE_BAND[0]) & (drop <= EDGE_BAND[1])
    lines = [f"{len(table.seeds)} training seeds x {table.size} points; pooled seed sd (ddof 1), points:", "",
             "| points | n | forget | retain |", "|---|---|---|---|"]
    for name, mask in (("all", np.ones_like(edge)), (f"edge (drop {100 * EDGE_BAND[0]:g}-{100 * EDGE_BAND[1]:g})",
                                                       edge)):
        sd = {k: 100 * float(np.sqrt(np.mean(a.var(axis=0, ddof=1)[mask]))) for k, a in acc.items()}
        lines.append(f"| {name} | {int(mask.sum())} | {sd['forget']:.2f} | {sd['retain']:.2f} |")
    mean_boundary, best = table.boundary(delta, DROP_SCALE), Surface(table, DROP_SCALE).best_feasible_forget(delta)
    lines += ["", f"| seed table | boundary minus the mean's (decades, mean / mean abs) | best harmless forget "
              f"(mean: {100 * best:.1f}) |", "|---|---|---|"]
    for i, t in enumerate(table.seeds):
        shift = t.boundary(delta, DROP_SCALE) - mean_boundary
        lines.append(f"| {i} | {shift.mean():+.3f} / {np.abs(shift).mean():.3f} "
                     f"| {100 * Surface(t, DROP_SCALE).best_feasible_forget(delta):.1f} |")
    return "\n".join(lines) + "\n"


def markdown(result: dict[str, Any], command: str) -> str:
    head = ("| retain_coef | remove_coef | beta_kl | ratio | region | seeds | forget mean | forget seed sd "
            "| forget lm-eval se | retain mean | retain seed sd | retain lm-eval se |")
    lines = [f"Command: `{command}`", "", "Accuracies in points (x100); sd over training seeds (ddof 1).", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for row in result["points"]:
        p, f, r = row["params"], row["forget"], row["retain"]
        lines.append(f"| {p['retain_coef']:g} | {p['remove_coef']:g} | {p['beta_kl']:g} "
                     f"| {p['remove_coef'] / p['retain_coef']:.3g} | {row['region']} | {row['n']} "
                     f"| {100 * f['mean']:.2f} | {100 * f['seed_sd']:.2f} | {100 * f['lmeval_stderr']:.2f} "
                     f"| {100 * r['mean']:.2f} | {100 * r['seed_sd']:.2f} | {100 * r['lmeval_stderr']:.2f} |")
    sd = result["pooled_sd"]
    lines += ["", f"Pooled seed sd: forget {sd['forget']:.4f}, retain {sd['retain']:.4f} (fractions)."]
    return "\n".join(lines) + "\n"


def _pool(df_sd: list[tuple[int, float]]) -> float:
    df = sum(d for d, _ in df_sd)
    return float(np.sqrt(sum(d * s * s for d, s in df_sd if d) / df)) if df else float("nan")


def _key(record: dict[str, Any]) -> tuple:
    return (*(float(record["params"][n]) for n in NAMES), int(record["seed"]))


def _read(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            out.append(json.loads(line))
        except ValueError:  # a torn last line (crash mid-write): that trial is redone
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tuner.bench_search.seed_variance",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="miniworld")
    ap.add_argument("--seeds", type=int, default=4, help="training seeds 0..N-1 per point")
    ap.add_argument("--point", type=float, nargs=3, action="append", metavar=("RETAIN", "REMOVE", "BETA"),
                    help="a point to measure (repeatable); default: the eight POINTS")
    ap.add_argument("--out", type=Path, default=Path("bench_search"))
    ap.add_argument("--md", type=Path, help="also write the markdown table here")
    ap.add_argument("--table", choices=[k for k, t in TABLES.items() if len(t.train_seeds) > 1],
                    help="summarise a named table's training-seed tables instead of training points")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="TrainConfig fields for every trial")
    args = ap.parse_args(argv)
    if args.table:
        print(table_summary(TABLES[args.table].load(), DEFAULT_DELTA))
        return 0
    if args.seeds < 1:
        ap.error(f"--seeds {args.seeds}: needs at least 1 (2 or more for an sd)")
    from trainables.train import parse_overrides

    points = [(*p, "given") for p in args.point] if args.point else list(POINTS)
    args.out.mkdir(parents=True, exist_ok=True)
    records = measure(points, args.seeds, args.preset, parse_overrides(args.overrides),
                      args.out / "seed_points.jsonl")
    result = summary(points, args.seeds, records)
    (args.out / "seed_variance.json").write_text(json.dumps(result, indent=1))
    text = markdown(result, "python -m tuner.bench_search.seed_variance " + shlex.join(argv or sys.argv[1:]))
    if args.md:
        args.md.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
