"""Run the replays on a process pool and summarise them: ``bench_search.json`` and the printed table."""

from __future__ import annotations

import math
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from multiprocessing import get_context
from typing import Any

from tqdm import tqdm

from tuner.bench_search.answers import AnswerModel, make_answers
from tuner.bench_search.edge_limit import CONFIDENCE, regret_given_runs
from tuner.bench_search.metrics import CALIBRATION_FROM, TARGET, summarise
from tuner.bench_search.replay import Trace, replay
from tuner.bench_search.table import Table


def _init_worker() -> None:
    """One thread per process: torch's, and SciPy's OpenBLAS (BoTorch's L-BFGS-B), which otherwise runs two
    busy-waiting threads per replay process on tiny matrices."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def run_all(table: Table, methods: list[str], seeds: int, concurrency: list[int], max_trials: int, delta: float,
            workers: int, snap: bool = False, model: AnswerModel | None = None) -> dict[str, list[Trace]]:
    """Every (method, max_concurrent, seed) replay on a spawn process pool; keys ``method`` / ``method@c``."""
    jobs = [(m, c, s) for m in methods for c in concurrency for s in range(seeds)]
    out: dict[str, list[Trace]] = {}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        futures = {pool.submit(replay, m, table, s, c, max_trials, delta, snap, model): (m, c) for m, c, s in jobs}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="replays", file=sys.stderr):
            m, c = futures[fut]
            out.setdefault(m if c == 1 else f"{m}@{c}", []).append(fut.result())
    return {k: sorted(v, key=lambda t: t.seed) for k, v in sorted(out.items())}


def report(table: Table, traces: dict[str, list[Trace]], budgets: tuple[int, ...], delta: float,
           snap: bool = False, model: AnswerModel | None = None) -> dict[str, Any]:
    methods = {name: summarise(runs, budgets) for name, runs in traces.items()}
    answers = {"snap": True} if snap else {"snap": False, **asdict(model or AnswerModel())}
    truth = make_answers(table, 0, snap, model)
    best = truth.best_feasible_forget(delta)  # the truth regret is measured from
    edge = {}  # realistic answers: what their noise allows at the edge (None: no pick is that sure with k runs)
    if not snap:
        limit = regret_given_runs(truth, delta)
        edge["regret_given_runs"] = {str(k): v if math.isfinite(v) else None for k, v in limit.items()}
    grid = {"grid_size": table.size, "median_trials_to_target": table.size, "p90_trials_to_target": table.size}
    return {"table": {"key": table.key, "grid_size": table.size, "shape": list(table.forget.shape),
                      "training_seeds": max(1, len(table.seeds)),
                      "best_feasible_forget": best,
                      "boundary_log10_remove": truth.boundary(delta).tolist(), **edge},
            "answers": answers, "delta": delta, "target": TARGET.__dict__, "budgets": list(budgets),
            "methods": {"grid": grid, **{k: {"grid_size": table.size, **v} for k, v in methods.items()}}}


def compact(result: dict[str, Any]) -> str:
    """The printed tables: one line per method, by its own estimate, then through the shared estimator."""
    b = result["budgets"]
    head = (["method", "median n", "p90 n", "reached", "boundary n"] + [f"err@{n}" for n in b]
            + [f"regret@{n}" for n in b] + [f"feas@{n}" for n in b]
            + ["stopped", "stop n", "target@stop", "err@stop", "regret@stop", "feas@stop"])

    def f(v: float | None, spec: str = ".2f") -> str:
        return "—" if v is None else format(v, spec)

    def row(name: str, m: dict[str, Any]) -> list[str]:
        at = {k: m.get(k) or {} for k in ("boundary_error_at", "regret_at", "feasible_rate_at")}
        return ([name, f(m["median_trials_to_target"], "g"), f(m["p90_trials_to_target"], "g"),
                 f(m.get("reached_rate"), ".0%"), f(m.get("median_trials_to_boundary"), "g")]
                + [f(at["boundary_error_at"].get(str(n))) for n in b]
                + [f(at["regret_at"].get(str(n)), ".1f") for n in b]
                + [f(at["feasible_rate_at"].get(str(n)), ".0%") for n in b]
                + [f(m.get("stopped_rate"), ".0%"), f(m.get("median_stop_trial"), "g"),
                   f(m.get("target_met_at_stop_rate"), ".0%"), f(m.get("error_at_stop")),
                   f(m.get("regret_at_stop"), ".1f"), f(m.get("feasible_at_stop_rate"), ".0%")])

    own = [row(name, m) for name, m in result["methods"].items()]
    edge = result["table"].get("regret_given_runs")
    limit = ("" if not edge else f"\n\nregret of a pick harmless in {CONFIDENCE:.0%} of seeds, by runs' worth of "
             "evidence at it: " + ", ".join(f"{k}: {'—' if v is None else f'{v:.1f}'}" for k, v in edge.items()))
    shared = [row(name, m["shared_estimator"]) for name, m in result["methods"].items() if "shared_estimator" in m]
    return _aligned(head, own) + "\n\nthrough the shared estimator (the boundary model on each method's trials):\n" \
        + _aligned(head[:-6], [r[:-6] for r in shared]) + limit + _calibration_lines(result)


def _calibration_lines(result: dict[str, Any]) -> str:
    """Per method, each P(harmless) band its recommendations fell in: the truly harmless share (and how many)."""
    lines = [f"  {name}: " + ", ".join(f"{b['p'][0]:g}-{b['p'][1]:g} {b['harmless_rate']:.0%} ({b['n']})"
                                      for b in m["p_calibration"] if b["n"])
             for name, m in result["methods"].items() if any(b["n"] for b in m.get("p_calibration", []))]
    return ("" if not lines else f"\n\nrecommendations truly harmless, by the method's P(harmless) at them (after "
            f"{CALIBRATION_FROM}+ trials, every seed):\n" + "\n".join(lines))


def _aligned(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows])
