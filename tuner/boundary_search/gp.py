"""GP models of retain damage and forget accuracy on the unit cube (BoTorch ``SingleTaskGP``, two outputs).

    r(x) = bilog((baseline_retain - retain_acc(x)) / delta)    harmless <=> r <= bilog(1) = ln 2
    f(x) = forget_acc(x)                                       lower is better
    bilog(y) = sign(y) log(1 + |y|)                            keeps resolution near delta, compresses collapse

Observation noise per trial and output:

    noise^2 = se^2 + s^2      se: lm-eval's stderr (delta method through bilog, floored at noise_floor * delta),
                                  raised to the replicates' pooled sd where there are enough of them (below)
                              s^2: the training-seed variance, one per output, learned with the kernel

A trial is one training run; its replicates (the same coefficients, other training seeds) are further
observations at the same point. Their spread is measured directly: with at least MIN_REPLICATE_DF degrees of
freedom, the pooled within-point sd (seed and eval noise together)

    sd_pool^2 = sum_points sum_runs (y - mean_point)^2 / sum_points (runs - 1)

floors each trial's noise, for forget as it is and for r at the edge's slope, sd_pool / (2 delta) (d bilog / d drop
at drop = delta; replicates are run at the recommendation, by the edge). Learned alone, s came out at 0.4-0.9 of
the replay's true noise at the edge (world 0, 20 seeds), and P(harmless) at the recommendation was overconfident
(docs/benchmarks.md). ``s`` (``seed_sd``) is learned on top. A trial without a stderr (NaN)
takes the median of the other trials' stderrs of that output, so one missing stderr never changes how the
other trials are modelled; only when no trial has a stderr for an output does BoTorch infer one homoscedastic
noise. Each output is standardised; kernel and priors are BoTorch's defaults.
P(harmless) = Phi((ln 2 - mu_r) / sd_r).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import norm
from threadpoolctl import threadpool_limits

THRESHOLD = math.log(2.0)  # bilog(1): the level "retain drop = delta"
MIN_REPLICATE_DF = 2  # replicate degrees of freedom before their pooled sd floors the noise


def bilog(y: np.ndarray) -> np.ndarray:
    return np.sign(y) * np.log1p(np.abs(y))


def fill_missing(se: np.ndarray) -> np.ndarray:
    """Stderr columns with each NaN replaced by the median of its column's other values (an all-NaN column
    stays NaN)."""
    out = np.array(se, dtype=float)
    for column in out.T:
        missing = np.isnan(column)
        if missing.any() and not missing.all():
            column[missing] = np.median(column[~missing])
    return out


def pooled_sd(y: np.ndarray, points: tuple[tuple[int, ...], ...]) -> float:
    """sqrt(sum over points with >= 2 runs of sum (y - point mean)^2 / their degrees of freedom); NaN with fewer
    than MIN_REPLICATE_DF degrees of freedom."""
    groups = [np.asarray(y)[list(g)] for g in points if len(g) > 1]
    df = sum(len(g) - 1 for g in groups)
    if df < MIN_REPLICATE_DF:
        return math.nan
    return float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / df))


def harmless_p(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(harmless) = Phi((ln 2 - mu_r) / sd_r) from ``predict``'s (mean, sd)."""
    return norm.cdf((THRESHOLD - mean[:, 0]) / sd[:, 0])


def constrained_ei(mean: np.ndarray, sd: np.ndarray, best: float | None) -> np.ndarray:
    """EI of forget (lower is better) over ``best`` times P(harmless) (Gardner et al. 2014), from ``predict``'s
    (mean, sd); P alone when there is no ``best`` (nothing feasible yet)."""
    p = harmless_p(mean, sd)
    if best is None:
        return p
    z = (best - mean[:, 1]) / sd[:, 1]
    return sd[:, 1] * (z * norm.cdf(z) + norm.pdf(z)) * p


@dataclass(frozen=True)
class Observations:
    """Completed trials on the unit cube; drops and stderrs are accuracy fractions, stderrs may be NaN."""

    x: np.ndarray  # (n, d)
    retain_drop: np.ndarray  # baseline_retain - retain_acc
    forget: np.ndarray  # forget_acc
    retain_se: np.ndarray
    forget_se: np.ndarray
    points: tuple[tuple[int, ...], ...] = ()  # indices of the runs at one set of coefficients (replicate groups)

    def __len__(self) -> int:
        return len(self.x)


class BoundaryModel:
    """Fitted GP posterior of (r, f); ``predict`` returns means and sds in those units."""

    def __init__(self, obs: Observations, delta: float, noise_floor: float = 0.1):
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.likelihoods import FixedNoiseGaussianLikelihood
        from gpytorch.means import LinearMean
        from gpytorch.mlls import ExactMarginalLogLikelihood

        self.obs, self.delta = obs, delta
        scaled = obs.retain_drop / delta
        y = np.column_stack([bilog(scaled), obs.forget])
        retain_se, forget_se = fill_missing(np.column_stack([obs.retain_se, obs.forget_se])).T
        se = np.column_stack([np.maximum(retain_se, noise_floor * delta) / (delta * (1 + np.abs(scaled))),
                              np.maximum(forget_se, noise_floor * delta)])
        self.replicate_sd = np.array([pooled_sd(obs.retain_drop, obs.points), pooled_sd(obs.forget, obs.points)])
        if not np.isnan(self.replicate_sd).any():  # (drop, forget) in accuracy fractions
            se = np.maximum(se, self.replicate_sd / np.array([2 * delta, 1.0]))
        self.noise_se = se  # (n, 2): each trial's observation sd of (r, f), in those units
        self._mean, self._std = y.mean(axis=0), np.maximum(y.std(axis=0, ddof=1), 1e-6) if len(y) > 1 else np.ones(2)
        train_x = torch.as_tensor(obs.x, dtype=torch.float64)
        train_y = torch.as_tensor((y - self._mean) / self._std, dtype=torch.float64)
        yvar = None if np.isnan(se).any() else torch.as_tensor((se / self._std) ** 2, dtype=torch.float64)
        with warnings.catch_warnings(), torch.random.fork_rng():  # refits after a failed fit draw from torch's RNG
            warnings.simplefilter("ignore")  # BoTorch warns about tiny data sets and near-standardised outcomes
            torch.manual_seed(0)
            batch = torch.Size([2])
            likelihood = None if yvar is None else FixedNoiseGaussianLikelihood(
                yvar.T, learn_additional_noise=True, batch_shape=batch)  # se^2 fixed, s^2 learned
            self.gp = SingleTaskGP(train_x, train_y, train_Yvar=yvar, likelihood=likelihood, outcome_transform=None,
                                   mean_module=LinearMean(obs.x.shape[1], batch_shape=batch))
            # L-BFGS-B's tiny matrices: SciPy's OpenBLAS with more threads busy-waits; on 2 cores, 40 trials,
            # one thread fitted in 0.12 s against 1.6-3.3 s with two
            with threadpool_limits(1, user_api="blas"):
                fit_gpytorch_mll(ExactMarginalLogLikelihood(self.gp.likelihood, self.gp))
        self.gp.eval()

    @property
    def seed_sd(self) -> np.ndarray:
        """The learned training-seed sd of (r, f) in their units (zeros when BoTorch inferred all the noise)."""
        extra = getattr(self.gp.likelihood, "second_noise_covar", None)
        if extra is None:
            return np.zeros(2)
        return np.sqrt(extra.noise.detach().numpy().reshape(-1)) * self._std

    def with_pending(self, x_pending: np.ndarray) -> BoundaryModel:
        """Kriging believer: a copy conditioned on its own mean at the pending points (variance shrinks there)."""
        if len(x_pending) == 0:
            return self
        xp = torch.as_tensor(x_pending, dtype=torch.float64)
        with torch.no_grad():
            mean = self.gp.posterior(xp).mean
            self.gp.posterior(torch.as_tensor(self.obs.x[:1], dtype=torch.float64))  # caches for conditioning
            gp = self.gp.condition_on_observations(xp, mean, noise=torch.full_like(mean, 1e-6))
        other = object.__new__(BoundaryModel)
        other.__dict__.update(self.__dict__, gp=gp)
        return other

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sd), each (n, 2): columns r (bilog retain drop / delta) and f (forget acc)."""
        with torch.no_grad():  # a batch of n single points: marginals only, no n x n test covariance
            post = self.gp.posterior(torch.as_tensor(np.atleast_2d(x), dtype=torch.float64).unsqueeze(-2))
            mean = post.mean.squeeze(-2).numpy() * self._std + self._mean
            sd = post.variance.squeeze(-2).clamp_min(1e-12).sqrt().numpy() * self._std
        return mean, sd

    def p_harmless(self, x: np.ndarray) -> np.ndarray:
        return harmless_p(*self.predict(x))
