"""The records the service writes to disk: ``TrialRow``, one row of the results table
(``run_dir/results.jsonl``); the baseline is a row too. It round-trips through JSON (``to_dict`` / ``from_dict``).

Its scores are ``TaskScore`` records of the evaluation stage (``trainables.evaluation.result``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trainables.evaluation.result import TaskScore

TRIAL_STATUSES = ("queued", "training", "evaluating", "done", "diverged", "failed",
                  "interrupted")  # interrupted: stopped by SIGTERM, re-run by --resume
BASELINE_ID = "baseline"


@dataclass
class TrialRow:
    """One row of the results table. ``trial_id == "baseline"`` marks the unadapted model's row.

    ``params`` holds the searched hyper-parameters (retain_coef, remove_coef, beta_kl, ...);
    ``train_metrics`` the training metrics at the final step (loss, cb_loss, retain_kl_loss, ...);
    ``forget`` / ``retain`` the primary eval scores; ``forget_alt`` / ``retain_alt`` the same questions in
    the second prompt format ``alt_format`` (the mini-world's letter prompt); ``extra_scores`` every other
    task reported; ``phase_seconds`` where the trial's time went, phase by phase, driver and worker
    (``tuner.orchestration.trial``; empty in rows written before it existed).
    """

    trial_id: str
    status: str = "queued"
    params: dict[str, Any] = field(default_factory=dict)
    train_metrics: dict[str, float] = field(default_factory=dict)
    forget: TaskScore | None = None
    retain: TaskScore | None = None
    forget_alt: TaskScore | None = None
    retain_alt: TaskScore | None = None
    alt_format: str = ""
    extra_scores: dict[str, TaskScore] = field(default_factory=dict)
    error: str = ""
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    mlflow_run_id: str = ""
    adapter_path: str = ""
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in TRIAL_STATUSES:
            raise ValueError(f"unknown trial status {self.status!r}; expected one of {TRIAL_STATUSES}")

    @property
    def is_baseline(self) -> bool:
        return self.trial_id == BASELINE_ID

    @property
    def scored(self) -> bool:
        return self.forget is not None and self.retain is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("forget", "retain", "forget_alt", "retain_alt"):
            score = getattr(self, key)
            d[key] = score.to_dict() if score else None
        d["extra_scores"] = {k: v.to_dict() for k, v in self.extra_scores.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialRow:
        d = dict(d)
        for key in ("forget", "retain", "forget_alt", "retain_alt"):
            d[key] = TaskScore.from_dict(d[key]) if d.get(key) else None
        d["extra_scores"] = {k: TaskScore.from_dict(v) for k, v in d.get("extra_scores", {}).items()}
        return cls(**d)
