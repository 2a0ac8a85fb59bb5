"""Replay benchmark of search methods against a dense table of the mini-world (or a synthetic one).

    python -m tuner.bench_search --preset miniworld --seeds 20 --max-concurrent 1 4 --workers 16
    python -m tuner.bench_search --synthetic --seeds 20 --budgets 12 24 48
    python -m tuner.bench_search --synthetic no-harmless --seeds 20     # one of synthetic.WORLDS
    python -m tuner.bench_search --preset miniworld-small --grid 2 2 1 --seeds 2 --methods boundary steps=8
    python -m tuner.bench_search --synthetic --snap      # the old replay: nearest grid point, frozen noise
    python -m tuner.bench_search --tables held-out --seeds 20    # named tables (tables.py), each in --out/NAME/

Builds (or reuses) the table, replays every method x concurrency x seed on a process pool, prints a
compact table and writes ``bench_search.json`` and ``bench_search_error.png`` to ``--out``. Answers are
realistic by default (``tuner.bench_search.answers``: the table interpolated as the truth, each replay answered
from one training seed's table where the table has several, else with fresh seed noise, and fresh eval noise per
answer); the synthetic world's truth is then its noise-free table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from search_spaces.facts import DEFAULT_DELTA
from tuner.bench_search.answers import (
    DROP_SCALE,
    EVAL_NOISE,
    SEED_NOISE,
    SEED_SD_FORGET,
    SEED_SD_RETAIN,
    AnswerModel,
    drop_scale_arg,
)
from tuner.bench_search.bench import compact, report, run_all
from tuner.bench_search.methods import METHODS
from tuner.bench_search.plot import error_png
from tuner.bench_search.synthetic import WORLDS
from tuner.bench_search.table import Table
from tuner.bench_search.tables import ROLES, TABLES, TableSpec, select


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tuner.bench_search", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--preset", default="miniworld", help="mini-world preset whose table is built / reused")
    src.add_argument("--synthetic", nargs="?", const="default", choices=WORLDS, metavar="NAME",
                     help=f"use a synthetic mini-world-shaped table: {', '.join(WORLDS)} (default: default)")
    src.add_argument("--tables", nargs="+", metavar="NAME",
                     help=f"named tables or roles, one report each: {', '.join((*ROLES, *TABLES))}")
    ap.add_argument("--grid", type=int, nargs=3, default=(7, 7, 4), metavar=("RETAIN", "REMOVE", "BETA"))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--max-concurrent", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--budgets", type=int, nargs="+", default=[12, 24, 48])
    ap.add_argument("--max-trials", type=int, default=64, help="replay length per seed")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--delta", type=float, default=DEFAULT_DELTA)
    ap.add_argument("--out", type=Path, default=Path("bench_search"))
    ap.add_argument("--snap", action="store_true",
                    help="answer with the nearest grid point's frozen values (the old replay) instead of realistic "
                         "answers")
    ap.add_argument("--eval-noise", choices=EVAL_NOISE, help="realistic answers' eval noise (default binomial)")
    ap.add_argument("--seed-noise", choices=SEED_NOISE,
                    help="training-seed noise: each training seed a trial trains with answers from its own "
                         "landscape, a Gaussian draw over the table's seed tables (default draws) or one seed table "
                         "(tables); on a table of one seed: an sd scaled with the effect, or the pooled sd "
                         "everywhere (constant, the fallback)")
    ap.add_argument("--seed-sd-forget", type=float, help=f"training-seed sd of forget acc (default {SEED_SD_FORGET})")
    ap.add_argument("--seed-sd-retain", type=float, help=f"training-seed sd of retain acc (default {SEED_SD_RETAIN})")
    ap.add_argument("--drop-scale", type=drop_scale_arg, metavar="SCALE|linear",
                    help=f"interpolate the table's retain drop as asinh(drop / SCALE) (a fraction; default "
                         f"{DROP_SCALE}), or linearly")
    ap.add_argument("--restore-seed-var", action=argparse.BooleanOptionalAction, default=None,
                    help="draws: add back, fresh per answer, the seed variance that interpolating the seed tables "
                         "smooths away between grid points (default: on)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="TrainConfig fields for every table point")
    args = ap.parse_args(argv)
    noise = {k: v for k, v in (("eval_noise", args.eval_noise), ("seed_noise", args.seed_noise),
                               ("seed_sd_forget", args.seed_sd_forget),
                               ("seed_sd_retain", args.seed_sd_retain), ("drop_scale", args.drop_scale),
                               ("restore_seed_var", args.restore_seed_var))
             if v is not None}
    if noise.get("drop_scale") == "linear":
        noise["drop_scale"] = None
    if args.snap and noise:
        ap.error(f"--snap answers with the table's frozen values: drop {', '.join(noise)} or --snap")
    try:
        model = None if args.snap else AnswerModel(**noise)
    except ValueError as e:
        ap.error(str(e))
    if args.tables:
        try:
            named = select(args.tables)
        except ValueError as e:
            ap.error(str(e))
        if args.overrides:
            ap.error("--tables names its tables' configs: drop the key=value overrides or use --preset")
        for name, spec in named.items():
            print(f"\n== {name} ({spec.role}) ==")
            _bench(spec.load(args.workers, args.delta, args.snap), args, model, args.out / name)
        return 0
    spec = TableSpec("ad hoc", tuple(args.grid), tuple(args.overrides), args.preset, args.synthetic)
    _bench(spec.load(args.workers, args.delta, args.snap), args, model, args.out)
    return 0


def _bench(table: Table, args: argparse.Namespace, model: AnswerModel | None, out: Path) -> None:
    """Replay every method on ``table``; write ``bench_search.json`` and the error plot to ``out``; print."""
    traces = run_all(table, args.methods, args.seeds, args.max_concurrent, max(args.max_trials, *args.budgets),
                     args.delta, args.workers, args.snap, model)
    result = report(table, traces, tuple(args.budgets), args.delta, args.snap, model)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_search.json").write_text(json.dumps(result, indent=1))
    (out / "bench_search_error.png").write_bytes(error_png(traces, table.size))
    print(compact(result))
    print(f"\n{out / 'bench_search.json'}\n{out / 'bench_search_error.png'}")


if __name__ == "__main__":
    sys.exit(main())
