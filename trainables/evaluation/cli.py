"""Score a saved model (plus an optional LoRA adapter) with lm-eval and print the table.

    python -m tuner.evaluate --preset miniworld [--world-seed 1] [--adapter DIR]
    python -m tuner.evaluate --model PATH_OR_HUB_ID [--adapter DIR] [--data-root DIR] \\
        [--tasks wmdp_bio,mmlu_stem] [--batch-size 32] [--limit N] [--add-bos-token] [--json OUT]

``--preset`` takes the model and task set of a training preset (the mini-world builds itself if needed).
``--data-root`` holds local data laid out like the Hub repos (``<root>/cais/wmdp``, ``<root>/cais/mmlu``;
see ``trainables.evaluation.hub_data``) and switches the Hugging Face libraries offline. The first task is
the forget task, the second the retain task. Bad input (a missing model, malformed data, an unknown task,
a bad range, an unwritable ``--json``) prints one line and exits 2, before the model loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainables.evaluation.stage import evaluate_model, format_eval_table
from trainables.evaluation.tasks import TaskSet, check_tasks, real_task_set
from trainables.offline import set_offline_env
from trainables.preflight import (
    check_cache_dir,
    check_model_files,
    check_offline_assets,
    check_ranges,
    check_writable_file,
    env_flag,
)


@dataclass(frozen=True)
class EvalRequest:
    """What to load and what to run; ``resolve_model_and_tasks`` builds it from the command line."""

    model: str
    task_set: TaskSet
    adapter: str | None = None
    add_bos_token: bool | None = None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tuner.evaluate", description=__doc__.split("\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--preset", help="a training preset's model and tasks (e.g. miniworld)")
    target.add_argument("--model", help="model directory (save_pretrained) or Hub id")
    p.add_argument("--adapter", help="peft adapter directory applied on top of --model (not merged)")
    p.add_argument("--world-seed", type=int, default=0, help="with a mini-world --preset: which world (default 0)")
    p.add_argument("--tasks", default="wmdp_bio,mmlu_stem", help="comma-separated: forget, retain, ...")
    p.add_argument("--data-root", help="local Hub-layout data (<root>/cais/wmdp, <root>/cais/mmlu); offline")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=float, help="questions per subtask (smoke tests; <1 = fraction)")
    p.add_argument("--add-bos-token", action=argparse.BooleanOptionalAction, default=None,
                   help="prepend BOS as lm-eval's add_bos_token=True/False (default: the tokenizer decides)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--json", type=Path, help="also write the EvalResult (with lm-eval's raw dict) here")
    return p


def resolve_model_and_tasks(args: argparse.Namespace) -> EvalRequest:
    """Check the inputs and pick the task set (a preset's, or ``--tasks`` on ``--model``)."""
    if args.adapter and not (Path(args.adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"adapter {args.adapter}/adapter_config.json not found; pass the directory "
                                f"written by PeftModel.save_pretrained()")
    if args.preset:
        from trainables.evaluation.tasks import task_set_for
        from trainables.model import model_source
        from trainables.offline import offline_env
        from trainables.presets import load_preset

        overrides = {"eval_data_root": args.data_root} if args.data_root else {}
        cfg = load_preset(args.preset, {**overrides, "world_seed": args.world_seed})
        set_offline_env(offline_env(cfg))
        check_cache_dir(cfg)
        check_offline_assets(cfg)
        return EvalRequest(model=model_source(cfg)[0], task_set=task_set_for(cfg), adapter=args.adapter,
                           add_bos_token=cfg.add_bos_token if args.add_bos_token is None else args.add_bos_token)
    local = Path(args.model).expanduser()
    if not local.exists() and (args.model.startswith(("/", ".", "~")) or args.model.count("/") != 1):
        raise FileNotFoundError(f"model path {args.model} does not exist; pass a directory written by "
                                f"save_pretrained() or a Hub id like org/name")
    if not local.exists() and env_flag("HF_HUB_OFFLINE"):
        check_model_files(args.model, None, "--model ")
    names = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if not names:
        raise ValueError("--tasks is empty; pass e.g. --tasks wmdp_bio,mmlu_stem")
    task_set = replace(real_task_set(args.data_root), name="+".join(names), tasks=names,
                       forget_task=names[0], retain_task=names[min(1, len(names) - 1)])
    model = str(local) if local.exists() else args.model
    return EvalRequest(model=model, task_set=task_set, adapter=args.adapter, add_bos_token=args.add_bos_token)


def load_model(model: str, adapter: str | None, device: str | None, dtype: str) -> tuple[Any, Any]:
    """``AutoModelForCausalLM`` (no remote code) + its tokenizer, with the adapter as a ``PeftModel``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=False)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype), trust_remote_code=False)
    except OSError as e:
        raise OSError(f"cannot load model {model}: {str(e).strip().splitlines()[0]}") from e
    if adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter)
    return lm.to(device).eval(), tokenizer


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_root:
        set_offline_env()  # before transformers / datasets are imported
    limit = int(args.limit) if args.limit and args.limit >= 1 else args.limit
    try:
        check_ranges({"--limit": args.limit, "--batch-size": args.batch_size})
        if args.json:
            check_writable_file(args.json, "--json")
        request = resolve_model_and_tasks(args)
        check_tasks(request.task_set)  # before the model loads
        model, tokenizer = load_model(request.model, request.adapter, args.device, args.dtype)
        result = evaluate_model(model, tokenizer, request.task_set, batch_size=args.batch_size, limit=limit,
                                add_bos_token=request.add_bos_token)
    except (ValueError, OSError) as e:  # ConfigError, DataError are ValueErrors; a failed model load an OSError
        print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    print(format_eval_table(result))
    print(f"\nforget {result.forget_task}, retain {result.retain_task}; {result.seconds:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)  # checked writable before the model loaded
        args.json.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return 0
