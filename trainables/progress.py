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
        print(f"{self.label}step {step}/{total or '?'}  loss={m.get('loss', float('nan')):.4f}  "
              f"cb={m.get('cb_loss', float('nan')):.4f}  kl={m.get('retain_kl_loss', float('nan')):.4f}  "
              f"l2={m.get('retain_l2_loss', float('nan')):.4f}  tok/s={m.get('tokens_per_s', 0):.0f}  {eta}",
              flush=True)
