"""Score real searches against their world's table as the replay scores its seeds, and place them in its spread.

    python -m tuner.bench_search.real RUN_DIR [RUN_DIR ...] --table world1 [--replay OUT/world1/bench_search.json]

Per run (a ``python -m tuner.run --space kl_boundary`` directory on that table's world): the completed trials
when it stopped (or at its cap), the boundary error of the sampler's model against the table (decades), the
regret of its recommendation (forget points above the table's best harmless forget, at the recommended
coefficients on the interpolated table) and whether that pick is truly harmless. With ``--replay``, each number's
rank among the replay's seeds at their end, their stop or the cap (``boundary@C`` for the run's concurrency C, else
``boundary``; the replay run with the search's cap), the table read as that replay's answers read it (its
``drop_scale``). Last, the answer model's check: over the runs'
trials near the edge, the observed retain drop minus the table's (``drop_residuals``; 0 on average if the
interpolated table is the truth the real mini-world draws around), against the truth (the training seeds' mean)
and, for trials whose training seed the table was built with, against that seed's table (what a replay answers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces import get_space
from search_spaces.facts import CONFIRM_RUNS, SEED_FIELD, retain_drop
from tuner.bench_search.answers import DROP_SCALE, drop_scale_arg
from tuner.bench_search.methods import Estimate
from tuner.bench_search.replay import boundary_error
from tuner.bench_search.surface import Surface
from tuner.bench_search.table import Table
from tuner.bench_search.tables import TABLES
from tuner.boundary_search.report_fit import run_state
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID

KEYS = ("trials", "error", "regret")  # compared with the replay's per-seed at-stop values
EDGE_BAND = (0.005, 0.10)  # table retain drops where a real trial checks the answer model's truth near the edge


def score_run(run_dir: Path, table: Table, drop_scale: float | None = None) -> dict[str, Any]:
    """One real search's stop, boundary error, regret and feasibility against ``table`` (see the module doc), its
    retain drop interpolated as the replay's answers read it (``drop_scale``)."""
    config = json.loads((run_dir / "run_config.json").read_text())
    base = next(r for r in ResultsTable(run_dir).rows() if r.trial_id == BASELINE_ID)
    state = run_state(run_dir, get_space(config["space"]), config["preset"], base.retain.acc, config["delta"],
                      (base.forget.acc, base.forget.stderr))
    rec = state.recommend(CONFIRM_RUNS)  # the search's answer, as its report gives it
    surface = Surface(table, drop_scale)
    error = boundary_error(table, Estimate(state.p_harmless, None), table.boundary(config["delta"], drop_scale))
    forget, retain, _, _ = surface(rec.params) if rec else (np.nan, -np.inf, 0, 0)
    return {"run": str(run_dir), "seed": config["seed"], "max_concurrent": config["max_concurrent"],
            "trials": len(state.trials), "stopped": (run_dir / "stop.json").is_file(), "error": error,
            "regret": 100 * (forget - surface.best_feasible_forget(config["delta"])),
            "feasible": bool(retain_drop(table.baseline_retain, retain) <= config["delta"]),
            "recommended": rec.params if rec else None}


def drop_residuals(run_dir: Path, table: Table, drop_scale: float | None = None,
                   seed_tables: dict[int, Table] | None = None) -> np.ndarray:
    """Per scored trial of a real search near the edge (the table's drop in EDGE_BAND): its observed retain drop
    minus the table's at its coefficients, read as ``drop_scale`` says (accuracy fractions). With ``seed_tables``
    (training seed -> that seed's table), each trial against its own seed's table, those of other seeds left out."""
    rows = ResultsTable(run_dir).rows()
    base = next(r for r in rows if r.trial_id == BASELINE_ID)
    truth, out = Surface(table, drop_scale), []
    surface_of = (lambda r: truth) if seed_tables is None else _seed_surfaces(run_dir, seed_tables, drop_scale)
    for r in rows:
        surface = surface_of(r) if r.trial_id != BASELINE_ID and r.scored else None
        if surface is not None:
            expected = retain_drop(table.baseline_retain, surface(r.params)[1])
            if EDGE_BAND[0] < expected <= EDGE_BAND[1]:
                out.append(retain_drop(base.retain.acc, r.retain.acc) - expected)
    return np.array(out)


def _seed_surfaces(run_dir: Path, seed_tables: dict[int, Table], drop_scale: float | None) -> Any:
    """row -> the surface of the table of the training seed it ran with (None: not one of the tables')."""
    first_seed = json.loads((run_dir / "run_config.json").read_text())["train_config"][SEED_FIELD]
    surfaces = {s: Surface(t, drop_scale) for s, t in seed_tables.items()}
    return lambda row: surfaces.get(int(row.params.get(SEED_FIELD, first_seed)))  # an offset trial's row carries it


def spread(replay: dict[str, Any], max_concurrent: int) -> dict[str, list[float]]:
    """The replay's per-seed values at the end (stop or cap) of the boundary sampler at ``max_concurrent``, and
    under "stopped" 1 / 0 per seed."""
    name = "boundary" if max_concurrent == 1 else f"boundary@{max_concurrent}"
    rows = replay["methods"][name]["per_seed_at_end"]
    return {k: sorted(float(r[k]) for r in rows) for k in (*KEYS, "stopped")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tuner.bench_search.real", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    ap.add_argument("--table", required=True, choices=[k for k, t in TABLES.items() if t.synthetic is None])
    ap.add_argument("--replay", type=Path, help="the bench_search.json of a replay on the same table")
    ap.add_argument("--drop-scale", type=drop_scale_arg, metavar="SCALE|linear",
                    help=f"read the table's retain drop as asinh(drop / SCALE), or linearly (default: as the "
                         f"replay's answers read it, else as the replay's default answer model does: {DROP_SCALE})")
    args = ap.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "optuna.db").is_file()]
    if missing:
        ap.error(f"no optuna.db in {', '.join(missing)}: pass the run directories of finished searches")
    replay = json.loads(args.replay.read_text()) if args.replay else None
    if replay and not all("per_seed_at_end" in m for k, m in replay["methods"].items() if k.startswith("boundary")):
        ap.error(f"{args.replay} has no per_seed_at_end (a replay written before it was kept): rerun the replay")
    asked = None if args.drop_scale in (None, "linear") else args.drop_scale  # "linear": the drop as it is
    replayed = replay["answers"].get("drop_scale") if replay else DROP_SCALE
    if args.drop_scale is not None and replay and asked != replayed:
        ap.error(f"--drop-scale {args.drop_scale} is not the replay's ({replayed or 'linear'}): the runs and the "
                 "replay must be scored against one truth; drop --drop-scale or pass a replay made with it")
    drop_scale = replayed if args.drop_scale is None else asked
    table = TABLES[args.table].load()  # after every check: it may build the table's seeds (minutes)
    for run in args.runs:
        s = score_run(run, table, drop_scale)
        line = (f"{run}: {s['trials']} trials ({'stopped' if s['stopped'] else 'cap'}), boundary error "
                f"{s['error']:.3f} decades, regret {s['regret']:.1f} points, "
                f"{'truly harmless' if s['feasible'] else 'truly damaging'}")
        if replay:
            ref = spread(replay, s["max_concurrent"])
            line += f"; the replay stopped in {np.mean(ref['stopped']):.0%} of {len(ref['stopped'])} seeds; " \
                    "in its spread at each seed's end (stop or cap): " + ", ".join(
                f"{k} {np.searchsorted(ref[k], s[k]) / len(ref[k]):.0%} of {len(ref[k])} seeds below "
                f"[{ref[k][0]:.3g}, {np.median(ref[k]):.3g}, {ref[k][-1]:.3g}]" for k in KEYS)
        print(line)
    seed_tables = dict(zip(TABLES[args.table].train_seeds, table.seeds, strict=False))
    for against, tables in (("the truth", None), ("the trial's training seed's table", seed_tables)):
        residuals = np.concatenate([drop_residuals(run, table, drop_scale, tables) for run in args.runs])
        if len(residuals):
            print(f"answer model near the edge (table drop {100 * EDGE_BAND[0]:g}-{100 * EDGE_BAND[1]:g} points), "
                  f"observed minus {against}'s retain drop: {100 * residuals.mean():+.2f} points (sd "
                  f"{100 * residuals.std():.2f}, rms {100 * np.sqrt(np.mean(residuals**2)):.2f}) over "
                  f"{len(residuals)} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
