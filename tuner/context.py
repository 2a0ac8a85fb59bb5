"""Everything a search needs that is fixed before Ray starts: ``run_dir/run_config.json``.

Written once by ``tuner.run`` (after validation) and read back by ``--resume`` and ``tuner.report``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainables.config import TrainConfig


@dataclass
class SearchContext:
    run_dir: str
    space: str
    preset: str
    train_config: dict[str, Any]        # the preset with the user's key=value overrides (TrainConfig dict)
    fixed: dict[str, Any]               # the space's fixed overrides for every trial
    num_samples: int
    max_concurrent: int
    workers_per_trial: int
    gpus_per_worker: float
    seed: int
    delta: float                        # "retain drop <= delta" (accuracy fraction)
    mlflow_uri: str
    experiment: str
    address: str | None = None
    parent_run_id: str = ""
    baseline_retain_acc: float | None = None
    git_commit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial: preset + overrides, the space's fixed values, the sampled params."""
        return TrainConfig.from_dict(self.train_config).with_overrides({**self.fixed, **params})

    def save(self) -> None:
        tmp = self.path / f".run_config.json.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True, default=str))
        os.replace(tmp, self.path / "run_config.json")

    @classmethod
    def load(cls, run_dir: Path) -> SearchContext:
        return cls(**json.loads((Path(run_dir) / "run_config.json").read_text()))
