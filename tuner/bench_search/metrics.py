"""Summaries of replay traces, per method: trials-to-target and the state at fixed budgets.

    target(n)  =  boundary error <= 0.2 decades  and  regret <= 3 points  and  feasible recommendation
    trials-to-target = the smallest n with target(n); seeds that never get there count as +inf, so a
    median or p90 beyond ``max_trials`` is reported as null.

Each method's row also holds ``shared_estimator``: the same target and budget numbers with its trials read
by the shared estimator (``Trace.shared``) instead of its own analysis; and ``per_seed_at_stop`` /
``per_seed_at_end``: each seed at its stop (stopped seeds) / at its stop or the cap (every seed), what real
searches are placed among (``tuner.bench_search.real``); and ``p_calibration``: how often a recommendation the
method rated P(harmless) in each band is truly harmless, over every seed after ``CALIBRATION_FROM`` trials

    [{"p": [0.7, 0.8], "n": 315, "harmless_rate": 0.76}, ...]     # n: (seed, trial count) pairs in the band
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.bench_search.replay import Trace
from tuner.boundary_search.stopping import StopRule


@dataclass(frozen=True)
class Target:
    max_error: float = 0.2  # decades
    max_regret: float = 3.0  # points
    feasible: bool = True


TARGET = Target()
P_BANDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)  # P(harmless) bands of ``calibration``
CALIBRATION_FROM = StopRule().min_trials  # ``calibration`` reads the trial counts the stopping rule reads


def trials_to_target(trace: Trace, target: Target = TARGET) -> float:
    for n, (err, reg, ok) in enumerate(zip(trace.error, trace.regret, trace.feasible, strict=True), start=1):
        if err <= target.max_error and reg <= target.max_regret and (ok or not target.feasible):
            return float(n)
    return math.inf


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


SHARED_KEYS = ("median_trials_to_target", "p90_trials_to_target", "reached_rate", "median_trials_to_boundary",
               "boundary_error_at", "regret_at", "feasible_rate_at")


def summarise(traces: list[Trace], budgets: tuple[int, ...], target: Target = TARGET) -> dict[str, Any]:
    """One method's row of ``bench_search.json``."""
    shared = _summarise([t.shared() for t in traces], budgets, target)
    at_end = [_at(t, t.stopped_at or len(t.error)) | {"stopped": t.stopped_at is not None} for t in traces]
    return {**_summarise(traces, budgets, target), "per_seed_at_end": at_end, "p_calibration": calibration(traces),
            "shared_estimator": {k: shared[k] for k in SHARED_KEYS}}


def calibration(traces: list[Trace], first: int = CALIBRATION_FROM) -> list[dict[str, Any]]:
    """Per band of ``P_BANDS`` (the last one closed): the (seed, n >= first) pairs whose recommendation the method
    rated P(harmless) in it, and the share of them truly harmless (None for an empty band)."""
    p = np.array([v for t in traces for v in t.p_feasible[first - 1:]], dtype=float)
    ok = np.array([v for t in traces for v in t.feasible[first - 1:len(t.p_feasible)]], dtype=bool)
    out = []
    for lo, hi in zip(P_BANDS, P_BANDS[1:], strict=False):
        band = (p >= lo) & ((p < hi) if hi < P_BANDS[-1] else (p <= hi))
        rate = float(ok[band].mean()) if band.any() else None
        out.append({"p": [lo, hi], "n": int(band.sum()), "harmless_rate": rate})
    return out


def _summarise(traces: list[Trace], budgets: tuple[int, ...], target: Target) -> dict[str, Any]:
    ttt = np.array([trials_to_target(t, target) for t in traces])
    boundary_only = Target(max_error=target.max_error, max_regret=math.inf, feasible=False)
    ttb = np.array([trials_to_target(t, boundary_only) for t in traces])

    def at(values: str, n: int, fn: Any) -> float | None:
        col = [getattr(t, values)[n - 1] for t in traces if len(getattr(t, values)) >= n]
        return _finite(fn(np.asarray(col, dtype=float))) if col else None

    stops = [t.stopped_at for t in traces if t.stopped_at is not None]
    stop_hits = [trials_to_target(t, target) <= t.stopped_at for t in traces if t.stopped_at is not None]
    return {
        "seeds": len(traces),
        "median_trials_to_target": _finite(np.quantile(ttt, 0.5, method="inverted_cdf")),
        "p90_trials_to_target": _finite(np.quantile(ttt, 0.9, method="inverted_cdf")),
        "reached_rate": float(np.isfinite(ttt).mean()),
        "median_trials_to_boundary": _finite(np.quantile(ttb, 0.5, method="inverted_cdf")),  # error target only
        "boundary_error_at": {str(n): at("error", n, np.median) for n in budgets},
        "regret_at": {str(n): at("regret", n, lambda a: np.median(np.where(np.isnan(a), np.inf, a)))
                      for n in budgets},
        "feasible_rate_at": {str(n): at("feasible", n, np.mean) for n in budgets},
        "stopped_rate": len(stops) / len(traces),
        "median_stop_trial": _finite(float(np.median(stops))) if stops else None,
        "target_met_at_stop_rate": float(np.mean(stop_hits)) if stops else None,
        **_at_stop([t for t in traces if t.stopped_at is not None]),
    }


def _at_stop(stopped: list[Trace]) -> dict[str, Any]:
    """Median boundary error and regret (no recommendation: +inf), and the feasible share, at each seed's stop;
    ``per_seed_at_stop``: each seed's (trials, error, regret, feasible) there, what real searches are placed in."""
    if not stopped:
        return {"error_at_stop": None, "regret_at_stop": None, "feasible_at_stop_rate": None, "per_seed_at_stop": []}
    rows = [_at(t, t.stopped_at) for t in stopped]
    return {"error_at_stop": _finite(float(np.median([r["error"] for r in rows]))),
            "regret_at_stop": _finite(float(np.median([r["regret"] for r in rows]))),
            "feasible_at_stop_rate": float(np.mean([r["feasible"] for r in rows])), "per_seed_at_stop": rows}


def _at(t: Trace, n: int) -> dict[str, Any]:
    """One seed after n completed trials: (seed, trials, error, regret (no recommendation: +inf), feasible, the
    method's P(harmless) at its recommendation (None: not kept, or no recommendation))."""
    p = t.p_feasible[n - 1] if len(t.p_feasible) >= n else math.nan
    return {"seed": t.seed, "trials": n, "error": t.error[n - 1],
            "regret": t.regret[n - 1] if not math.isnan(t.regret[n - 1]) else math.inf,
            "feasible": bool(t.feasible[n - 1]), "p_feasible": _finite(p)}


def error_curves(traces: list[Trace]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, q25, q75) boundary error per trial count over seeds."""
    e = np.array([t.error for t in traces], dtype=float)
    return np.median(e, axis=0), np.quantile(e, 0.25, axis=0), np.quantile(e, 0.75, axis=0)
