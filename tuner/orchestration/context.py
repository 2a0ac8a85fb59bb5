"""Everything a search needs that is fixed before Ray starts: ``run_dir/run_config.json``.

Written once by ``tuner.run`` (after validation) and read back by ``--resume`` and ``tuner.report``. A run
directory may move (copied, another node's mount): ``load`` derives the stored paths from where it is now.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trainables.config import ConfigError, TrainConfig
from tuner.records.results import atomic_write


def default_uri(run_dir: Path) -> str:
    """The default MLflow store of a run: ``sqlite:///<run_dir>/mlflow.db``."""
    return f"sqlite:///{Path(run_dir).resolve()}/mlflow.db"


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
    baseline_forget: tuple[float, float] | None = None  # (acc, stderr): what "forgot" is measured against
    git_commit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial: preset + overrides, the space's fixed values, the sampled params."""
        return TrainConfig.from_dict(self.train_config).with_overrides({**self.fixed, **params})

    def save(self) -> None:
        atomic_write(self.path / "run_config.json", json.dumps(asdict(self), indent=1, sort_keys=True, default=str))

    @classmethod
    def load(cls, run_dir: Path) -> SearchContext:
        """Read and check ``run_dir/run_config.json``; errors name the file. If the directory moved, ``run_dir``
        and the default MLflow store follow it, and ``extra["moved_from"]`` holds the old path."""
        path = Path(run_dir) / "run_config.json"
        if not path.is_file():
            raise ConfigError(f"--resume {run_dir}: no run_config.json there; is it a run directory?")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e}); restore the file or start a new search") from None
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        if not isinstance(data, dict) or set(data) - known or required - set(data):
            found = set(data) if isinstance(data, dict) else set()
            problems = [f"{what} field(s) {sorted(names)}" for what, names in
                        (("unknown", found - known), ("missing", required - found)) if names]
            raise ConfigError(f"{path}: {', '.join(problems) or 'not a JSON object'}; was it written by another "
                              f"version of unlearn-tuner?")
        ctx = cls(**data)
        try:
            ctx.trial_config({})
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        return ctx.relocated(Path(run_dir))

    def relocated(self, run_dir: Path) -> SearchContext:
        """This context in ``run_dir``: the stored ``run_dir`` and a default sqlite MLflow URI point there."""
        new, old = Path(run_dir).resolve(), Path(self.run_dir)
        if new != old:
            if self.mlflow_uri == default_uri(old):
                self.mlflow_uri = default_uri(new)
            self.run_dir, self.extra["moved_from"] = str(new), str(old)
        return self
