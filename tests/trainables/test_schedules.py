"""Coefficient schedules of docs/architecture.md#schedules."""

from __future__ import annotations

import pytest

from trainables.schedules import DEFAULT_SCHEDULE, SCHEDULES, coefficients, progress

# (a_rm, a_ret) as functions of s, written from the docs/architecture.md#schedules formulas.
FORMULAS = {
    "eleuther": lambda s: (1 - 0.25 * s, s),
    "paper": lambda s: (1 - s / 2, s / 2),
    "constant": lambda s: (1.0, 1.0),
}


def test_registry_and_default():
    assert set(SCHEDULES) == set(FORMULAS)
    assert DEFAULT_SCHEDULE == "eleuther"


@pytest.mark.parametrize("name", sorted(FORMULAS))
@pytest.mark.parametrize(("step", "s"), [(0, 0.0), (5, 0.5), (10, 1.0)])
def test_coefficients_follow_formula(name, step, s):
    a_rm, a_ret = FORMULAS[name](s)
    c_remove, c_retain = coefficients(name, step, total_steps=10, remove_coef=3.0, retain_coef=7.0)
    assert c_remove == pytest.approx(3.0 * a_rm)
    assert c_retain == pytest.approx(7.0 * a_ret)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_progress_is_clamped_after_total_steps(name):
    assert coefficients(name, 25, 10, 1.0, 1.0) == coefficients(name, 10, 10, 1.0, 1.0)
    assert progress(25, 10) == 1.0


def test_unknown_schedule_names_valid_ones():
    with pytest.raises(ValueError, match="constant, eleuther, paper"):
        coefficients("linear", 0, 10, 1.0, 1.0)


@pytest.mark.parametrize(("step", "total_steps"), [(0, 0), (-1, 10)])
def test_invalid_step_counts(step, total_steps):
    with pytest.raises(ValueError, match="step"):
        progress(step, total_steps)
