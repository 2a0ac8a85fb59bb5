"""Benchmark: what the service costs over running the same trials by hand, measured side by side.

    python -m tuner.bench_overhead --space seed_grid --preset miniworld-small [--max-concurrent 1] [key=value ...]

1. runs the search (``python -m tuner.run``, a fresh process: Ray start, baseline, Tune, MLflow, report);
2. re-runs every trial of that search bare, in this process, one after another: the same TrainConfig,
   training + lm-eval evaluation, no Ray, no Tune, no MLflow;
3. prints both wall times and their ratio. ``--max-concurrent 1`` (the default here) keeps the comparison
   sequential on both sides; with more, the ratio also shows what concurrency wins back.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tuner.orchestration.context import SearchContext
from tuner.records.results import ResultsTable


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

    from trainables.train_loop import run_in_process

    ctx = SearchContext.load(run_dir)
    trials = [row for row in ResultsTable(run_dir).rows() if not row.is_baseline]
    bare = []
    for row in trials:
        start = time.perf_counter()
        run_in_process(ctx.trial_config(row.params), evaluate=True)
        bare.append(time.perf_counter() - start)
    bare_s = sum(bare)
    print("| what | seconds |\n|---|---:|\n"
          f"| search, {len(trials)} trials + baseline (`tuner.run`) | {search_s:.1f} |\n"
          f"| same trials bare (train + eval, in-process, sequential) | {bare_s:.1f} |\n"
          f"| per trial, bare (mean) | {bare_s / max(len(trials), 1):.1f} |\n"
          f"| overhead per trial | {(search_s - bare_s) / max(len(trials), 1):.1f} |\n\n"
          f"ratio search / bare = {search_s / bare_s:.2f} (max_concurrent={args.max_concurrent}, "
          f"{os.cpu_count()} CPUs); run dir {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
