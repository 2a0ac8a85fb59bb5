"""A synthetic table shaped like the mini-world, with a known boundary (tests and a quick method comparison).

    ratio = remove_coef / retain_coef
    log10 ratio* = onset + kl_shift * beta_kl + retain_slope * log10(retain_coef / 5)   # where drop = delta
    retain drop  = collapse * sigmoid((log10 ratio - log10 ratio*) / width + logit(delta / collapse))
                   + dip * exp(-((log10 ratio - forget_mid) / width)^2)       (dip: damage where forgetting sets in)
    forget acc   = base_forget - (base_forget - chance) * sigmoid((log10 ratio - forget_mid) / width)

Defaults: the damage boundary runs from ratio 0.25 (beta_kl 0) to ~1.15 (beta_kl 1), forgetting is
half-way at ratio 0.1 and absent below ~0.03, no dip. ``WORLDS`` holds the cases a real model can produce
besides (``python -m tuner.bench_search --synthetic NAME``): the boundary near the top or the bottom of the
range, no harmless forgetting anywhere, nothing damaging, a retain drop that is not monotone in remove_coef.
Observed: of the ``base * n_eval`` questions the baseline answers, each is lost with probability drop / base (no
effect -> no noise, as with a fixed question set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from search_spaces.facts import DEFAULT_DELTA
from tuner.bench_search.table import Axis, Table


@dataclass(frozen=True)
class SyntheticWorld:
    onset: float = math.log10(0.25)
    kl_shift: float = 0.66
    retain_slope: float = 0.05
    width: float = 0.12
    collapse: float = 0.74
    forget_mid: float = -1.0
    base_forget: float = 0.9875
    base_retain: float = 0.9875
    chance: float = 0.25
    dip: float = 0.0
    delta: float = DEFAULT_DELTA

    def log_ratio_star(self, retain: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return self.onset + self.kl_shift * np.asarray(beta) + self.retain_slope * np.log10(np.asarray(retain) / 5)

    def true_drop(self, retain: np.ndarray, remove: np.ndarray, beta: np.ndarray) -> np.ndarray:
        lr = np.log10(np.asarray(remove) / np.asarray(retain))
        z = (lr - self.log_ratio_star(retain, beta)) / self.width + logit(self.delta / self.collapse)
        return self.collapse * expit(z) + self.dip * np.exp(-(((lr - self.forget_mid) / self.width) ** 2))

    def true_forget(self, retain: np.ndarray, remove: np.ndarray) -> np.ndarray:
        lr = np.log10(np.asarray(remove) / np.asarray(retain))
        return self.base_forget - (self.base_forget - self.chance) * expit((lr - self.forget_mid) / self.width)

    def table(self, n_retain: int = 7, n_remove: int = 7, n_beta: int = 4, n_eval: int = 80,
              seed: int | None = 0, ranges: tuple[tuple[float, float], ...] = ((0.3, 100.0), (0.1, 30.0), (0.0, 1.0)),
              ) -> Table:
        """The grid table; ``seed=None`` gives the noise-free means (stderrs still binomial)."""
        (r0, r1), (m0, m1), (b0, b1) = ranges
        axes = (Axis("retain_coef", tuple(np.geomspace(r0, r1, n_retain)), r0, r1, True),
                Axis("remove_coef", tuple(np.geomspace(m0, m1, n_remove)), m0, m1, True),
                Axis("beta_kl", tuple(np.linspace(b0, b1, n_beta)), b0, b1, False))
        ret, rem, beta = np.meshgrid(*(np.asarray(a.values) for a in axes), indexing="ij")
        forget = self.true_forget(ret, rem)
        retain = self.base_retain - self.true_drop(ret, rem, beta)
        if seed is not None:  # each question the baseline answers is lost with probability drop / baseline
            rng = np.random.default_rng(seed)
            forget, retain = (_lose(rng, n_eval, self.base_forget, self.base_forget - forget),
                              _lose(rng, n_eval, self.base_retain, self.base_retain - retain))
        return Table(axes=axes, along="remove_coef", forget=forget, forget_se=binomial_se(forget, n_eval),
                     retain=retain, retain_se=binomial_se(retain, n_eval), baseline_forget=self.base_forget,
                     baseline_retain=self.base_retain,
                     n_eval=n_eval, key=f"synthetic-{seed}")


# The ranges span remove/retain ratios 0.001-100; the default boundary sits at 0.25-1.15, forgetting sets in at ~0.03
WORLDS = {
    "default": SyntheticWorld(),
    "boundary-high": SyntheticWorld(onset=math.log10(8.0)),  # ratio* 8-37: damage only near the top corner
    "boundary-low": SyntheticWorld(onset=math.log10(0.02), forget_mid=math.log10(0.005)),  # harmless band 0.002-0.02
    "no-harmless": SyntheticWorld(onset=math.log10(0.01)),  # damage (ratio 0.01-0.05) before forgetting (0.1)
    "no-damage": SyntheticWorld(onset=3.0),  # ratio* 1000 and more: beyond the range
    "dip": SyntheticWorld(dip=0.04),  # a 4-point retain dip where forgetting sets in, harmless again above it
}


def binomial_se(p: np.ndarray, n: int) -> np.ndarray:
    """lm-eval's stderr of an accuracy over n questions: sqrt(p (1 - p) / (n - 1))."""
    return np.sqrt(p * (1 - p) / (n - 1))


def _lose(rng: np.random.Generator, n_eval: int, base: float, drop: np.ndarray) -> np.ndarray:
    known = round(base * n_eval)
    return (known - rng.binomial(known, np.clip(drop / base, 0, 1))) / n_eval
