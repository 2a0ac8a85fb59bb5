"""The noise-limited regret of a recommendation: none without noise, shrinking with more runs at the answer,
growing with the retain noise, and on a table where forget falls linearly with the drop (read linearly),
slope * z * sigma / sqrt(k)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from tuner.bench_search.answers import AnswerModel, RealisticAnswers
from tuner.bench_search.edge_limit import CONFIDENCE, regret_given_runs
from tuner.bench_search.table import Axis, Table

DELTA = 0.02
SLOPE = 4.0  # forget points per point of retain drop


def linear_table() -> Table:
    """Retain drop 0 .. 6 points along log remove_coef, forget 60 % at no drop falling SLOPE points per point."""
    remove = np.geomspace(0.1, 10, 13)
    drop = np.linspace(0, 0.06, 13)
    axes = (Axis("retain_coef", (1.0, 10.0), 1.0, 10.0, True), Axis("remove_coef", tuple(remove), 0.1, 10, True),
            Axis("beta_kl", (0.1, 1.0), 0.1, 1.0, False))
    shape = (2, 13, 2)
    retain = np.broadcast_to(1.0 - drop[None, :, None], shape).copy()
    forget = np.broadcast_to(0.6 - SLOPE * drop[None, :, None], shape).copy()
    return Table(axes, "remove_coef", forget, np.full(shape, 0.02), retain, np.full(shape, 0.005), 0.99, 1.0, 1000)


def test_without_noise_nothing_is_given_up():
    quiet = AnswerModel(eval_noise="none", seed_sd_forget=0.0, seed_sd_retain=0.0)
    assert regret_given_runs(RealisticAnswers(linear_table(), quiet, seed=0), DELTA) == {2: 0, 4: 0, 8: 0, 16: 0}


def test_more_runs_give_up_less_and_more_noise_gives_up_more():
    runs = (1, 2, 4, 8, 16, 10**6)
    default = regret_given_runs(RealisticAnswers(linear_table(), AnswerModel(), seed=0), DELTA, runs)
    noisier = regret_given_runs(RealisticAnswers(linear_table(), AnswerModel(seed_sd_retain=0.03), seed=0), DELTA,
                                runs)
    values = [default[k] for k in runs]
    assert values == sorted(values, reverse=True) and values[0] > values[-2] > 0
    assert values[-1] == pytest.approx(0.0, abs=0.01)  # a million runs: the pick sits at delta
    assert all(noisier[k] >= default[k] for k in runs) and noisier[4] > default[4]


def test_a_linear_edge_gives_up_slope_times_the_margin():
    answers = RealisticAnswers(linear_table(), AnswerModel(eval_noise="gaussian", drop_scale=None), seed=0)
    sigma = float(np.hypot(AnswerModel().seed_sd_retain, 0.005))  # seed sd and the table's stderr
    z = norm.ppf(CONFIDENCE)
    for k, regret in regret_given_runs(answers, DELTA, (2, 4, 8)).items():
        assert regret == pytest.approx(100 * SLOPE * z * sigma / np.sqrt(k), rel=1e-6)


def test_no_harmless_point_gives_nan():
    table = linear_table()
    table.retain = np.zeros_like(table.retain)  # everything collapses
    assert all(np.isnan(v) for v in regret_given_runs(RealisticAnswers(table, AnswerModel(), seed=0), DELTA).values())
