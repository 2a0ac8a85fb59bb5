"""The typed records the service passes around and writes to disk.

One definition each:

* ``TaskScore``  - one lm-eval task (or group) score: accuracy, stderr, sample count, version.
* ``EvalResult`` - what the evaluation stage returns for one model: scores by task name + raw lm-eval JSON.
* ``TrialRow``   - one row of the results table (``run_dir/results.jsonl``); the baseline is a row too.

All of them round-trip through JSON (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

CHANCE_ACCURACY = 0.25  # 4-choice multiple choice (WMDP, MMLU and the mini-world)

TRIAL_STATUSES = ("queued", "training", "evaluating", "done", "diverged", "failed",
                  "interrupted")  # interrupted: stopped by SIGTERM, re-run by --resume
BASELINE_ID = "baseline"


@dataclass(frozen=True)
class TaskScore:
    """lm-eval's ``acc,none`` and ``acc_stderr,none`` for one task or group (fractions in [0, 1])."""

    task: str
    acc: float
    stderr: float
    n: int
    version: str = ""

    def __post_init__(self) -> None:
        if not (0.0 <= self.acc <= 1.0) or not math.isfinite(self.stderr) or self.stderr < 0 or self.n < 0:
            raise ValueError(f"invalid TaskScore for {self.task!r}: acc={self.acc} stderr={self.stderr} n={self.n}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskScore:
        return cls(task=d["task"], acc=float(d["acc"]), stderr=float(d["stderr"]), n=int(d["n"]),
                   version=str(d.get("version", "")))


@dataclass(frozen=True)
class EvalResult:
    """Scores of one model on a task set; ``raw`` is lm-eval's result dict made JSON-safe.

    ``alt_*``: the same questions in a second prompt format (the mini-world's letter prompt), if any.
    """

    scores: dict[str, TaskScore]
    forget_task: str
    retain_task: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    seconds: float = 0.0
    alt_format: str = ""
    alt_forget_task: str = ""
    alt_retain_task: str = ""

    @property
    def forget(self) -> TaskScore:
        return self.scores[self.forget_task]

    @property
    def retain(self) -> TaskScore:
        return self.scores[self.retain_task]

    @property
    def alt_forget(self) -> TaskScore | None:
        return self.scores.get(self.alt_forget_task)

    @property
    def alt_retain(self) -> TaskScore | None:
        return self.scores.get(self.alt_retain_task)

    def to_dict(self, with_raw: bool = True) -> dict[str, Any]:
        d = {"scores": {k: v.to_dict() for k, v in self.scores.items()}, "forget_task": self.forget_task,
             "retain_task": self.retain_task, "seconds": self.seconds, "alt_format": self.alt_format,
             "alt_forget_task": self.alt_forget_task, "alt_retain_task": self.alt_retain_task}
        if with_raw:
            d["raw"] = self.raw
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        return cls(scores={k: TaskScore.from_dict(v) for k, v in d["scores"].items()},
                   forget_task=d["forget_task"], retain_task=d["retain_task"], raw=d.get("raw", {}),
                   seconds=float(d.get("seconds", 0.0)), alt_format=d.get("alt_format", ""),
                   alt_forget_task=d.get("alt_forget_task", ""), alt_retain_task=d.get("alt_retain_task", ""))


@dataclass
class TrialRow:
    """One row of the results table. ``trial_id == "baseline"`` marks the unadapted model's row.

    ``params`` holds the searched hyper-parameters (retain_coef, remove_coef, beta_kl, ...);
    ``train_metrics`` the training metrics at the final step (loss, cb_loss, retain_kl_loss, ...);
    ``forget`` / ``retain`` the primary eval scores; ``forget_alt`` / ``retain_alt`` the same questions in
    the second prompt format ``alt_format`` (the mini-world's letter prompt); ``extra_scores`` every other
    task reported.
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
