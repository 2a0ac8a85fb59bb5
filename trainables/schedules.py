"""Coefficient schedules a_rm(s), a_ret(s) over training progress s ∈ [0, 1] (docs/architecture.md#schedules).

loss = remove_coef · a_rm(s) · L_remove + retain_coef · a_ret(s) · L_retain,
s = min(1, step / total_steps), with ``step`` the 0-based optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable

Schedule = Callable[[float], tuple[float, float]]
"""Maps progress s to (a_rm, a_ret)."""


def eleuther(s: float) -> tuple[float, float]:
    """EleutherAI checkpoint-transfer semantics (default): a_rm = 1 − s/4, a_ret = s."""
    return 1.0 - 0.25 * s, s


def paper(s: float) -> tuple[float, float]:
    """Circuit-breakers Alg. 1 with α folded into the coefficients: a_rm = 1 − s/2, a_ret = s/2."""
    return 1.0 - 0.5 * s, 0.5 * s


def constant(s: float) -> tuple[float, float]:
    """No ramp: a_rm = a_ret = 1."""
    return 1.0, 1.0


SCHEDULES: dict[str, Schedule] = {"eleuther": eleuther, "paper": paper, "constant": constant}
DEFAULT_SCHEDULE = "eleuther"


def progress(step: int, total_steps: int) -> float:
    """s = min(1, step / total_steps) for a 0-based optimizer step."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return min(1.0, step / total_steps)


def coefficients(
    name: str, step: int, total_steps: int, remove_coef: float, retain_coef: float
) -> tuple[float, float]:
    """(c_remove, c_retain) = (remove_coef · a_rm(s), retain_coef · a_ret(s)) for schedule ``name``."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid schedules: {', '.join(sorted(SCHEDULES))}")
    a_rm, a_ret = SCHEDULES[name](progress(step, total_steps))
    return remove_coef * a_rm, retain_coef * a_ret
