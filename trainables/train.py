"""One unlearning run from the command line, then its evaluation table.

    python -m trainables.train --preset miniworld --retain-coef 5 --remove-coef 5 --beta-kl 0.3
    python -m trainables.train --preset miniworld --workers 2 --out runs/one steps=80 lr=2e-3
    python -m trainables.train --preset miniworld --in-process          # same loop, no Ray (debugging)

Runs a Ray Train ``TorchTrainer`` (or the loop in-process), saves the LoRA adapter (safetensors) under
``--out``, scores the adapted model and the base model with lm-eval, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from trainables.config import ConfigError
from trainables.offline import offline_env, set_offline_env
from trainables.preflight import check_ranges, check_train_run, check_writable_dir
from trainables.presets import PRESETS, load_preset


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["lr=1e-3", "forget.path=x.jsonl"]`` -> dict; a malformed item is a ConfigError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. lr=1e-3)")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainables.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--preset", default="miniworld", help=f"one of {sorted(PRESETS)} (default miniworld)")
    ap.add_argument("--retain-coef", type=float)
    ap.add_argument("--remove-coef", type=float)
    ap.add_argument("--beta-kl", type=float)
    ap.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP), default 1")
    ap.add_argument("--gpus-per-worker", type=float, default=0.0)
    ap.add_argument("--out", type=Path, default=None, help="output directory (default runs/train_<time>)")
    ap.add_argument("--in-process", action="store_true", help="run the loop in this process, without Ray")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="any TrainConfig field")
    args = ap.parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        for flag in ("retain_coef", "remove_coef", "beta_kl"):
            if getattr(args, flag) is not None:
                overrides[flag] = getattr(args, flag)
        cfg = load_preset(args.preset, overrides)
        check_ranges({"--workers": args.workers, "--gpus-per-worker": args.gpus_per_worker})
        out = (args.out or Path("runs") / f"train_{time.strftime('%Y%m%d-%H%M%S')}").resolve()
        check_writable_dir(out, "--out")
        set_offline_env(offline_env(cfg))  # before anything imports datasets
        check_train_run(cfg, args.gpus_per_worker, args.workers, None, ray=not args.in_process)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from trainables.evaluation.result import EvalResult
    from trainables.evaluation.stage import format_eval_table

    if args.in_process:
        from trainables.train_loop import run_in_process

        final = run_in_process(cfg, out_dir=out / "checkpoint")
        adapter = out / "checkpoint" / "adapter"
    else:
        final, adapter = _run_with_ray(cfg, out, args.workers, args.gpus_per_worker)
    out.mkdir(parents=True, exist_ok=True)
    (out / "final_metrics.json").write_text(json.dumps(final, indent=1, default=float))
    if final.get("diverged"):
        print(f"run diverged at step {final['step']}: no evaluation. Metrics: {out / 'final_metrics.json'}")
        return 1
    baseline = _baseline(cfg)
    print(format_eval_table(EvalResult.from_dict(final["eval"]), baseline))
    print(f"adapter: {adapter}\nmetrics: {out / 'final_metrics.json'}")
    return 0


def _run_with_ray(cfg, out: Path, workers: int, gpus: float) -> tuple[dict, Path]:
    import ray

    from trainables.launch import make_trainer, worker_env
    from trainables.model import miniworld
    from trainables.offline import offline_env
    from trainables.progress import ProgressLine

    miniworld(cfg)  # build the mini-world once, here, before the workers ask for it
    ray.init(ignore_reinit_error=True, dashboard_host="127.0.0.1",
             runtime_env={"env_vars": worker_env(offline_env(cfg))})
    trainer = make_trainer(cfg, name="train", storage=out / "ray", workers=workers, use_gpu=gpus > 0,
                           callbacks=[ProgressLine()])
    result = trainer.fit()
    final = result.return_value
    adapter = out / "adapter"
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as directory:
            shutil.copytree(Path(directory) / "adapter", adapter, dirs_exist_ok=True)
    return final, adapter


def _baseline(cfg):
    """Score the unadapted base model once, for the Δ column."""
    import torch

    from trainables.evaluation.stage import evaluate_model
    from trainables.evaluation.tasks import task_set_for
    from trainables.model import load_base_model, load_tokenizer

    model = load_base_model(cfg, torch.device("cpu"))
    return evaluate_model(model, load_tokenizer(cfg), task_set_for(cfg), batch_size=cfg.eval_batch_size,
                          add_bos_token=cfg.add_bos_token)


if __name__ == "__main__":
    sys.exit(main())
