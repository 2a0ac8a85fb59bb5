"""The search's console lines: one line per finished trial (state, forget/retain ± se, Δ vs baseline, params),
live lines only on a terminal, the world-build bar through both pretraining stages."""

from __future__ import annotations

import io

from trainables.evaluation.result import TaskScore
from tuner.orchestration.cli import build_parser, validate
from tuner.orchestration.console import LiveLines, WorldBuildBar, finished_line
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


def test_live_lines_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    LiveLines().show(["  a1  step 1/8"])
    assert out.getvalue() == ""
    tty = Tty()
    monkeypatch.setattr("sys.stdout", tty)
    live = LiveLines()
    live.show(["  a1  step 1/8", "  b2  starting"])
    live.show(["  a1  step 2/8", "  b2  starting"])
    assert tty.getvalue() == "  a1  step 1/8\n  b2  starting\n\033[2F\033[J  a1  step 2/8\n  b2  starting\n"


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
