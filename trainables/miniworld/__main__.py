"""Build the mini-world (cached) and print its score table: base model and early checkpoint.

    python -m trainables.miniworld                  # default world (~0.9M-parameter Llama, 360 questions/domain)
    python -m trainables.miniworld --preset miniworld-small --world-seed 1
    python -m trainables.miniworld --world-seed 3 --pretrain [--release]   # train here [and publish]
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from trainables.miniworld.build import PRESETS, build_world, world_config
from trainables.miniworld.release import publish


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainables.miniworld", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="miniworld", choices=sorted(PRESETS), help="world size")
    ap.add_argument("--world-seed", type=int, default=0, help="which seeded world (default 0); each is cached apart")
    ap.add_argument("--pretrain", action="store_true",
                    help="train the weights here instead of using the released ones (machine-dependent)")
    ap.add_argument("--release", action="store_true",
                    help="with --pretrain: publish the weights to trainables/miniworld/released/ (maintainers)")
    args = ap.parse_args(argv)
    if args.release and not args.pretrain:
        print("error: --release publishes weights trained here; add --pretrain", file=sys.stderr)
        return 2
    try:
        config = world_config(args.preset, args.world_seed, "pretrain" if args.pretrain else "released")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    start, bars = time.time(), {}

    def progress(stage: str, step: int, total: int) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage, unit="step"))
        bar.update(step - bar.n)
        if step == total:
            bar.close()

    world = build_world(config, progress=progress)
    print(f"world: {world.root}  (ready in {time.time() - start:.1f}s)")
    if args.release:
        print(f"released: {publish(world)}  (commit it)")

    from trainables.offline import set_offline_env

    set_offline_env()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainables.evaluation.stage import evaluate_model, format_eval_table
    from trainables.evaluation.tasks import miniworld_task_set

    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    task_set = miniworld_task_set(world)
    scores = {}
    for label, path in (("base model", world.base_model_dir), ("early checkpoint", world.early_model_dir)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        scores[label] = evaluate_model(model, tokenizer, task_set, add_bos_token=True)
    for label, result in scores.items():
        print(f"\n{label} ({'cloze is the primary score; letter is reported, near chance for a tiny model'})")
        print(format_eval_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
