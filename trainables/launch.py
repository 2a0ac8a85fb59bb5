"""Build the ``TorchTrainer`` for one unlearning run (used by ``trainables.train`` and the Tune trials).

    ray.init(runtime_env={"env_vars": worker_env(offline_env(cfg))})   # what every Ray worker needs
    trainer = make_trainer(cfg, name="train-<trial_id>", storage=run_dir / "ray", workers=2)
    result = trainer.fit(); final = result.return_value        # rank 0's metrics + eval (see
                                                               # docs/architecture.md#ray-idioms-the-code-relies-on)

The run name must be stable (never a timestamp): a retried trial with the same name and storage
resumes from its last checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray.train
from ray.train.torch import TorchConfig, TorchTrainer

from trainables.config import TrainConfig
from trainables.train_loop import train_loop_per_worker

# report() polls at this interval (docs/architecture.md#ray-idioms-the-code-relies-on)
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")


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


def worker_env(extra: dict[str, str]) -> dict[str, str]:
    """Variables every Ray worker needs: report interval (docs/architecture.md#ray-idioms-the-code-relies-on),
    torch threads, HF switches."""
    env = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"),
           "UNLEARN_TORCH_THREADS": os.environ.get("UNLEARN_TORCH_THREADS", "1"), **extra}
    for key in ("HF_HOME", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "UNLEARN_TUNER_CACHE",
                "MLFLOW_TRACKING_URI"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env
