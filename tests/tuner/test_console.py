"""The search's console lines: one line per finished trial (state, forget/retain ± se, Δ vs baseline, params),
one progress line (redrawn in place on a terminal, else at most once a minute), the world-build bar through both
pretraining stages."""

from __future__ import annotations

import io
from types import SimpleNamespace

import optuna
from ray.tune.experiment import Trial

from trainables.evaluation.result import TaskScore
from tuner.orchestration.cli import build_parser, validate
from tuner.orchestration.console import TABLE_LOG, SearchReporter, WorldBuildBar, finished_line
from tuner.orchestration.status_line import TTY_SECONDS, StatusLine, best_trial, progress_line
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID, TrialRow


def _score(acc: float) -> TaskScore:
    return TaskScore("t", acc, 0.03, 200)


def test_finished_lines(tmp_path):
    ctx = validate(build_parser().parse_args(["--preset", "miniworld-small", "--run-dir", str(tmp_path / "r")]))
    ctx.path.mkdir()
    table = ResultsTable(ctx.path)
    table.write(TrialRow(BASELINE_ID, "done", forget=_score(0.70), retain=_score(0.95)))
    table.write(TrialRow("a1", "done", params={"retain_coef": 7.27296, "remove_coef": 5.91}, forget=_score(0.30),
                         retain=_score(0.94)))
    table.write(TrialRow("b2", "failed", params={"retain_coef": 1.0}, error="RuntimeError: boom\nTraceback"))
    assert finished_line(ctx, "a1", "TERMINATED") == (
        "a1 done  forgets_uncertain  forget 30.0±3.0% (-40.0)  retain 94.0±3.0% (-1.0)  retain=7.27 remove=5.91")
    assert finished_line(ctx, "b2", "TERMINATED") == "b2 failed  RuntimeError: boom  retain=1"
    assert finished_line(ctx, "c3", "ERROR") == "c3 error  (no row in the results table)"


class Clock:
    """An injectable clock: ``tick(s)`` moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_formats_what_the_search_knows():
    boundary = {"ambiguous_share": 0.354, "recommended": "a1", "slices_pinned": 1, "slices": 3}
    assert progress_line(5, 2, 25, 192, 5, boundary, ("a1", 0.3), may_stop_early=True) == (
        "progress 5/25 done, 2 running  3m12s  ETA <=12m48s  ambiguous 35%  slices pinned 1/3  recommended a1 "
        "forget 30.0%")
    replicated = {**boundary, "forget": 0.545, "runs": 2}  # the point's runs' mean, not the first run's forget
    assert progress_line(5, 2, 25, 192, 5, replicated, ("a1", 0.3), may_stop_early=True).endswith(
        "recommended a1 forget 54.5% (2 runs)")
    no_feasible = {"ambiguous_share": 0.9, "recommended": None, "slices_pinned": None, "slices": None}
    assert progress_line(16, 1, 25, 4000, 16, no_feasible, None, may_stop_early=True) == (
        "progress 16/25 done, 1 running  1h06m  ETA <=37m30s  ambiguous 90%  no feasible trial yet")
    # TPE: no stopping rule; a resumed search's rate counts only the trials finished since it resumed
    assert progress_line(10, 2, 25, 60, 2, {}, ("b2", 0.412), may_stop_early=False) == (
        "progress 10/25 done, 2 running  1m00s  ETA 7m30s  best b2 forget 41.2%")
    assert progress_line(0, 2, 25, 5, 0, {}, None, may_stop_early=False) == "progress 0/25 done, 2 running  5s"


def test_best_trial_is_the_recommendation_else_the_lowest_harmless_forget(tmp_path):
    table = ResultsTable(tmp_path)
    table.write(TrialRow(BASELINE_ID, "done", forget=_score(0.70), retain=_score(0.95)))
    table.write(TrialRow("wreck", "done", forget=_score(0.10), retain=_score(0.50)))  # retain drop 45 points
    table.write(TrialRow("a1", "done", forget=_score(0.40), retain=_score(0.94)))
    table.write(TrialRow("b2", "done", forget=_score(0.30), retain=_score(0.935)))
    table.write(TrialRow("same", "done", forget=_score(0.69), retain=_score(0.95)))  # forgot nothing significant
    assert best_trial(tmp_path, 0.02, None) == ("b2", 0.30)
    assert best_trial(tmp_path, 0.02, "a1") == ("a1", 0.40)  # the stopping rule's recommendation
    assert best_trial(tmp_path, 0.001, None) is None


def test_status_line_is_printed_at_most_once_a_minute_off_a_terminal(monkeypatch):
    out, clock = io.StringIO(), Clock()
    monkeypatch.setattr("sys.stdout", out)
    status, shown = StatusLine(clock=clock), 0
    for second in range(600):  # ten minutes, asked every half second
        for _ in range(2):
            if status.due():
                status.show(f"at {second}")
                shown += 1
            clock.tick(0.5)
    status.print_above("a1 done")
    assert out.getvalue().splitlines()[-1] == "a1 done"
    assert shown == 9 == len(out.getvalue().splitlines()) - 1  # at 60 s, 120 s, ... 540 s
    assert out.getvalue().splitlines()[0] == "at 60"


def test_status_line_is_redrawn_in_place_on_a_terminal(monkeypatch):
    tty, clock = Tty(), Clock()
    monkeypatch.setattr("sys.stdout", tty)
    status = StatusLine(clock=clock)
    assert not status.due()
    clock.tick(TTY_SECONDS)
    assert status.due()
    status.show("progress 0/2")
    assert not status.due()
    status.print_above("a1 done")
    clock.tick(TTY_SECONDS)
    status.show("progress 1/2")
    status.close()
    assert tty.getvalue() == ("\r\033[Kprogress 0/2\r\033[Ka1 done\nprogress 0/2\r\033[Kprogress 1/2\n")


def test_a_25_trial_search_prints_a_line_per_trial_and_one_a_minute(tmp_path, monkeypatch):
    """The reporter as Tune drives it (``should_report`` after every loop step; here every 0.5 s), two trials at
    a time, each 40 s: 25 finished lines and the progress line at most once a minute; Tune's table only in
    the log (``logs/driver.log``, through Ray's logger)."""
    ctx = validate(build_parser().parse_args(["--num-samples", "25", "--run-dir", str(tmp_path / "r")]))
    ctx.path.mkdir()
    out, clock = io.StringIO(), Clock()
    monkeypatch.setattr("sys.stdout", out)
    logged = []
    monkeypatch.setattr(TABLE_LOG, "info", lambda fmt, table: logged.append(table))
    reporter = SearchReporter(ctx, metric_columns=["eval_forget_acc"], status=StatusLine(clock=clock))
    monkeypatch.setattr(reporter, "_progress_str", lambda trials, done, *info: "== Status ==")  # Tune's table
    trials = [SimpleNamespace(trial_id=f"t{i:02d}", status=Trial.PENDING) for i in range(25)]
    for step in range(2 * 13 * 40 + 2):  # 13 rounds of two 40-s trials
        clock.tick(0.5)
        running = step // 80 * 2
        for i, trial in enumerate(trials):
            trial.status = (Trial.TERMINATED if i < running else Trial.RUNNING if i < running + 2 else
                            Trial.PENDING)
        if reporter.should_report(trials, done=all(t.status == Trial.TERMINATED for t in trials)):
            reporter.report(trials, False)
        if all(t.status == Trial.TERMINATED for t in trials):
            break
    lines = out.getvalue().splitlines()
    finished = [line for line in lines if line.startswith("t")]
    progress = [line for line in lines if line.startswith("progress ")]
    assert len(finished) == 25 and len(lines) == len(finished) + len(progress)
    assert len(progress) == 8 <= (clock.now - 1000) / 60  # 520 s: at 60 s, 120 s, ..., 480 s
    assert progress[-1].startswith("progress 24/25 done, 1 running  8m00s  ETA <=")
    assert logged and set(logged) == {"== Status =="}  # Tune's own clock spaces them a minute apart


def test_world_build_bar_spans_both_stages(monkeypatch):
    class Bar:  # records what tqdm would draw (the tests run with TQDM_DISABLE=1)
        def __init__(self, total: int, **kwargs) -> None:
            self.total, self.n, self.postfix, self.closed = total, 0, [], False

        def update(self, k: int) -> None:
            self.n += k

        def set_postfix_str(self, text: str) -> None:
            self.postfix.append(text)

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr("tqdm.tqdm", Bar)
    world = WorldBuildBar(total=5)
    for stage, steps in (("stage 1", 2), ("stage 2", 3)):
        for step in range(1, steps + 1):
            world(stage, step, steps)
    assert (world.bar.n, world.bar.postfix, world.bar.closed) == (5, ["stage 1", "stage 2"], True)


def test_tune_slow_operation_warning_is_dropped_from_the_console_only(tmp_path, monkeypatch):
    """Tune's warn_if_slow fires on the GP fit in every searcher call: off the console, still in driver.log."""
    import logging
    import time

    from ray.tune.utils import util

    from tuner.orchestration.logs import quiet_libraries, route_driver_logs

    console = io.StringIO()
    handler = logging.StreamHandler(console)
    ray_logger = logging.getLogger("ray")
    monkeypatch.setattr(ray_logger, "handlers", [handler])
    monkeypatch.setattr(util, "START_OF_TIME", time.time() - 120)  # Tune stays quiet in its first minute
    quiet_libraries(verbose=False)
    route_driver_logs(tmp_path)
    with util.warn_if_slow("choose_trial_to_run", threshold=0.001):
        time.sleep(0.01)
    logging.getLogger("ray.tune").warning("a real warning")
    assert console.getvalue() == "a real warning\n"
    assert "`choose_trial_to_run` operation took" in (tmp_path / "logs" / "driver.log").read_text()


def test_the_boundary_searcher_leaves_each_decision_for_the_progress_line(tmp_path):
    """The search's boundary searcher, driven past the stopping rule's minimum: the progress line's part comes
    from the latest decision (ambiguous share, slices pinned, the recommended trial by its Tune id), and each
    told trial carries the "retain drop <= delta" constraint."""
    from tests.tuner.test_boundary_search import BASE, FAST, SPACE, SPEC, objective
    from tuner.boundary_search import BoundarySampler, BoundarySamplerConfig, StopRule
    from tuner.orchestration.samplers import RETAIN_CONSTRAINT
    from tuner.orchestration.searchers import ConstrainedBoundarySearch
    from tuner.orchestration.status_line import read_decision

    config = BoundarySamplerConfig(n_candidates=FAST.n_candidates, stop=StopRule(min_trials=10))
    searcher = ConstrainedBoundarySearch(space=SPACE, metric=["eval_forget_acc", "eval_retain_acc"],
                                         mode=["min", "max"], sampler=BoundarySampler(SPEC, config, seed=0),
                                         run_dir=tmp_path, baseline_retain=BASE, delta=SPEC.delta)
    for i in range(13):
        params = searcher.suggest(f"t{i}")
        if i == 5:  # decided before this suggestion, on the 5 trials told so far
            assert read_decision(tmp_path) == {"stop": False, "reason": "5 of at least 10 trials complete",
                                               "ambiguous_share": None, "p_feasible": None, "recommended": None,
                                               "slices_pinned": None, "slices": None, "forget": None, "runs": None,
                                               "trials": 5}
        forget, retain, fse, rse = objective(params)
        searcher.on_trial_complete(f"t{i}", {"eval_forget_acc": forget, "eval_retain_acc": retain,
                                             "eval_forget_stderr": fse, "eval_retain_stderr": rse})
    decision = read_decision(tmp_path)  # before the 13th suggestion, on 12 trials
    assert decision["trials"] == 12
    assert 0 <= decision["ambiguous_share"] <= 1 and decision["slices"] == 3  # low, middle, high beta_kl
    assert 0 <= decision["slices_pinned"] <= 3
    assert decision["recommended"] in {f"t{i}" for i in range(12)}
    assert f"the recommendation so far, trial {decision['recommended']} (" in decision["reason"]
    trials = searcher._ot_study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    feasible = {t.number for t in trials if BASE - t.values[1] <= SPEC.delta}
    assert len(trials) == 13 and 0 < len(feasible) < 13  # the sampler probes both sides of the boundary
    assert {t.number for t in trials if t.constraints[RETAIN_CONSTRAINT] <= 0} == feasible
    line = progress_line(12, 1, 60, 300, 12, decision, (decision["recommended"], 0.3), True)
    assert (f"ambiguous {decision['ambiguous_share']:.0%}  slices pinned {decision['slices_pinned']}/3  "
            f"recommended {decision['recommended']} forget {decision['forget']:.1%}") in line  # its runs' mean
