"""The search service: an Optuna-backed Ray Tune search over unlearning hyper-parameters.

    python -m tuner.run --space kl_boundary                       # mini-world on this CPU, minutes
    python -m tuner.run --space seed_grid --preset miniworld
    python -m tuner.run --space kl_boundary --preset deep-ignorance --num-samples 40 --address auto \\
        --gpus-per-worker 1 eval_data_root=/shared/hf_data
    python -m tuner.run --resume runs/kl_boundary_miniworld_20261123-101500
    python -m tuner.run --space kl_boundary --preset miniworld-small --num-samples 2 --verbose   # all output
    python -m tuner.run --list-spaces

Every trial trains LoRA adapters in Ray Train workers, is scored with lm-eval in those workers, and
lands in ``<run_dir>/results.{jsonl,csv,md}`` and MLflow (a parent run per search, a child per trial).
While it runs, the console shows one progress line and one line per finished trial; the end prints the
report's verdict, where the results table and the boundary report are, and the command that opens the MLflow
dashboard. Tune's status table, Ray workers' output and library INFO lines go to ``<run_dir>/logs/``
(``tuner.orchestration.logs``); ``--verbose`` also prints them, and the whole results table at the end.
Everything a search needs is checked before Ray starts (``tuner.orchestration.preflight``): bad input prints
one ``error:`` line and exits 2, leaving nothing behind. ``--resume`` takes no other flag but ``--address``
and ``--verbose``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from search_spaces import DEFAULT_SPACE, SPACES, SearchSpace, describe_spaces, get_space
from trainables.config import ConfigError, TrainConfig
from trainables.preflight import check_ranges
from trainables.presets import PRESETS, load_preset
from trainables.train import parse_overrides
from tuner.orchestration.context import SearchContext, default_uri
from tuner.orchestration.preflight import check_search


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tuner.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--space", default=DEFAULT_SPACE, help=f"search space, one of {sorted(SPACES)} "
                    f"(default {DEFAULT_SPACE}; see --list-spaces)")
    ap.add_argument("--preset", default="miniworld", help=f"model + data + eval preset, one of {sorted(PRESETS)}")
    ap.add_argument("--num-samples", type=int, help="trials (default: the space's default for the preset)")
    ap.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster's CPUs/GPUs fit)")
    ap.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers (DDP) per trial")
    ap.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Train worker (0 = CPU)")
    ap.add_argument("--address", help="Ray cluster to join (e.g. auto); default: start Ray in this process")
    ap.add_argument("--run-dir", type=Path, help="output directory (default $RUN_ROOT or runs/, then "
                    "{space}_{preset}_{timestamp})")
    ap.add_argument("--mlflow-uri", help="MLflow tracking URI (default sqlite:///<run_dir>/mlflow.db)")
    ap.add_argument("--experiment", default="unlearn-tuner", help="MLflow experiment name")
    ap.add_argument("--seed", type=int, default=0, help="sampler seed (the training seed is seed=...)")
    ap.add_argument("--delta", type=float, help="harmless = retain drop <= delta (accuracy fraction; default: the "
                    "space's constraint_delta)")
    ap.add_argument("--verbose", action="store_true", help="also print Tune's status table, Ray workers' output "
                    "and library INFO lines (always in <run_dir>/logs/), and the whole results table at the end")
    ap.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted search")
    ap.add_argument("--list-spaces", action="store_true", help="print the search spaces and exit")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="TrainConfig fields for every trial")
    return ap


def validate(args: argparse.Namespace) -> SearchContext:
    """Everything checked before anything is created or started; raises ConfigError."""
    space = get_space(args.space)
    overrides = parse_overrides(args.overrides)
    cfg = load_preset(args.preset, overrides)
    _check_overrides(space, cfg, overrides)
    space.validate_against(cfg)
    delta = space.constraint_delta if args.delta is None else args.delta
    check_ranges({"--num-samples": args.num_samples, "--max-concurrent": args.max_concurrent,
                  "--workers-per-trial": args.workers_per_trial, "--gpus-per-worker": args.gpus_per_worker,
                  "--delta": delta})
    _check_data(cfg)
    default_root = Path(os.environ.get("RUN_ROOT", "runs"))  # the SLURM template exports a shared RUN_ROOT
    run_dir = args.run_dir or default_root / f"{args.space}_{args.preset}_{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(f"run directory {run_dir} already exists; use --resume {run_dir} or another --run-dir")
    run_dir = run_dir.resolve()
    return SearchContext(
        run_dir=str(run_dir), space=args.space, preset=args.preset, train_config=cfg.to_dict(),
        fixed=dict(space.fixed_for(args.preset)), num_samples=args.num_samples or space.num_samples_for(args.preset),
        max_concurrent=args.max_concurrent or 0, workers_per_trial=args.workers_per_trial,
        gpus_per_worker=args.gpus_per_worker, seed=args.seed, delta=delta,
        mlflow_uri=args.mlflow_uri or default_uri(run_dir), experiment=args.experiment, address=args.address,
        git_commit=_git_commit())


def _check_overrides(space: SearchSpace, cfg: TrainConfig, overrides: dict[str, str]) -> None:
    """A key=value the space searches or fixes would be silently replaced in every trial: reject it."""
    family = space.family(cfg)
    searched = {p.name for p in family.params} | {k for point in family.grid for k in point}
    for key, value in overrides.items():
        if key in searched or key in family.fixed:
            how = "searches" if key in searched else f"fixes ({key}={family.fixed[key]!r})"
            raise ConfigError(f"override {key}={value}: search space {space.name!r} {how} {key}; drop the "
                              f"override, or pick a --space that leaves it alone (see --list-spaces)")


def resume_context(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SearchContext:
    """The stored search of ``--resume``, wherever its directory now is. Only ``--address`` (a requeued
    job gets a new cluster) and ``--verbose`` may change; any other flag would be ignored, so it is an error."""
    defaults = vars(parser.parse_args([]))
    ignored = [f"--{key.replace('_', '-')}" for key, value in vars(args).items()
               if key not in ("resume", "address", "verbose", "overrides") and value != defaults[key]] + args.overrides
    if ignored:
        raise ConfigError(f"--resume continues the search its run_config.json describes, so {' '.join(ignored)} "
                          f"would be ignored; drop {'it' if len(ignored) == 1 else 'them'} (only --address and "
                          f"--verbose may change), or start a new search with --run-dir")
    ctx = SearchContext.load(args.resume)
    get_space(ctx.space)
    if "moved_from" in ctx.extra:
        print(f"resume: the run directory moved from {ctx.extra['moved_from']}; continuing in {ctx.run_dir}")
    if args.address is not None and args.address != ctx.address:
        print(f"resume: --address {args.address} replaces the stored address {ctx.address}")
        ctx.address = args.address
    return ctx


def _check_data(cfg: TrainConfig) -> None:
    for side in ("forget", "retain"):
        spec = getattr(cfg, side)
        if spec.source == "file" and not Path(spec.path).is_file():
            raise ConfigError(f"config field '{side}.path': data file {spec.path} does not exist")
    if cfg.eval_data_root and not Path(cfg.eval_data_root).is_dir():
        raise ConfigError(f"config field 'eval_data_root': {cfg.eval_data_root} is not a directory")


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_spaces:
        print(describe_spaces())
        return 0
    from trainables.offline import offline_env, set_offline_env

    try:
        ctx = resume_context(args, parser) if args.resume else validate(args)
        set_offline_env(offline_env(ctx.trial_config({})))  # before anything imports datasets
        check_search(ctx)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from tuner.orchestration.service import run_search

    return run_search(ctx, resume=bool(args.resume), verbose=args.verbose)
