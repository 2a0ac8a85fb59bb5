"""What the evaluation stage returns, one definition each (both round-trip through JSON):

* ``TaskScore``  - one lm-eval task (or group) score: accuracy, stderr, sample count, version.
* ``EvalResult`` - the scores of one model on a task set, by task name, + lm-eval's raw JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

CHANCE_ACCURACY = 0.25  # 4-choice multiple choice (WMDP, MMLU and the mini-world)


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
