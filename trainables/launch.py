"""Build the ``TorchTrainer`` for one unlearning run (used by ``trainables.train`` and the Tune trials).

    trainer = make_trainer(cfg, name="train-<trial_id>", storage=run_dir / "ray", workers=2)
    result = trainer.fit(); final = result.return_value        # rank 0's metrics + eval (pitfall P3)

The run name must be stable (never a timestamp): a retried trial with the same name and storage
resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray.train
from ray.train.torch import TorchConfig, TorchTrainer

from trainables.config import TrainConfig
from trainables.train_loop import train_loop_per_worker

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # report() polls at this interval (P2)


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


def make_trainer(cfg: TrainConfig, *, name: str, storage: Path, workers: int = 1, use_gpu: bool = False,
                 evaluate: bool = True, max_failures: int = 1, callbacks: list[Any] | None = None,
                 loop: Callable[[dict[str, Any]], Any] = train_loop_per_worker) -> TorchTrainer:
    """One TorchTrainer: DDP over ``workers`` (gloo on CPU, nccl on GPU), checkpoints under ``storage``.

    ``loop`` is ``train_loop_per_worker`` (train, then evaluate) or ``evaluate_base_per_worker``.
    """
    return TorchTrainer(
        loop,
        train_loop_config={"train": cfg.to_dict(), "evaluate": evaluate},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=name, storage_path=str(storage),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            callbacks=callbacks or [],
        ),
    )
