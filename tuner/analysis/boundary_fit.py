"""P(feasible) = P(retain drop <= delta) over the boundary's coordinates: L2-regularised logistic regression with
a Laplace posterior, for searches without the boundary sampler's model (grid, TPE).

    fit, note = fit_boundary(params, feasible, KL_BOUNDARY)      # feasible: drop <= delta on the point estimate
    logit P(feasible | x) = w0 + sum_j w_j * (x_j - mean_j) / scale_j
    x = (log10 retain_coef, log10 remove_coef[, beta_kl])         # (ratio_to, along, slice_by), each where it varies

The MAP under a N(0, PRIOR_SD^2) prior on the slopes (the intercept is free) comes from scipy's
trust-region Newton; the prior keeps separable labels (the usual case) finite. Uncertainty is the
Laplace approximation w ~ N(w_map, H^-1), H the Hessian of the negative log-posterior at w_map;
N_DRAWS posterior draws give a 90% interval for the boundary.

The boundary is reported in ``axes.boundary.label()`` units (remove/retain, or remove_coef without a ratio)
where P = 0.5, at the median ``ratio_to`` (and median ``slice_by``), and once per slice level. The field names
match the boundary sampler's ``ModelFit``: ``at_ratio_to`` is the median of ``ratio_to``, ``at_slice`` /
``by_slice`` the median and levels of ``slice_by``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from search_spaces.base import Boundary
from tuner.analysis.axes import number, restrict

PRIOR_SD = 5.0  # per data sd: weakly informative (Gelman et al. 2008 use 2.5 per half sd)
N_DRAWS = 4000


@dataclass(frozen=True)
class BoundaryFit:
    """A fitted P(feasible) surface and the boundary read off it."""

    P_LABEL: ClassVar[str] = "P(feasible)"  # P(retain drop <= delta), as the labels are

    boundary: Boundary
    features: tuple[str, ...]  # param names in model order; along and ratio_to enter as log10
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]  # intercept first, standardised space
    cov: tuple[tuple[float, ...], ...]  # Laplace posterior covariance of ``weights``
    at_ratio_to: float | None  # median ratio_to, where the boundary is read (None without a ratio)
    at_slice: float | None  # median slice_by when it is a feature
    ratio: float | None  # the boundary (axes.label units) at P = 0.5; None when P does not fall along ``along``
    ratio_ci: tuple[float, float]  # 90% posterior interval; inf where some draws never turn infeasible
    by_slice: tuple[tuple[float, float | None], ...]  # (slice level, boundary) when slice_by varies
    n_harmless: int  # trials with retain drop <= delta on the point estimate
    n_damaged: int

    def p_harmless(self, coords: Mapping[str, Any]) -> np.ndarray:
        """P(feasible) at raw param values (arrays broadcast); absent features sit at their mean."""
        eta = np.asarray(self.weights[0], dtype=float)
        for j, name in enumerate(self.features):
            x = self._transform(name, np.asarray(coords[name], dtype=float)) if name in coords else self.mean[j]
            eta = eta + self.weights[j + 1] * (x - self.mean[j]) / self.scale[j]
        return expit(eta)

    def p_at(self, params: Mapping[str, Any]) -> float | None:
        """P(feasible) for one trial's params, or None when a feature is missing or invalid."""
        if not all(number(params.get(f), f in _log_names(self.boundary)) for f in self.features):
            return None
        return float(self.p_harmless({f: params[f] for f in self.features}))

    def describe(self) -> str:
        """Which model the boundary comes from (the verdict states the boundary itself)."""
        return (f"a logistic fit on {self.n_harmless + self.n_damaged} trials "
                f"({self.n_harmless} with retain drop <= delta, {self.n_damaged} above)")

    def _transform(self, name: str, value: Any) -> Any:
        return np.log10(value) if name in _log_names(self.boundary) else value


def fit_boundary(params: list[Mapping[str, Any]], feasible: list[bool],
                 boundary: Boundary) -> tuple[BoundaryFit | None, str]:
    """Fit P(feasible) to labelled trials; returns (fit, "") or (None, why there is no fit). ``boundary`` is first
    restricted to the params the trials carry (``axes.restrict``)."""
    boundary = restrict(boundary, params)
    logs = _log_names(boundary)
    names = [n for n in (boundary.ratio_to, boundary.along, boundary.slice_by) if n]
    rows = [(p, h) for p, h in zip(params, feasible, strict=True) if all(number(p.get(n), n in logs) for n in names)]
    named = boundary.label()
    if len(rows) < 2:
        return None, f"Too few labelled trials with {' and '.join(names)} set ({len(rows)})."
    features = tuple(f for f in names if len({p[f] for p, _ in rows}) > 1)
    y = np.array([h for _, h in rows], dtype=float)
    n_harmless, n = int(y.sum()), len(y)
    if boundary.along not in features:
        return None, f"{boundary.along} was not varied, so there is no boundary along it."
    if n_harmless == n:
        return None, (f"Boundary not bracketed: all {n} trials have retain drop <= delta, so damage lies beyond "
                      f"the sampled {named}; search higher {named}.")
    if n_harmless == 0:
        return None, f"Boundary not bracketed: all {n} trials damage retain; search lower {named}."
    x = np.array([[float(np.log10(p[f])) if f in logs else float(p[f]) for f in features] for p, _ in rows])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    w, hess = _map_fit(np.column_stack([np.ones(n), (x - mean) / scale]), y)
    cov = np.linalg.inv(hess)
    ratio_to, slice_by = boundary.ratio_to, boundary.slice_by
    at_ratio_to = float(np.median([float(p[ratio_to]) for p, _ in rows])) if ratio_to else None
    levels = sorted({float(p[slice_by]) for p, _ in rows}) if slice_by in features else []
    at_slice = float(np.median([float(p[slice_by]) for p, _ in rows])) if levels else None

    def log_value(weights: np.ndarray, level: float | None) -> np.ndarray:
        """log10 of the boundary (label units) where logit = 0, per row of ``weights``; +inf when ``along``
        never harms."""
        v = weights[:, 1:] / scale  # slopes on the raw (log) features
        log_at_ratio_to = math.log10(at_ratio_to) if at_ratio_to else 0.0
        at = {ratio_to: log_at_ratio_to, slice_by: level}
        others = sum(v[:, j] * at[f] for j, f in enumerate(features) if f != boundary.along)
        rest = weights[:, 0] - v @ mean + others
        slope = v[:, features.index(boundary.along)]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(slope < 0, -rest / slope, np.inf) - log_at_ratio_to

    draws = np.random.default_rng(0).multivariate_normal(w, cov, size=N_DRAWS)
    with np.errstate(over="ignore"):
        lo, hi = 10.0 ** np.quantile(log_value(draws, at_slice), [0.05, 0.95], method="inverted_cdf")
        value_at = {b: float(10.0 ** log_value(w[None], b)[0]) for b in [at_slice, *_levels(levels)]}
    return BoundaryFit(
        boundary=boundary, features=features, mean=tuple(mean), scale=tuple(scale), weights=tuple(w),
        cov=tuple(map(tuple, cov)), at_ratio_to=at_ratio_to, at_slice=at_slice,
        ratio=_finite(value_at[at_slice]), ratio_ci=(float(lo), float(hi)),
        by_slice=tuple((b, _finite(value_at[b])) for b in _levels(levels)),
        n_harmless=n_harmless, n_damaged=n - n_harmless), ""


def _map_fit(a: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmin_w  sum(log(1 + e^(a w)) - y * (a w)) + |w[1:]|^2 / (2 PRIOR_SD^2); returns (w, Hessian)."""
    penalty = np.r_[0.0, np.full(a.shape[1] - 1, PRIOR_SD**-2)]

    def loss(w: np.ndarray) -> float:
        eta = a @ w
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * np.sum(penalty * w * w))

    def grad(w: np.ndarray) -> np.ndarray:
        return a.T @ (expit(a @ w) - y) + penalty * w

    def hess(w: np.ndarray) -> np.ndarray:
        p = expit(a @ w)
        return (a.T * (p * (1 - p))) @ a + np.diag(penalty)

    w = minimize(loss, np.zeros(a.shape[1]), jac=grad, hess=hess, method="trust-exact").x
    return w, hess(w)


def _levels(values: list[float]) -> list[float]:
    """The slice levels to read the boundary at: each searched value, or min/median/max if many."""
    return values if len(values) <= 5 else [values[0], float(np.median(values)), values[-1]]


def _log_names(boundary: Boundary) -> tuple[str, ...]:
    """The coordinates fitted on a log10 scale: ``along`` and ``ratio_to`` (coefficients, > 0)."""
    return tuple(n for n in (boundary.along, boundary.ratio_to) if n)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
