"""The live progress line of a training run, printed by the Ray Train controller after every report.

It lives apart from ``trainables.launch`` so that the controller process, which unpickles callbacks,
does not import torch, transformers and peft just to print a line.
"""

from __future__ import annotations

import time
from typing import Any

import ray.train


class ProgressLine(ray.train.UserCallback):
    """Prints ``step 20/60  loss=…  cb=…  kl=…  tok/s=…  ETA 12s`` after every report (controller side)."""

    def __init__(self, label: str = "") -> None:
        self.label, self.start = label, time.time()

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        m = metrics[0]
        if "step" not in m:
            return
        step, total = int(m["step"]), int(m.get("total_steps", 0)) or None
        elapsed = time.time() - self.start
        eta = f"ETA {elapsed / step * (total - step):.0f}s" if total else ""
        terms = "  ".join(f"{k.removeprefix('retain_').removesuffix('_loss')}={m[k]:.4f}"
                          for k in sorted(m) if k.endswith("_loss"))  # cb, kl, l2: trainables.objective's terms
        print(f"{self.label}step {step}/{total or '?'}  loss={m.get('loss', float('nan')):.4f}  {terms}  "
              f"tok/s={m.get('tokens_per_s', 0):.0f}  {eta}", flush=True)
