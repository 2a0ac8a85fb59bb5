"""Training-seed landscapes: a table built with several training seeds is their mean (the truth); a replay answers
each trial from the landscape of the training seed the sampler gave it (a Gaussian draw over the seed tables, or
one seed's table), so the seed shifts the whole landscape a run lives in, as it does in a real search."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest

from search_spaces.facts import SEED_OFFSET
from tuner.bench_search.answers import AnswerModel, RealisticAnswers
from tuner.bench_search.replay import replay
from tuner.bench_search.synthetic import SyntheticWorld
from tuner.bench_search.table import Table

WORLD = SyntheticWorld()
SHIFTS = (-0.15, 0.0, 0.1)  # each training seed moves the boundary by this many decades
SEEDS = [dataclasses.replace(WORLD, onset=WORLD.onset + d).table(seed=None) for d in SHIFTS]
MEAN = Table.mean_of(SEEDS)
# each training seed answers from one seed's table, interpolated linearly (so the mean of the seeds' answers is the
# mean table's answer between grid points too)
QUIET = AnswerModel(eval_noise="none", seed_noise="tables", drop_scale=None)
EDGE = {"retain_coef": 3.0, "remove_coef": 1.2, "beta_kl": 0.5}  # where the seeds' retain drops differ most


def test_the_mean_table_is_the_per_point_mean_and_keeps_its_seeds_through_json():
    for name in ("forget", "retain", "forget_se", "retain_se"):
        assert np.allclose(getattr(MEAN, name), np.mean([getattr(t, name) for t in SEEDS], axis=0))
    again = Table.from_dict(MEAN.to_dict())
    assert len(again.seeds) == 3 and np.array_equal(again.seeds[2].retain, SEEDS[2].retain)
    assert np.array_equal(again.retain, MEAN.retain) and again.key == MEAN.key
    other = WORLD.table(3, 3, 2, seed=None)
    with pytest.raises(ValueError, match="another grid"):
        Table.mean_of([SEEDS[0], other])


@pytest.mark.parametrize("seed", [0, 1, 2, 4])
def test_with_tables_a_replay_answers_seed_offset_k_from_the_kth_next_seeds_table(seed):
    answers = RealisticAnswers(MEAN, QUIET, seed=seed)
    for k in range(4):
        table = SEEDS[(seed + k) % 3]
        for params in (EDGE, {a.name: a.values[1] for a in table.axes}):
            a = answers.answer(params, seed_offset=k)
            assert (a.forget, a.retain) == pytest.approx(RealisticAnswers(table, QUIET, 0).truth(params), abs=1e-12)
    assert answers.truth(EDGE) == pytest.approx(tuple(np.mean([RealisticAnswers(t, QUIET, 0).truth(EDGE)
                                                               for t in SEEDS], axis=0)))
    assert answers.boundary(WORLD.delta) == pytest.approx(MEAN.boundary(WORLD.delta))


@pytest.mark.parametrize("seed_noise, ddof", [("draws", 1), ("tables", 0)])
def test_answers_over_replay_seeds_have_the_stated_sd(seed_noise, ddof):
    """Across replay seeds (each its own landscape plus binomial eval noise) the answers' sd at the edge is the
    stated one: the seed tables' sd (draws: the sample sd; tables: the three tables' population sd) and the eval
    variance, within 5 %."""
    model = AnswerModel(seed_noise=seed_noise, drop_scale=QUIET.drop_scale)
    draws = np.array([[a.forget, a.retain] for a in (RealisticAnswers(MEAN, model, s).answer(EDGE)
                                                     for s in range(6000))])
    stated = np.array(RealisticAnswers(MEAN, model, 0).answer_sd(EDGE))
    seeds_sd = np.std([RealisticAnswers(t, QUIET, 0).truth(EDGE) for t in SEEDS], axis=0, ddof=ddof)
    assert seeds_sd[1] > 0.02  # the seeds disagree here, by more than the eval noise
    assert np.all(stated > seeds_sd)
    assert draws.std(axis=0) == pytest.approx(stated, rel=0.05)


def test_a_drawn_landscape_is_the_mean_plus_a_gaussian_mix_of_the_seeds_deviations():
    """``draws``: seed offset t of replay seed s answers mean + z @ (seed tables - mean) / sqrt(m - 1) with
    z = N(0, I) from default_rng([s, t]), the same landscape at every point for one (s, t), another for another t;
    over many draws the landscapes average to the truth."""
    model = dataclasses.replace(QUIET, seed_noise="draws")
    answers = RealisticAnswers(MEAN, model, seed=3)
    each = np.array([RealisticAnswers(t, QUIET, 0).truth(EDGE) for t in SEEDS])
    for t in (0, 5):
        z = np.random.default_rng([3, t]).standard_normal(3) / np.sqrt(2)
        a = answers.answer(EDGE, seed_offset=t)
        assert (a.forget, a.retain) == pytest.approx(tuple(each.mean(axis=0) + z @ (each - each.mean(axis=0))))
    assert answers.answer(EDGE, 0) == answers.answer(EDGE, 0) != answers.answer(EDGE, 1)
    mean = np.mean([[a.forget, a.retain] for a in (answers.answer(EDGE, t) for t in range(4000))], axis=0)
    assert mean == pytest.approx(answers.truth(EDGE), abs=0.003)


def test_a_one_seed_table_or_another_seed_noise_keeps_the_pooled_seed_sd():
    model = AnswerModel(eval_noise="none", seed_sd_forget=0.03, seed_sd_retain=0.02)
    for table, m in ((SEEDS[0], model), (MEAN, dataclasses.replace(model, seed_noise="constant"))):
        answers = RealisticAnswers(table, m, seed=0)
        assert not answers.seed_surfaces
        assert answers.answer_sd(EDGE) == pytest.approx((0.03, 0.02))


def test_the_replay_answers_each_trial_from_its_training_seeds_table(monkeypatch):
    """Every trial is told the values of the table of the training seed the sampler gave it (user attr
    SEED_OFFSET = its trial number: the (seed + offset)-th table)."""
    told = []
    real_tell = optuna.Study.tell

    def spy(study, trial, values=None, **kw):
        k = int(study.get_trials(deepcopy=False)[trial.number].user_attrs.get(SEED_OFFSET, 0))
        told.append((dict(trial.params), k, tuple(values)))
        return real_tell(study, trial, values, **kw)

    monkeypatch.setattr(optuna.Study, "tell", spy)
    replay("boundary", MEAN, seed=1, max_concurrent=1, max_trials=30, delta=WORLD.delta, model=QUIET)
    assert [k for _, k, _ in told] == list(range(30))
    for params, k, values in told:
        assert values == pytest.approx(RealisticAnswers(SEEDS[(1 + k) % 3], QUIET, 0).truth(params), abs=1e-12)


def test_real_trials_are_checked_against_their_own_training_seeds_table(tmp_path):
    """``drop_residuals`` with seed tables: a first run (the run's training seed) and a replicate (its row's seed)
    against their own seed's table; a trial of a seed the table lacks is left out."""
    import json

    from trainables.evaluation.result import TaskScore
    from tuner.bench_search.real import drop_residuals
    from tuner.bench_search.surface import Surface
    from tuner.records.results import ResultsTable
    from tuner.records.schema import BASELINE_ID, TrialRow

    (tmp_path / "run_config.json").write_text(json.dumps({"train_config": {"seed": 1}}))
    near = {"retain_coef": 3.0, "remove_coef": 1.0, "beta_kl": 0.5}
    drops = {s: MEAN.baseline_retain - Surface(t)(near)[1] for s, t in enumerate(SEEDS)}
    assert all(0.005 < d <= 0.10 for d in drops.values())  # inside the edge band for every seed
    rows = [(BASELINE_ID, {}, MEAN.baseline_retain), ("first", near, 0.9), ("rep", {**near, "seed": 2}, 0.91),
            ("other", {**near, "seed": 9}, 0.5)]
    results = ResultsTable(tmp_path)
    for trial_id, params, retain in rows:
        results.write(TrialRow(trial_id, status="done", params=params, forget=TaskScore("f", 0.5, 0.01, 80),
                               retain=TaskScore("r", retain, 0.01, 80)))
    got = drop_residuals(tmp_path, MEAN, seed_tables=dict(enumerate(SEEDS)))
    base = MEAN.baseline_retain
    assert got == pytest.approx([base - 0.9 - drops[1], base - 0.91 - drops[2]])


def test_the_seed_tables_summary_pools_the_seed_sd_and_places_each_seeds_boundary():
    from tuner.bench_search.seed_variance import table_summary

    text = table_summary(MEAN, WORLD.delta)
    sd_all = 100 * np.sqrt(np.mean(np.var([t.forget for t in SEEDS], axis=0, ddof=1)))
    assert f"| all | {MEAN.size} | {sd_all:.2f} |" in text
    shifts = [float(line.split("|")[2].split("/")[0]) for line in text.splitlines() if line.startswith("| 0 |")
              or line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert shifts[0] < 0 < shifts[2]  # onset -0.15 / +0.1 decades: its boundary below / above the mean's


def test_real_rejects_a_replay_without_every_seeds_end(tmp_path, capsys):
    import json

    from tuner.bench_search.real import main

    (tmp_path / "optuna.db").write_text("")
    old = tmp_path / "bench_search.json"
    old.write_text(json.dumps({"answers": {}, "methods": {"boundary@2": {"per_seed_at_stop": []}}}))
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--table", "world1", "--replay", str(old)])
    assert "has no per_seed_at_end" in capsys.readouterr().err


def test_draws_restore_between_grid_points_the_seed_variance_interpolation_smooths_away():
    """Seed tables whose forget deviations vary from point to point: at a cell's centre, interpolating them averages
    the deviations away; ``restore_seed_var`` draws the lost variance afresh, so the answers' sd there is the seed
    tables' variance interpolated (the stated sd), and at a grid point nothing is added."""
    rng = np.random.default_rng(0)
    rough = [dataclasses.replace(t, forget=np.clip(t.forget + rng.normal(0, 0.08, t.forget.shape), 0, 1))
             for t in SEEDS]
    mean = Table.mean_of(rough)
    axes = mean.axes
    centre = {a.name: float(10 ** a.coord(a.values[2:4]).mean() if a.log else np.mean(a.values[1:3])) for a in axes}
    grid_point = {a.name: a.values[2] for a in axes}
    restored, smoothed = (AnswerModel(eval_noise="none", restore_seed_var=r) for r in (True, False))
    answers = RealisticAnswers(mean, restored, 0)
    assert np.array_equal(answers.smoothed_seed_sd(grid_point), [0.0, 0.0])
    lost = answers.smoothed_seed_sd(centre)
    assert lost[0] > 0.03 and lost[1] == 0.0  # forget's lost variance is drawn again, retain's is left alone
    sd = {m: np.std([RealisticAnswers(mean, m, s).answer(centre, seed_offset=1).forget for s in range(4000)], ddof=1)
          for m in (restored, smoothed)}
    assert sd[restored] == pytest.approx(answers.answer_sd(centre)[0], rel=0.05)
    assert sd[restored] > 1.5 * sd[smoothed]
    assert sd[smoothed] == pytest.approx(RealisticAnswers(mean, smoothed, 0).answer_sd(centre)[0], rel=0.05)
