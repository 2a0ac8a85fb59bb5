"""Build the mini-world (cached) and print its score table: base model and early checkpoint.

    python -m trainables.miniworld                  # default world (~0.9M-parameter Llama, 80 questions/domain)
    python -m trainables.miniworld --preset miniworld-small
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from trainables.miniworld.build import PRESETS, build_world


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainables.miniworld", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="miniworld", choices=sorted(PRESETS))
    args = ap.parse_args(argv)

    start, bars = time.time(), {}

    def progress(stage: str, step: int, total: int) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage, unit="step"))
        bar.update(step - bar.n)
        if step == total:
            bar.close()

    world = build_world(PRESETS[args.preset], progress=progress)
    print(f"world: {world.root}  (ready in {time.time() - start:.1f}s)")

    from tuner.tasks import set_offline_env

    set_offline_env()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuner.eval_stage import evaluate_model, format_eval_table
    from tuner.tasks import miniworld_task_set

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
