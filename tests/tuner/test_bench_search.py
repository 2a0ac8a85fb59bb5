"""The replay benchmark's metrics on a synthetic table with a known boundary."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from tuner.bench_search import replay as replay_module
from tuner.bench_search.bench import _calibration_lines, compact, report
from tuner.bench_search.methods import Estimate
from tuner.bench_search.metrics import calibration, summarise, trials_to_target
from tuner.bench_search.replay import Trace, boundary_error, replay
from tuner.bench_search.synthetic import SyntheticWorld

WORLD = SyntheticWorld()
DELTA = WORLD.delta


def known_boundary(table) -> np.ndarray:
    """log10 remove* = log10 retain + log10 ratio*, clipped to the remove range; shape (retain, beta)."""
    cols = table.columns()
    x = np.log10(cols["retain_coef"]) + WORLD.log_ratio_star(cols["retain_coef"], cols["beta_kl"])
    return np.clip(x, np.log10(0.1), np.log10(30.0))


def oracle(shift: float = 0.0):
    """P(harmless) from the true (noise-free) retain drop, read ``shift`` decades further along remove."""
    def p(cols):
        remove = np.asarray(cols["remove_coef"]) / 10.0 ** shift
        return (WORLD.true_drop(cols["retain_coef"], remove, cols["beta_kl"]) <= DELTA).astype(float)
    return p


def test_table_boundary_is_the_known_boundary():
    table = WORLD.table(n_retain=5, n_remove=41, n_beta=3, seed=None)
    assert np.abs(table.boundary(DELTA) - known_boundary(table)).max() < 0.02


def test_boundary_error_of_exact_shifted_and_missing_models():
    table = WORLD.table(n_retain=5, n_remove=41, n_beta=3, seed=None)
    truth = table.boundary(DELTA)
    assert boundary_error(table, Estimate(oracle(), None), truth) < 0.03
    shifted = boundary_error(table, Estimate(oracle(0.3), None), truth)
    unclipped = (truth + 0.3 < np.log10(30.0))
    expected = np.mean(np.where(unclipped, 0.3, np.log10(30.0) - truth))
    assert shifted == pytest.approx(expected, abs=0.03) and shifted > 0.15
    none = boundary_error(table, Estimate(None, None), truth)
    assert none == pytest.approx(np.mean(np.log10(30.0) - truth), abs=1e-9)


def test_trials_to_target_and_summary():
    hit = Trace("m", 0, 1, error=[0.5, 0.19, 0.1, 0.1], regret=[0.0, 5.0, 2.0, 1.0], feasible=[True, True, True, False])
    late = Trace("m", 1, 1, error=[0.5, 0.3, 0.3, 0.15], regret=[0.0, 0.0, 0.0, 3.0], feasible=[True] * 4, stopped_at=2)
    never = Trace("m", 2, 1, error=[0.5] * 4, regret=[0.0] * 4, feasible=[True] * 4)
    assert [trials_to_target(t) for t in (hit, late, never)] == [3, 4, math.inf]
    s = summarise([hit, late, never], budgets=(2, 4))
    assert s["median_trials_to_target"] == 4 and s["p90_trials_to_target"] is None
    assert s["reached_rate"] == pytest.approx(2 / 3)
    assert s["median_trials_to_boundary"] == 4  # error <= 0.2 alone: n = 2, 4, never
    assert s["boundary_error_at"] == {"2": 0.3, "4": 0.15}
    assert s["feasible_rate_at"]["4"] == pytest.approx(2 / 3)
    assert s["median_stop_trial"] == 2 and s["target_met_at_stop_rate"] == 0.0


@pytest.mark.parametrize("max_concurrent", [1, 4])
def test_replay_keeps_max_concurrent_trials_pending(monkeypatch, max_concurrent):
    running = []

    class Spy(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial):
            running.append(len(study.get_trials(states=(optuna.trial.TrialState.RUNNING,))))

    monkeypatch.setattr(replay_module, "make", lambda *a: Spy(seed=0))
    table = WORLD.table()
    trace = replay("random", table, seed=0, max_concurrent=max_concurrent, max_trials=12, delta=DELTA)
    assert len(running) == 12 and max(running) == max_concurrent
    assert len(trace.error) == len(trace.regret) == len(trace.feasible) == 12


def test_replay_of_todays_method_and_the_json_report():
    table = WORLD.table()
    traces = {m: [replay(m, table, seed=s, max_concurrent=2, max_trials=12, delta=DELTA) for s in (0, 1)]
              for m in ("random", "tpe")}
    for t in traces["tpe"]:
        assert all(np.isfinite(t.error)) and all(e >= 0 for e in t.error)
        assert all(r >= -1e-9 for r, ok in zip(t.regret, t.feasible, strict=True) if ok)  # nothing beats the best
    out = report(table, traces, (6, 12), DELTA)
    assert out["methods"]["grid"]["grid_size"] == table.size == 7 * 7 * 4
    assert set(out["methods"]["tpe"]) >= {"median_trials_to_target", "p90_trials_to_target", "boundary_error_at",
                                          "regret_at", "feasible_rate_at", "grid_size"}


def test_replay_scores_every_method_through_the_shared_estimator_too():
    """The shared estimator is the boundary model on the method's trials: for the boundary sampler it is its own
    estimate, for TPE a second reading of the same trials."""
    table = WORLD.table(seed=None)
    own = replay("boundary", table, seed=0, max_concurrent=1, max_trials=10, delta=DELTA)
    np.testing.assert_equal([own.shared_error, own.shared_regret, own.shared_feasible],
                            [own.error, own.regret, own.feasible])  # NaN regret (no pick yet) equals NaN
    # its P(harmless) at its recommendation, where it has one (what p_calibration reads)
    assert len(own.p_feasible) == 10 and np.array_equal(np.isnan(own.p_feasible), np.isnan(own.regret))
    assert all(0 <= p <= 1 for p in own.p_feasible if not np.isnan(p))
    tpe = replay("tpe", table, seed=0, max_concurrent=1, max_trials=10, delta=DELTA)
    assert len(tpe.shared_error) == 10 and tpe.shared_error != tpe.error
    out = report(table, {"tpe": [tpe]}, (5, 10), DELTA)
    assert out["methods"]["tpe"]["shared_estimator"]["boundary_error_at"]["10"] == pytest.approx(tpe.shared_error[-1])
    assert out["answers"]["snap"] is False
    limit = out["table"]["regret_given_runs"]  # realistic answers: the noise limit at the edge, by runs at the pick
    known = [v for v in limit.values() if v is not None]  # None: with that few runs no pick is 90 % sure
    assert list(limit) == ["2", "4", "8", "16"] and len(known) >= 3 and known == sorted(known, reverse=True)
    assert "regret of a pick harmless in 90% of seeds" in compact(out)
    assert "regret_given_runs" not in report(table, {"tpe": [tpe]}, (5, 10), DELTA, snap=True)["table"]


def test_replay_builds_tpe_with_the_startup_of_a_search_as_long_as_the_replay(monkeypatch):
    built = []
    real_make = replay_module.make

    def spy(*args):
        built.append(real_make(*args))
        return built[-1]

    monkeypatch.setattr(replay_module, "make", spy)
    replay("tpe", WORLD.table(), seed=0, max_concurrent=1, max_trials=30, delta=DELTA)
    assert built[0]._n_startup_trials == max(4, 30 // 3)


def test_the_synthetic_worlds_have_the_cases_they_are_named_for():
    """Noise-free truths: the boundary moved up / down by more than half a decade on average, no harmless
    forgetting (the best harmless forget stays within 5 points of the baseline), no column that crosses delta,
    and a retain drop that falls again somewhere along remove_coef."""
    from tuner.bench_search.synthetic import WORLDS

    tables = {name: world.table(7, 12, 4, seed=None) for name, world in WORLDS.items()}
    mean = {name: float(t.boundary(DELTA).mean()) for name, t in tables.items()}
    top = np.log10(tables["default"].axes[1].high)
    assert mean["boundary-high"] > mean["default"] + 0.5 and mean["boundary-low"] < mean["default"] - 0.5
    assert tables["no-harmless"].best_feasible_forget(DELTA) > tables["no-harmless"].baseline_forget - 0.05
    assert tables["default"].best_feasible_forget(DELTA) < tables["default"].baseline_forget - 0.5
    assert np.allclose(tables["no-damage"].boundary(DELTA), top)
    for name, t in tables.items():
        drop = t.baseline_retain - t.retain
        falls = bool((np.diff(drop, axis=1) < -1e-4).any())
        assert falls == (name == "dip"), name
    assert (tables["dip"].baseline_retain - tables["dip"].retain).max() > DELTA


def test_the_summary_reads_each_seed_at_its_own_stop():
    def trace(seed: int, stop: int | None, regret: list[float]) -> Trace:
        n = len(regret)
        return Trace("boundary", seed, 1, error=[0.1 * (i + 1) for i in range(n)], regret=regret,
                     feasible=[i % 2 == 0 for i in range(n)], p_feasible=[0.8, 0.9, float("nan")][:n], stopped_at=stop)

    runs = [trace(0, 2, [9.0, 4.0, 1.0]), trace(1, 3, [9.0, float("nan"), 2.0]), trace(2, None, [5.0, 5.0, 5.0])]
    out = summarise(runs, (3,))
    assert out["stopped_rate"] == pytest.approx(2 / 3)
    assert out["error_at_stop"] == pytest.approx(0.25) and out["regret_at_stop"] == pytest.approx(3.0)
    assert out["feasible_at_stop_rate"] == pytest.approx(0.5)  # seed 0 stopped on an infeasible pick, seed 1 not
    assert out["per_seed_at_stop"] == [
        {"seed": 0, "trials": 2, "error": pytest.approx(0.2), "regret": 4.0, "feasible": False, "p_feasible": 0.9},
        {"seed": 1, "trials": 3, "error": pytest.approx(0.3), "regret": 2.0, "feasible": True, "p_feasible": None}]
    assert out["per_seed_at_end"] == [  # what a real search is placed among (tuner.bench_search.real): + the cap
        *({**r, "stopped": True} for r in out["per_seed_at_stop"]),
        {"seed": 2, "trials": 3, "error": pytest.approx(0.3), "regret": 5.0, "feasible": True, "p_feasible": None,
         "stopped": False}]


def test_calibration_holds_each_p_band_against_the_truth():
    """``p_calibration``: per band of the method's P(harmless) at its recommendation, how many (seed, trial count >=
    first) pairs fell in it and the share of them truly harmless; a count without a recommendation (NaN) is in none."""
    def trace(seed: int, feasible: list[bool], p: list[float]) -> Trace:
        return Trace("boundary", seed, 1, error=[0.1] * 4, regret=[1.0] * 4, feasible=feasible, p_feasible=p)

    runs = [trace(0, [True, False, True, True], [0.75, 0.75, 0.96, float("nan")]),
            trace(1, [False, False, True, False], [0.3, 0.72, 1.0, 0.99])]
    bands = {tuple(b["p"]): (b["n"], b["harmless_rate"]) for b in calibration(runs, first=2)}
    assert bands[(0.7, 0.8)] == (2, 0.0)  # the first trial count (P 0.75, harmless; P 0.3) is not read
    assert bands[(0.95, 1.0)] == (3, pytest.approx(2 / 3))  # 1.0 falls in the last, closed band
    assert bands[(0.0, 0.5)] == bands[(0.5, 0.7)] == (0, None) and sum(n for n, _ in bands.values()) == 5
    assert summarise(runs, (3,))["p_calibration"] == calibration(runs)  # from trial 16 on: every band empty
    printed = _calibration_lines({"methods": {"boundary": {"p_calibration": calibration(runs, first=2)}}})
    assert printed.endswith("boundary: 0.7-0.8 0% (2), 0.95-1 67% (3)")


def test_calibration_and_held_out_tables_never_share_a_table():
    """The split: the constants are tuned on ``--tables calibration``; no held-out table is among them, and no
    held-out mini-world table is stored where a calibration table is (another world key or grid hash)."""
    from trainables.train import parse_overrides
    from tuner.bench_search.build_table import table_dir
    from tuner.bench_search.tables import TABLES, select

    calibration, held_out = select(["calibration"]), select(["held-out"])
    assert set(calibration) == {"world0", "synthetic"} and not set(calibration) & set(held_out)
    assert {"world1", "world2", "world0-long", "no-harmless", "dip"} <= set(held_out)
    assert set(calibration) | set(held_out) == set(TABLES)

    def where(spec) -> str:
        if spec.synthetic:
            return f"synthetic:{spec.synthetic}"
        return str(table_dir(spec.preset, spec.grid, parse_overrides(list(spec.overrides))))

    assert not {where(t) for t in calibration.values()} & {where(t) for t in held_out.values()}
    with pytest.raises(ValueError, match="unknown table world9"):
        select(["world9"])
