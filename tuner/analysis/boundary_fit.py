"""P(harmless) over coefficient space: L2-regularised logistic regression with a Laplace posterior.

    logit P(harmless | x) = w0 + sum_j w_j * (x_j - mean_j) / scale_j
    x = (log10 retain_coef, log10 remove_coef[, beta_kl])        # each one only where it varies

The MAP under a N(0, PRIOR_SD^2) prior on the slopes (the intercept is free) comes from scipy's
trust-region Newton; the prior keeps separable labels (the usual case) finite. Uncertainty is the
Laplace approximation w ~ N(w_map, H^-1), H the Hessian of the negative log-posterior at w_map;
N_DRAWS posterior draws give a 90% interval for the boundary.

The boundary is reported as the remove/retain ratio where P = 0.5, at the median retain_coef (and
median beta_kl): on the mini-world the ratio sets the boundary
(docs/benchmarks.md#how-the-world-responds-to-the-coefficients).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

FEATURES = ("retain_coef", "remove_coef", "beta_kl")
LOG_FEATURES = ("retain_coef", "remove_coef")
PRIOR_SD = 5.0  # per data sd: weakly informative (Gelman et al. 2008 use 2.5 per half sd)
N_DRAWS = 4000


@dataclass(frozen=True)
class BoundaryFit:
    """A fitted P(harmless) surface and the boundary ratio read off it."""

    P_LABEL: ClassVar[str] = "P(harmless)"  # P(not confidently damaged), as the labels are

    features: tuple[str, ...]  # param names in model order; retain/remove enter as log10
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]  # intercept first, standardised space
    cov: tuple[tuple[float, ...], ...]  # Laplace posterior covariance of ``weights``
    at_retain: float  # median retain_coef, where the ratio is read
    at_slice: float | None  # median beta_kl when it is a feature
    ratio: float | None  # remove/retain at P = 0.5; None when P(harmless) does not fall with remove
    ratio_ci: tuple[float, float]  # 90% posterior interval; inf where some draws never turn harmful
    by_slice: tuple[tuple[float, float | None], ...]  # (beta_kl, ratio) when beta_kl varies
    n_harmless: int
    n_damaged: int

    def p_harmless(self, coords: Mapping[str, Any]) -> np.ndarray:
        """P(harmless) at raw coefficient values (arrays broadcast); absent features sit at their mean."""
        eta = np.asarray(self.weights[0], dtype=float)
        for j, name in enumerate(self.features):
            x = _transform(name, np.asarray(coords[name], dtype=float)) if name in coords else self.mean[j]
            eta = eta + self.weights[j + 1] * (x - self.mean[j]) / self.scale[j]
        return expit(eta)

    def p_at(self, params: Mapping[str, Any]) -> float | None:
        """P(harmless) for one trial's params, or None when a feature is missing or invalid."""
        if not all(_usable(params, f) for f in self.features):
            return None
        return float(self.p_harmless({f: params[f] for f in self.features}))

    def describe(self) -> str:
        """Which model the boundary comes from (the verdict states the boundary itself)."""
        return (f"a logistic fit on {self.n_harmless + self.n_damaged} trials "
                f"({self.n_harmless} harmless, {self.n_damaged} damaged)")


def fit_boundary(params: list[Mapping[str, Any]], harmless: list[bool]) -> tuple[BoundaryFit | None, str]:
    """Fit P(harmless) to labelled trials; returns (fit, "") or (None, why there is no fit)."""
    rows = [(p, h) for p, h in zip(params, harmless, strict=True)
            if _usable(p, "retain_coef") and _usable(p, "remove_coef")]
    if len(rows) < 2:
        return None, f"Too few labelled trials with positive retain_coef and remove_coef ({len(rows)})."
    features = tuple(f for f in FEATURES
                     if all(_usable(p, f) for p, _ in rows) and len({p[f] for p, _ in rows}) > 1)
    y = np.array([h for _, h in rows], dtype=float)
    n_harmless, n = int(y.sum()), len(y)
    if "remove_coef" not in features:
        return None, "remove_coef was not varied, so there is no boundary in coefficient space."
    if n_harmless == n:
        return None, (f"Boundary not bracketed: all {n} trials are harmless, so damage lies beyond the "
                      "searched range; search higher remove/retain ratios.")
    if n_harmless == 0:
        return None, (f"Boundary not bracketed: all {n} trials damage retain; search lower remove/retain "
                      "ratios.")
    x = np.array([[_transform(f, float(p[f])) for f in features] for p, _ in rows])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    w, hess = _map_fit(np.column_stack([np.ones(n), (x - mean) / scale]), y)
    cov = np.linalg.inv(hess)
    at_retain = float(np.median([float(p["retain_coef"]) for p, _ in rows]))
    betas = sorted({float(p["beta_kl"]) for p, _ in rows}) if "beta_kl" in features else []
    at_slice = float(np.median([float(p["beta_kl"]) for p, _ in rows])) if betas else None

    def log_ratio(weights: np.ndarray, beta: float | None) -> np.ndarray:
        """log10(remove/retain) where logit = 0, per row of ``weights``; +inf when remove never harms."""
        v = weights[:, 1:] / scale  # slopes on the raw (log) features
        at = {"retain_coef": math.log10(at_retain), "beta_kl": beta}
        others = sum(v[:, j] * at[f] for j, f in enumerate(features) if f != "remove_coef")
        rest = weights[:, 0] - v @ mean + others
        slope = v[:, features.index("remove_coef")]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(slope < 0, -rest / slope, np.inf) - at["retain_coef"]

    draws = np.random.default_rng(0).multivariate_normal(w, cov, size=N_DRAWS)
    with np.errstate(over="ignore"):
        lo, hi = 10.0 ** np.quantile(log_ratio(draws, at_slice), [0.05, 0.95], method="inverted_cdf")
        ratio_at = {b: float(10.0 ** log_ratio(w[None], b)[0]) for b in [at_slice, *_beta_levels(betas)]}
    return BoundaryFit(
        features=features, mean=tuple(mean), scale=tuple(scale), weights=tuple(w),
        cov=tuple(map(tuple, cov)), at_retain=at_retain, at_slice=at_slice,
        ratio=_finite(ratio_at[at_slice]), ratio_ci=(float(lo), float(hi)),
        by_slice=tuple((b, _finite(ratio_at[b])) for b in _beta_levels(betas)),
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


def _beta_levels(betas: list[float]) -> list[float]:
    """The beta_kl values to read the boundary at: each searched value, or min/median/max if many."""
    return betas if len(betas) <= 5 else [betas[0], float(np.median(betas)), betas[-1]]


def _usable(params: Mapping[str, Any], name: str) -> bool:
    v = params.get(name)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (v > 0 or name not in LOG_FEATURES)


def _transform(name: str, value: Any) -> Any:
    return np.log10(value) if name in LOG_FEATURES else value


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
