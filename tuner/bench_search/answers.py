"""What a replayed trial is answered with, and the noise-free truth it is scored against.

    answers = make_answers(table, seed=0)                 # default: interpolated truth + fresh noise per answer
    answers = make_answers(table, seed=0, snap=True)      # --snap: the nearest grid point's frozen values
    a = answers.answer(params, seed_offset=0)             # Answer(forget, retain, forget_se, retain_se)
    answers.truth(params)                                 # (forget, retain), noise-free
    answers.best_feasible_forget(delta)                   # the truth's lowest forget with retain drop <= delta

Realistic answers: the table is read as the truth, multilinear in its own coordinates (log10 retain_coef,
log10 remove_coef, beta_kl), the retain drop as ``table.drop_effect`` = asinh(drop / drop_scale) (``DROP_SCALE``,
measured at the grid cells' centres; ``drop_scale=None``: the drop itself), which keeps it low between a harmless
and a damaging grid value until near the damaging one, as the real mini-world does — and every answer draws
afresh, per objective,

    p   = clip(truth + N(0, seed_sd), 0, 1)       training-seed noise (``AnswerModel.seed_sd``)
    acc = Binomial(n_eval, p) / n_eval            eval noise: n_eval questions (binomial), or
          clip(p + N(0, stderr_truth), 0, 1)      gaussian, the interpolated lm-eval stderr, or p itself (none)

where the training seed enters as it does in a real search: each answer is told the training seed offset t its
trial trains with (the service's ``seed_offset``). On a table built with several training seeds (``Table.seeds``,
m of them, mean T̄), with ``seed_noise="draws"`` (the default) seed offset t of replay seed s answers from the landscape

    L_t = T̄ + sum_i z_i (T_i - T̄) / sqrt(m - 1),     z = N(0, I_m) from default_rng([s, t])

(forget and retain, clipped to [0, 1]; a new Gaussian landscape with the seed tables' covariance, so at grid points
the seeds' sample variance), with ``"tables"`` from seed table (s + t) mod m itself; either way the seed shifts the
whole landscape a trial lives in, and the truth is the seeds' mean. Between grid points interpolation averages the
seeds' deviations. Forget's vary from point to point within a seed (at world 0's grid cells' centres, trained
for real, by ~10 points against the interpolation of the same seed's table, as much as between seeds), retain's
barely (~1 point, its eval noise). So with ``draws`` and ``restore_seed_var`` (the default) each forget answer also
draws, fresh, the variance lost there, seed_sd^2 = v(x) - var_i L_i(x) with v the seed tables' per-point forget
variance interpolated (``smoothed_seed_sd``: 0 at grid points); otherwise seed_sd = 0 with landscapes. On a
one-seed table (synthetic, world0-long) both fall back to ``"constant"``. Otherwise seed_sd is, with
``seed_noise="scaled"``, a function of the truth fitted to the measured seed sds

    forget: SCALED_FORGET_PEAK * 2 sqrt(q (1 - q)),  q = clip((baseline - f) / (baseline - min f), 0, 1)
    retain: SCALED_RETAIN_PER_ROOT_DROP * sqrt(max(drop, 0))

(none where nothing happens, largest where forgetting sets in), or with ``"constant"`` the pooled sds everywhere;
and reports the stderr lm-eval would (binomial: sqrt(acc (1 - acc) / (n_eval - 1)) of the drawn accuracy;
otherwise the interpolated one), never the seed sd.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from search_spaces.facts import retain_drop
from tuner.bench_search.surface import Surface
from tuner.bench_search.synthetic import binomial_se
from tuner.bench_search.table import Table

EVAL_NOISE = ("binomial", "gaussian", "none")
# Training-seed sd of the default mini-world's accuracies (fractions), pooled over 8 points x 4 seeds (no effect,
# edge and damage at beta_kl 0.3 and 1): ``python -m tuner.bench_search.seed_variance --seeds 4``. The sd is far
# from constant: 0 where nothing happens, up to 18 forget / 4.8 retain points at the edge and in the damage
SEED_SD_FORGET = 0.0936
SEED_SD_RETAIN = 0.0186
# The same 8 points fitted by the scaled model (q with min f = 27 %): forget sd 0 / 5.9 / 14 / 8.0 /
# 0.9 / 14 / 9.5 points against 0 / 6.1 / 18.3 / 4.4 / 0.3 / 16.0 / 7.2 measured, retain 0 / 1.0 / 3.7 / 2.9 against
# 0 / 1.3 / 4.8 / 1.0 where the drop is not 0; pooled 8.5 / 1.7 points against 9.4 / 1.9
SCALED_FORGET_PEAK = 0.14
SCALED_RETAIN_PER_ROOT_DROP = 0.12
SEED_NOISE = ("draws", "tables", "scaled", "constant")
LANDSCAPES = ("draws", "tables")  # seed noise that reads a table's seed tables
# The retain drop is interpolated as asinh(drop / DROP_SCALE): calibrated on world 0's grid cells' centres, each
# trained for real (``python -m tuner.bench_search.interpolation --table world0``, training seed 0): where the model
# puts the drop at 0.5-10 points, measured minus interpolated drop -0.51 ± 0.20 points (rms 1.14, 26 centres) against
# linear interpolation's -1.20 ± 0.25 (rms 1.67); 0.005 / 0.02 / 0.05 gave rms 1.16 / 1.29 / 1.70. On world 1
# (held-out): -0.35 ± 0.19 (rms 0.86) against -1.54 ± 0.20 (rms 1.76)
DROP_SCALE = 0.01


def drop_scale_arg(text: str) -> float | str:
    """``--drop-scale``'s value: a scale (a float) or ``linear`` (the drop interpolated as it is)."""
    if text == "linear":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a retain-drop scale (e.g. {DROP_SCALE}) nor "
                                         "'linear'") from None


@dataclass(frozen=True)
class AnswerModel:
    """The noise of a realistic answer (see the module docstring)."""

    eval_noise: str = "binomial"
    seed_noise: str = "draws"
    seed_sd_forget: float = SEED_SD_FORGET  # the constant model's sds
    seed_sd_retain: float = SEED_SD_RETAIN
    drop_scale: float | None = DROP_SCALE  # interpolate the retain drop as asinh(drop / drop_scale); None: linearly
    restore_seed_var: bool = True  # draws: add back, fresh per answer, the seed variance interpolation smooths away

    def __post_init__(self) -> None:
        if self.eval_noise not in EVAL_NOISE:
            raise ValueError(f"eval_noise {self.eval_noise!r} is not one of {EVAL_NOISE}")
        if self.seed_noise not in SEED_NOISE:
            raise ValueError(f"seed_noise {self.seed_noise!r} is not one of {SEED_NOISE}")
        for name in ("seed_sd_forget", "seed_sd_retain"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be a fraction in [0, 1) (an accuracy sd)")
        if self.drop_scale is not None and not 0 < self.drop_scale < 1:
            raise ValueError(f"drop_scale = {self.drop_scale} must be a fraction in (0, 1) (a retain drop)")

    def landscapes(self, table: Table) -> bool:
        """Whether answers come from the seed tables (``seed_noise`` in LANDSCAPES and more than one seed)."""
        return self.seed_noise in LANDSCAPES and len(table.seeds) > 1

    def seed_sd(self, forget: float, retain: float, table: Table) -> tuple[float, float]:
        """The training-seed sd added to (forget, retain) answers where the truth is (forget, retain); 0 where the
        seed tables carry it (``landscapes``)."""
        if self.landscapes(table):
            return 0.0, 0.0
        if self.seed_noise != "scaled":  # constant, or landscapes on a one-seed table
            return self.seed_sd_forget, self.seed_sd_retain
        span = max(table.baseline_forget - float(table.forget.min()), 1e-9)
        q = float(np.clip((table.baseline_forget - forget) / span, 0.0, 1.0))
        drop = max(retain_drop(table.baseline_retain, retain), 0.0)
        return SCALED_FORGET_PEAK * 2 * float(np.sqrt(q * (1 - q))), SCALED_RETAIN_PER_ROOT_DROP * float(np.sqrt(drop))


@dataclass(frozen=True)
class Answer:
    forget: float
    retain: float
    forget_se: float
    retain_se: float


class Answers(Protocol):
    def answer(self, params: dict[str, Any], seed_offset: int = 0) -> Answer: ...

    def truth(self, params: dict[str, Any]) -> tuple[float, float]: ...

    def best_feasible_forget(self, delta: float) -> float: ...

    def boundary(self, delta: float) -> np.ndarray: ...


def make_answers(table: Table, seed: int, snap: bool = False, model: AnswerModel | None = None) -> Answers:
    if snap:
        if model is not None:
            raise ValueError("snapped answers are the table's frozen values: drop the answer model or snap=False")
        return SnapAnswers(table)
    return RealisticAnswers(table, model or AnswerModel(), seed)


class SnapAnswers:
    """The nearest grid point's values, as observation and as truth (the table's one frozen noise draw)."""

    def __init__(self, table: Table):
        self.table = table

    def answer(self, params: dict[str, Any], seed_offset: int = 0) -> Answer:
        t, i = self.table, self.table.nearest(params)
        return Answer(float(t.forget[i]), float(t.retain[i]), float(t.forget_se[i]), float(t.retain_se[i]))

    def truth(self, params: dict[str, Any]) -> tuple[float, float]:
        i = self.table.nearest(params)
        return float(self.table.forget[i]), float(self.table.retain[i])

    def best_feasible_forget(self, delta: float) -> float:
        return self.table.best_feasible_forget(delta)

    def boundary(self, delta: float) -> np.ndarray:
        return self.table.boundary(delta)


class RealisticAnswers:
    """Interpolated truth plus fresh seed and eval noise per answer, from ``np.random.default_rng(seed)``; with
    landscapes, the answer for training seed offset t reads ``landscape(t)``."""

    def __init__(self, table: Table, model: AnswerModel, seed: int):
        self.table, self.model, self.seed = table, model, seed
        self.rng = np.random.default_rng(seed)
        self.surface = Surface(table, model.drop_scale)
        self.seed_surfaces = [Surface(t, model.drop_scale) for t in table.seeds] if model.landscapes(table) else []
        restore = model.restore_seed_var and model.seed_noise == "draws" and self.seed_surfaces
        self.seed_var = _seed_variance(table, self.surface) if restore else None

    def landscape(self, seed_offset: int = 0) -> Callable[[dict[str, Any]], tuple[float, float, float, float]]:
        """The (forget, retain, forget stderr, retain stderr) a run with training seed offset ``seed_offset``
        answers from: a Gaussian draw over the seed tables, one seed table, or the truth (module docstring)."""
        m = len(self.seed_surfaces)
        if not m:
            return self.surface
        if self.model.seed_noise == "tables":
            return self.seed_surfaces[(self.seed + seed_offset) % m]
        z = np.random.default_rng([self.seed, seed_offset]).standard_normal(m) / np.sqrt(m - 1)

        def drawn(params: dict[str, Any]) -> tuple[float, float, float, float]:
            mean = np.array(self.surface(params))
            each = np.array([s(params) for s in self.seed_surfaces])[:, :2]
            forget, retain = np.clip(mean[:2] + z @ (each - each.mean(axis=0)), 0.0, 1.0)
            return float(forget), float(retain), float(mean[2]), float(mean[3])
        return drawn

    def smoothed_seed_sd(self, params: dict[str, Any]) -> np.ndarray:
        """The (forget, retain) seed sd that interpolating the seed tables smooths away at ``params``: for forget the
        seed tables' variance interpolated minus the variance of their interpolations (0 at grid points), for retain
        none (its seeds' deviations barely vary within a cell: the module doc); zeros without ``restore_seed_var``."""
        if self.seed_var is None:
            return np.zeros(2)
        forget = np.array([s(params)[0] for s in self.seed_surfaces])
        lost = float(self.seed_var(self.surface.coords(params))[0]) - forget.var(ddof=1)
        return np.array([np.sqrt(max(0.0, lost)), 0.0])

    def answer(self, params: dict[str, Any], seed_offset: int = 0) -> Answer:
        forget, retain, forget_se, retain_se = self.landscape(seed_offset)(params)
        sd_f, sd_r = (self.smoothed_seed_sd(params) if self.seed_var is not None
                      else self.model.seed_sd(forget, retain, self.table))
        f, f_se = self._draw(forget, forget_se, sd_f)
        r, r_se = self._draw(retain, retain_se, sd_r)
        return Answer(f, r, f_se, r_se)

    def _draw(self, truth: float, stderr: float, seed_sd: float) -> tuple[float, float]:
        p = float(np.clip(truth + (self.rng.normal(0.0, seed_sd) if seed_sd else 0.0), 0.0, 1.0))  # 1 + 2e-16 too
        n = self.table.n_eval
        if self.model.eval_noise == "binomial":
            acc = self.rng.binomial(n, p) / n
            return float(acc), float(binomial_se(acc, n))
        if self.model.eval_noise == "gaussian":
            return float(np.clip(p + self.rng.normal(0.0, stderr), 0.0, 1.0)), stderr
        return p, stderr

    def answer_sd(self, params: dict[str, Any]) -> tuple[float, float]:
        """The stated sd of (forget, retain) answers at ``params`` over replay seeds, clipping aside:
        sqrt(seed_sd^2 + eval var), eval var = (t (1 - t) - seed_sd^2) / n_eval (binomial around the seed-noised t)
        or stderr^2 (gaussian); with landscapes seed_sd is the seed tables' sd at ``params`` (sample sd for
        ``draws``, population sd for ``tables``: the m tables themselves)."""
        forget, retain, forget_se, retain_se = self.surface(params)

        def sd(t: float, se: float, seed_sd: float) -> float:
            var = {"binomial": (t * (1 - t) - seed_sd**2) / self.table.n_eval, "gaussian": se**2, "none": 0.0}
            return float(np.sqrt(seed_sd**2 + var[self.model.eval_noise]))

        if self.seed_surfaces:
            ddof = 1 if self.model.seed_noise == "draws" else 0
            landscape_var = np.var([s(params)[:2] for s in self.seed_surfaces], axis=0, ddof=ddof)
            sd_f, sd_r = np.sqrt(landscape_var + self.smoothed_seed_sd(params) ** 2)
        else:
            sd_f, sd_r = self.model.seed_sd(forget, retain, self.table)
        return sd(forget, forget_se, sd_f), sd(retain, retain_se, sd_r)

    def truth(self, params: dict[str, Any]) -> tuple[float, float]:
        forget, retain, _, _ = self.surface(params)
        return forget, retain

    def best_feasible_forget(self, delta: float) -> float:
        return self.surface.best_feasible_forget(delta)

    def boundary(self, delta: float) -> np.ndarray:
        return self.table.boundary(delta, self.model.drop_scale)


def _seed_variance(table: Table, surface: Surface) -> RegularGridInterpolator:
    """The seed tables' per-point sample variance of forget accuracy, multilinear on ``surface``'s grid."""
    flat = tuple(slice(None) if len(a.values) > 1 else 0 for a in table.axes)
    var = np.var([t.forget for t in table.seeds], axis=0, ddof=1)[flat]
    return RegularGridInterpolator(surface.grid, var, method="linear")
