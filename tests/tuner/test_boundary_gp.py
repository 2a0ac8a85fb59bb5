"""The GPs' noise model: each trial's lm-eval stderr, fixed, raised to the replicates' pooled sd once there are
enough of them, plus a training-seed variance learned from the data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuner.boundary_search.gp import BoundaryModel, Observations, pooled_sd

SE_FORGET, SE_RETAIN, DELTA = 0.02, 0.01, 0.02


def observations(seed_sd: float, seed: int = 0, grouped: bool = False) -> Observations:
    """30 points, each run twice; forget = 0.9 - 0.6 x1 plus the stderr's noise and a seed draw of sd ``seed_sd``;
    ``grouped``: the runs are known as replicates (``points``)."""
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.random((30, 3)), 2, axis=0)
    forget = 0.9 - 0.6 * x[:, 1] + rng.normal(0, SE_FORGET, len(x)) + rng.normal(0, seed_sd, len(x))
    drop = 0.05 * x[:, 1] + rng.normal(0, SE_RETAIN, len(x))
    points = tuple((i, i + 1) for i in range(0, len(x), 2)) if grouped else ()
    return Observations(x=x, retain_drop=drop, forget=forget, retain_se=np.full(len(x), SE_RETAIN),
                        forget_se=np.full(len(x), SE_FORGET), points=points)


def test_pooled_sd_is_the_within_point_sd():
    y = np.array([1.0, 3.0, 5.0, 2.0, 4.0, 6.0])
    assert pooled_sd(y, ((0, 1), (2,), (3, 4, 5))) == pytest.approx(math.sqrt((2 + 8) / 3))  # df = 1 + 2
    assert math.isnan(pooled_sd(y, ((0, 1), (2,))))  # one degree of freedom is not enough
    assert math.isnan(pooled_sd(y, ()))


def test_replicates_floor_the_noise_at_their_pooled_sd():
    """Pairs with a 0.08 seed sd on top of a 0.02 stderr: once they are known as replicates, every trial's forget
    noise is at least their pooled sd and the retain noise at least its bilog slope at the edge; unknown, the
    stderrs stay as lm-eval gave them."""
    grouped, plain = observations(0.08, grouped=True), observations(0.08)
    model = BoundaryModel(grouped, DELTA)
    sd_drop, sd_forget = pooled_sd(grouped.retain_drop, grouped.points), pooled_sd(grouped.forget, grouped.points)
    assert sd_forget > 2 * SE_FORGET
    assert model.replicate_sd == pytest.approx([sd_drop, sd_forget])
    assert model.noise_se[:, 1].min() == pytest.approx(sd_forget)
    assert model.noise_se[:, 0].min() >= sd_drop / (2 * DELTA) - 1e-12
    unknown = BoundaryModel(plain, DELTA)
    assert np.isnan(unknown.replicate_sd).all()
    assert unknown.noise_se[:, 1] == pytest.approx(np.full(len(plain), SE_FORGET))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_seed_noise_is_learned_from_replicates(seed: int):
    noisy = BoundaryModel(observations(0.08, seed), DELTA).seed_sd[1]
    quiet = BoundaryModel(observations(0.0, seed), DELTA).seed_sd[1]
    assert 0.04 <= noisy <= 0.13, noisy  # truth 0.08 on top of the 0.02 stderr
    assert quiet <= 0.03, quiet


def test_replicates_narrow_the_prediction_at_their_point():
    """The same point run 1, then 4 times (all at its mean): the posterior sd of forget there shrinks."""
    obs = observations(0.08)
    once = Observations(*(getattr(obs, f)[::2] for f in ("x", "retain_drop", "forget", "retain_se", "forget_se")))
    extra = np.repeat(once.x[:1], 3, axis=0)
    many = Observations(x=np.vstack([once.x, extra]), retain_drop=np.r_[once.retain_drop, [once.retain_drop[0]] * 3],
                        forget=np.r_[once.forget, [once.forget[0]] * 3], retain_se=np.full(len(once) + 3, SE_RETAIN),
                        forget_se=np.full(len(once) + 3, SE_FORGET))
    sd_once = BoundaryModel(once, DELTA).predict(once.x[:1])[1][0, 1]
    sd_many = BoundaryModel(many, DELTA).predict(once.x[:1])[1][0, 1]
    assert sd_many < 0.8 * sd_once, (sd_once, sd_many)
