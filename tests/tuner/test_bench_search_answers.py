"""Realistic replay answers: continuous in the table's coordinates, exact at grid points without noise, noise at
the stated sd, a fresh draw per answer; ``snap`` keeps the nearest grid point's frozen values."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import optuna
import pytest

from tuner.bench_search import replay as replay_module
from tuner.bench_search.answers import DROP_SCALE, AnswerModel, RealisticAnswers, SnapAnswers, make_answers
from tuner.bench_search.replay import replay
from tuner.bench_search.surface import Surface
from tuner.bench_search.synthetic import SyntheticWorld

WORLD = SyntheticWorld()
TABLE = WORLD.table(seed=None)
QUIET = AnswerModel(eval_noise="none", seed_sd_forget=0.0, seed_sd_retain=0.0, drop_scale=None)  # the drop linear


def params_at(index: tuple[int, ...]) -> dict[str, float]:
    return {a.name: a.values[i] for a, i in zip(TABLE.axes, index, strict=True)}


def test_noise_free_answers_equal_the_table_at_grid_points():
    answers = RealisticAnswers(TABLE, QUIET, seed=0)
    for index in itertools.product(*(range(len(a.values)) for a in TABLE.axes)):
        a = answers.answer(params_at(index))
        assert (a.forget, a.retain, a.forget_se, a.retain_se) == pytest.approx(
            (TABLE.forget[index], TABLE.retain[index], TABLE.forget_se[index], TABLE.retain_se[index]), abs=1e-12)


def test_answers_between_grid_points_lie_between_the_neighbouring_values():
    """Inside a grid cell the multilinear truth lies within the cell's corner values; along an edge it moves
    monotonically (linearly in log remove_coef) from one grid value to the next."""
    answers = RealisticAnswers(TABLE, QUIET, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(200):
        lo = tuple(int(rng.integers(len(a.values) - 1)) for a in TABLE.axes)
        t = rng.random(len(TABLE.axes))
        params = {}
        for a, i, w in zip(TABLE.axes, lo, t, strict=True):
            c0, c1 = a.coord(a.values[i]), a.coord(a.values[i + 1])
            params[a.name] = float(10 ** (c0 + w * (c1 - c0)) if a.log else c0 + w * (c1 - c0))
        corners = [tuple(i + d for i, d in zip(lo, ds, strict=True)) for ds in itertools.product((0, 1), repeat=3)]
        forget, retain = answers.truth(params)
        for value, array in ((forget, TABLE.forget), (retain, TABLE.retain)):
            vals = [array[c] for c in corners]
            assert min(vals) - 1e-12 <= value <= max(vals) + 1e-12
    remove = TABLE.axes[TABLE.names.index("remove_coef")].values  # the boundary crosses (3, 3..4, 0)'s edge
    edge = [answers.truth({"retain_coef": TABLE.axes[0].values[3], "beta_kl": TABLE.axes[2].values[0],
                           "remove_coef": x})[1] for x in np.geomspace(remove[3], remove[4], 9)]
    assert edge[0] == pytest.approx(TABLE.retain[3, 3, 0]) and edge[-1] == pytest.approx(TABLE.retain[3, 4, 0])
    assert abs(edge[-1] - edge[0]) > 0.05
    assert np.allclose(np.diff(edge), np.diff(edge)[0])  # linear in log10 remove_coef


@pytest.mark.parametrize("eval_noise", ["binomial", "gaussian", "none"])
def test_answer_noise_matches_the_stated_sd(eval_noise):
    """Many answers at one point past the boundary (forget near chance, retain half collapsed): their mean is the
    truth and their sd the stated sqrt(seed sd^2 + eval variance), within 3 % (the sd's own sampling sd is 0.5 %)."""
    model = AnswerModel(eval_noise=eval_noise, seed_sd_forget=0.03, seed_sd_retain=0.02)
    answers = RealisticAnswers(TABLE, model, seed=0)
    params = {"retain_coef": 3.0, "remove_coef": 4.5, "beta_kl": 0.5}
    draws = np.array([[a.forget, a.retain] for a in (answers.answer(params) for _ in range(20000))])
    truth, stated = np.array(answers.truth(params)), np.array(answers.answer_sd(params))
    assert np.all((truth - 4 * stated > 0) & (truth + 4 * stated < 1))  # interior: clipping plays no part
    assert np.all(stated >= np.array([model.seed_sd_forget, model.seed_sd_retain]))
    assert draws.mean(axis=0) == pytest.approx(truth, abs=4 * stated.max() / np.sqrt(len(draws)))
    assert draws.std(axis=0, ddof=1) == pytest.approx(stated, rel=0.03)


def test_scaled_seed_noise_is_none_without_an_effect_and_largest_where_forgetting_sets_in():
    """``seed_noise="scaled"``: at a no-effect grid point every answer is the truth (within 0.1 point); along
    remove_coef the forget sd rises from 0, peaks half-way to the table's lowest forget and falls again; the retain
    sd grows with the drop; many answers where both are large have the stated sd."""
    model = AnswerModel(eval_noise="none", seed_noise="scaled")
    answers = RealisticAnswers(TABLE, model, seed=0)
    quiet = params_at((len(TABLE.axes[0].values) - 1, 0, 0))  # highest retain_coef, lowest remove_coef
    assert [answers.answer(quiet).forget for _ in range(5)] == pytest.approx([answers.truth(quiet)[0]] * 5, abs=1e-3)
    line = [{"retain_coef": 30.0, "remove_coef": float(r), "beta_kl": 0.5} for r in np.geomspace(0.1, 30, 60)]
    sd = np.array([answers.answer_sd(p) for p in line])
    truth = np.array([answers.truth(p) for p in line])
    q = (TABLE.baseline_forget - truth[:, 0]) / (TABLE.baseline_forget - TABLE.forget.min())
    peak = int(np.argmax(sd[:, 0]))
    assert sd[0, 0] < 0.01 and 0.3 <= q[peak] <= 0.7 and sd[peak, 0] > 0.1 and sd[-1, 0] < sd[peak, 0] / 2
    drop = TABLE.baseline_retain - truth[:, 1]
    assert np.all(np.diff(sd[:, 1])[np.diff(drop) > 1e-9] >= 0)  # more damage, more retain noise
    assert answers._draw(1 + 2e-16, 0.0, 0.0)[0] == 1.0  # a truth a rounding error above 1, no seed noise there
    at = line[int(np.argmax(sd[:, 0] * sd[:, 1]))]
    draws = np.array([[a.forget, a.retain] for a in (answers.answer(at) for _ in range(20000))])
    assert draws.std(axis=0, ddof=1) == pytest.approx(np.array(answers.answer_sd(at)), rel=0.05)


def test_every_answer_is_a_fresh_draw_and_the_stderr_is_lm_evals():
    answers = RealisticAnswers(TABLE, AnswerModel(seed_sd_forget=0.02, seed_sd_retain=0.01), seed=0)
    params = params_at((3, 3, 2))
    a, b = answers.answer(params), answers.answer(params)
    assert (a.forget, a.retain) != (b.forget, b.retain)
    n = TABLE.n_eval
    assert a.forget_se == pytest.approx(np.sqrt(a.forget * (1 - a.forget) / (n - 1)))  # the drawn accuracy's
    again = RealisticAnswers(TABLE, AnswerModel(seed_sd_forget=0.02, seed_sd_retain=0.01), seed=0)
    assert again.answer(params) == a  # reproducible per replay seed


def test_a_drop_scale_keeps_grid_values_and_lowers_the_drop_between_harmless_and_damaging_ones():
    """asinh(drop / scale) interpolation: the table's values at grid points, monotone along an edge, and below the
    linear drop inside it wherever the drop rises (convex there); the truth's boundary moves with it."""
    scale = 0.05
    answers = RealisticAnswers(TABLE, dataclasses.replace(QUIET, drop_scale=scale), seed=0)
    linear = RealisticAnswers(TABLE, QUIET, seed=0)
    for index in itertools.product(*(range(len(a.values)) for a in TABLE.axes)):
        assert answers.truth(params_at(index)) == pytest.approx(linear.truth(params_at(index)), abs=1e-12)
    remove = TABLE.axes[TABLE.names.index("remove_coef")].values  # the boundary crosses (3, 3..4, 0)'s edge
    at = {"retain_coef": TABLE.axes[0].values[3], "beta_kl": TABLE.axes[2].values[0]}
    xs = np.geomspace(remove[3], remove[4], 9)
    drop = [TABLE.baseline_retain - answers.truth(at | {"remove_coef": x})[1] for x in xs]
    lin = [TABLE.baseline_retain - linear.truth(at | {"remove_coef": x})[1] for x in xs]
    assert np.all(np.diff(drop) > 0) and all(d < q - 1e-6 for d, q in zip(drop[1:-1], lin[1:-1], strict=True))
    expected = TABLE.boundary(WORLD.delta, scale)
    assert np.array_equal(answers.boundary(WORLD.delta), expected)
    assert not np.allclose(expected, TABLE.boundary(WORLD.delta))
    assert np.all(expected >= TABLE.boundary(WORLD.delta) - 1e-12)  # a lower drop crosses delta later


def test_truths_best_feasible_forget_is_at_least_as_good_as_the_grids():
    """The interpolated truth's feasible set contains every feasible grid point, so its best is no worse."""
    surface = Surface(TABLE)
    best = surface.best_feasible_forget(WORLD.delta)
    assert best <= TABLE.best_feasible_forget(WORLD.delta) + 1e-12
    assert best >= TABLE.forget.min() - 1e-12


def test_snap_answers_are_the_nearest_grid_points_frozen_values():
    noisy = WORLD.table(seed=0)
    answers = make_answers(noisy, seed=0, snap=True)
    assert isinstance(answers, SnapAnswers)
    params = {"retain_coef": 2.9, "remove_coef": 0.31, "beta_kl": 0.4}
    i = noisy.nearest(params)
    assert answers.answer(params) == answers.answer(params)
    assert (answers.answer(params).forget, answers.truth(params)) == (noisy.forget[i], (noisy.forget[i],
                                                                                        noisy.retain[i]))
    assert answers.best_feasible_forget(WORLD.delta) == noisy.best_feasible_forget(WORLD.delta)
    with pytest.raises(ValueError, match="frozen values"):
        make_answers(noisy, seed=0, snap=True, model=QUIET)


@pytest.mark.parametrize("snap", [True, False])
def test_replay_tells_the_studys_trials_what_the_answers_say(monkeypatch, snap):
    """With --snap every told value is the nearest grid point's (the old replay); realistic answers are
    not grid values and the stderrs the method sees are lm-eval's, not the seed sd."""
    told = []

    class Spy(optuna.samplers.RandomSampler):
        def after_trial(self, study, trial, state, values):
            told.append((dict(trial.params), tuple(values), trial.user_attrs["forget_stderr"]))

    monkeypatch.setattr(replay_module, "make", lambda *a: Spy(seed=0))
    table = WORLD.table(seed=0 if snap else None)
    replay("random", table, seed=0, max_concurrent=2, max_trials=12, delta=WORLD.delta, snap=snap)
    assert len(told) == 12
    on_grid = [values == (table.forget[table.nearest(p)], table.retain[table.nearest(p)]) for p, values, _ in told]
    assert all(on_grid) if snap else not any(on_grid)
    if not snap:
        n = table.n_eval
        assert all(se == pytest.approx(np.sqrt(v[0] * (1 - v[0]) / (n - 1))) for _, v, se in told)


def test_answer_model_rejects_bad_settings():
    with pytest.raises(ValueError, match="eval_noise 'poisson'"):
        AnswerModel(eval_noise="poisson")
    with pytest.raises(ValueError, match="seed_sd_retain = -0.1"):
        AnswerModel(seed_sd_retain=-0.1)
    with pytest.raises(ValueError, match="drop_scale = 0"):
        AnswerModel(drop_scale=0)


@pytest.mark.parametrize("argv, message", [
    (["--synthetic", "--snap", "--seed-sd-forget", "0.1"], "--snap answers with the table's frozen values"),
    (["--synthetic", "--seed-sd-retain", "2"], "seed_sd_retain = 2.0 must be a fraction"),
    (["--synthetic", "--drop-scale", "2"], "drop_scale = 2.0 must be a fraction"),
    (["--synthetic", "--drop-scale", "log"], "'log' is neither a retain-drop scale"),
])
def test_cli_rejects_noise_settings_it_cannot_use(capsys, argv, message):
    from tuner.bench_search.__main__ import main

    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, drop_scale", [([], DROP_SCALE), (["--drop-scale", "linear"], None),
                                              (["--drop-scale", "0.05"], 0.05)])
def test_the_replay_reads_the_drop_as_asinh_of_the_default_scale_unless_told(tmp_path, argv, drop_scale):
    from tuner.bench_search.__main__ import main

    main(["--synthetic", "--methods", "random", "--seeds", "1", "--max-trials", "4", "--budgets", "4",
          "--max-concurrent", "1", "--workers", "1", "--out", str(tmp_path), *argv])
    assert json.loads((tmp_path / "bench_search.json").read_text())["answers"]["drop_scale"] == drop_scale


def test_seed_variance_reuses_finished_trials_and_pools_per_point_variances(monkeypatch, tmp_path):
    from tuner.bench_search import seed_variance as sv

    values = {(1.0, 0): 0.5, (1.0, 1): 0.6, (1.0, 2): 0.7, (2.0, 0): 0.9, (2.0, 1): 0.9, (2.0, 2): 0.96}
    calls = []

    def fake_run_point(preset, overrides, params, baseline):
        calls.append((params["retain_coef"], overrides["seed"]))
        acc = values[(params["retain_coef"], overrides["seed"])]
        score = {"acc": acc, "stderr": 0.01, "n": 336}
        return {"forget": score, "retain": {**score, "acc": 1 - acc / 10}, "diverged": False}

    monkeypatch.setattr(sv, "run_point", fake_run_point)
    points = [(1.0, 1.0, 0.3, "a"), (2.0, 1.0, 0.3, "b")]
    sink = tmp_path / "seed_points.jsonl"
    sv.measure(points[:1], 2, "miniworld", {}, sink)
    records = sv.measure(points, 3, "miniworld", {}, sink)
    assert calls == [(1.0, 0), (1.0, 1), (1.0, 2), (2.0, 0), (2.0, 1), (2.0, 2)]  # each trial once
    out = sv.summary(points, 3, records)
    sds = [np.std([values[(r, s)] for s in range(3)], ddof=1) for r in (1.0, 2.0)]
    assert [row["forget"]["seed_sd"] for row in out["points"]] == pytest.approx(sds)
    assert out["pooled_sd"]["forget"] == pytest.approx(np.sqrt(np.mean(np.square(sds))))
    assert out["pooled_sd"]["retain"] == pytest.approx(np.sqrt(np.mean(np.square(sds))) / 10)
    assert "| 1 | 1 | 0.3 | 1 | a | 3 |" in sv.markdown(out, "cmd")


@pytest.mark.parametrize("scale", [None, 0.05])
def test_real_trials_drop_residuals_are_observed_minus_the_tables_drop_near_the_edge(tmp_path, scale):
    """``tuner.bench_search.real.drop_residuals``: for a run's trials whose table drop (read as ``scale`` says) lies
    in the edge band, the observed drop minus the table's; trials outside the band are left out."""
    from trainables.evaluation.result import TaskScore
    from tuner.bench_search.real import EDGE_BAND, drop_residuals
    from tuner.records.results import ResultsTable
    from tuner.records.schema import BASELINE_ID, TrialRow

    surface, results = Surface(TABLE, scale), ResultsTable(tmp_path)
    rows = [(BASELINE_ID, {}, TABLE.baseline_retain)]
    rng, expected = np.random.default_rng(0), []
    for i in range(40):
        params = {a.name: float(a.values[0] * (a.values[-1] / a.values[0]) ** rng.random()) if a.log
                  else float(rng.uniform(a.values[0], a.values[-1])) for a in TABLE.axes}
        drop = TABLE.baseline_retain - surface(params)[1]
        offset = float(rng.normal(0, 0.01))
        rows.append((f"t{i}", params, TABLE.baseline_retain - drop - offset))
        if EDGE_BAND[0] < drop <= EDGE_BAND[1]:
            expected.append(offset)
    for trial_id, params, retain in rows:
        results.write(TrialRow(trial_id, status="done", params=params, forget=TaskScore("f", 0.5, 0.01, 80),
                               retain=TaskScore("r", retain, 0.01, 80)))
    assert 3 <= len(expected) < 40
    assert drop_residuals(tmp_path, TABLE, scale) == pytest.approx(expected, abs=1e-12)
