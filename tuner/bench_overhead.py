"""Benchmark: what the service costs over running the same trials by hand, measured side by side.

    python -m tuner.bench_overhead --space seed_grid --preset miniworld-small [--max-concurrent 1] [key=value ...]

1. runs the search (``python -m tuner.run``, a fresh process: Ray start, baseline, Tune, MLflow, report);
2. re-runs every trial of that search bare, in this process, one after another: the same TrainConfig,
   training + lm-eval evaluation, no Ray, no Tune, no MLflow;
3. prints both wall times and their ratio. ``--max-concurrent 1`` (the default here) keeps the comparison
   sequential on both sides; with more, the ratio also shows what concurrency wins back;
4. prints where the time went: per phase, the mean seconds per trial of the search (its results rows'
   ``phase_seconds``, driver and worker) beside the bare runs' (``run_in_process``), then the search's own
   phases (``run_dir/search_phases.json``), once per search.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tuner.orchestration.context import SearchContext
from tuner.records.results import ResultsTable
from tuner.records.schema import TrialRow


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tuner.bench_overhead", description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="seed_grid")
    ap.add_argument("--preset", default="miniworld-small")
    ap.add_argument("--max-concurrent", type=int, default=1)
    ap.add_argument("--num-samples", type=int)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args(argv)

    run_dir = Path(tempfile.mkdtemp(prefix="bench_overhead_")) / "run"
    command = [sys.executable, "-m", "tuner.run", "--space", args.space, "--preset", args.preset, "--run-dir",
               str(run_dir), "--max-concurrent", str(args.max_concurrent), *args.overrides]
    if args.num_samples:
        command += ["--num-samples", str(args.num_samples)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    search_s = time.perf_counter() - start

    start = time.perf_counter()
    from trainables.train_loop import run_in_process

    bare_imports_s = time.perf_counter() - start
    ctx = SearchContext.load(run_dir)
    trials = [row for row in ResultsTable(run_dir).rows() if not row.is_baseline]
    bare, bare_phases = [], []
    for row in trials:
        start = time.perf_counter()
        bare_phases.append(run_in_process(ctx.trial_config(row.params), evaluate=True)["phase_seconds"])
        bare.append(time.perf_counter() - start)
    bare_s = sum(bare)
    print("| what | seconds |\n|---|---:|\n"
          f"| search, {len(trials)} trials + baseline (`tuner.run`) | {search_s:.1f} |\n"
          f"| same trials bare (train + eval, in-process, sequential) | {bare_s:.1f} |\n"
          f"| per trial, bare (mean) | {bare_s / max(len(trials), 1):.1f} |\n"
          f"| overhead per trial | {(search_s - bare_s) / max(len(trials), 1):.1f} |\n\n"
          f"ratio search / bare = {search_s / bare_s:.2f} (max_concurrent={args.max_concurrent}, "
          f"{os.cpu_count()} CPUs); run dir {run_dir}")
    search_phases = json.loads((run_dir / "search_phases.json").read_text())
    print("\n" + phase_table(trials, bare_phases, bare) + "\n\n"
          + search_table(search_phases, search_s, trials, args.max_concurrent, bare_imports_s))
    return 0


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.2f}" if values else "–"


def phase_table(trials: list[TrialRow], bare_phases: list[dict[str, float]], bare_walls: list[float]) -> str:
    """``| phase | search | bare |``: mean seconds per trial over the trials that have the phase (n if fewer)."""
    search = [row.phase_seconds for row in trials]
    ordered = sorted(search, key=len, reverse=True) + bare_phases  # a trial with every phase first (gap)
    names = list(dict.fromkeys(name for phases in ordered for name in phases))
    lines = ["| phase (mean s per trial) | search | bare |", "|---|---:|---:|"]
    for name in names:
        s = [p[name] for p in search if name in p]
        note = f" (n={len(s)})" if 0 < len(s) < len(search) else ""
        lines.append(f"| {name}{note} | {_mean(s)} | {_mean([p[name] for p in bare_phases if name in p])} |")
    lines.append(f"| **sum of phases** | {_mean([sum(p.values()) for p in search])} | "
                 f"{_mean([sum(p.values()) for p in bare_phases])} |")
    lines.append(f"| fit() per trial (train + eval seconds); bare: run_in_process | "
                 f"{_mean([row.train_seconds + row.eval_seconds for row in trials])} | {_mean(bare_walls)} |")
    return "\n".join(lines)


def search_table(phases: dict[str, float], search_s: float, trials: list[TrialRow], max_concurrent: int,
                 bare_imports_s: float) -> str:
    """The search's once-per-search phases; the rest of the wall time is the ``tuner.run`` process itself."""
    lines = ["| search phase (once) | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in phases.items()]
    lines.append(f"| rest: python start, imports, validation, exit | {search_s - sum(phases.values()):.2f} |")
    if max_concurrent == 1 and "tune_fit" in phases:
        inside = sum(sum(row.phase_seconds.values()) for row in trials)
        lines.append(f"| of tune_fit, outside every trial (Tune start, first launch, stop) | "
                     f"{phases['tune_fit'] - inside:.2f} |")
    lines.append(f"| bare: imports, once | {bare_imports_s:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
