"""The results table: last row per trial wins, baseline first, mirrors re-rendered, JSON round-trip."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import time

from trainables.evaluation.result import TaskScore
from tuner.records.results import ResultsTable
from tuner.records.schema import TrialRow


def _score(task, acc):
    return TaskScore(task=task, acc=acc, stderr=0.05, n=80, version="1")


def test_rows_last_wins_and_baseline_first(tmp_path):
    table = ResultsTable(tmp_path)
    table.write(TrialRow("t1", "queued", params={"retain_coef": 1.0, "remove_coef": 3.0}))
    table.write(TrialRow("baseline", "done", forget=_score("bio", 0.9), retain=_score("stem", 1.0)))
    table.write(TrialRow("t1", "done", params={"retain_coef": 1.0, "remove_coef": 3.0},
                         train_metrics={"cb_loss": 0.2}, forget=_score("bio", 0.3), retain=_score("stem", 0.95),
                         phase_seconds={"model_load": 1.5, "steps": 2.0}))
    rows = table.rows()
    assert [r.trial_id for r in rows] == ["baseline", "t1"] and rows[1].status == "done"
    assert len(table.jsonl.read_text().splitlines()) == 3
    parsed = list(csv.DictReader(io.StringIO(table.csv.read_text())))
    assert abs(float(parsed[1]["forget_delta"]) - (0.3 - 0.9)) < 1e-12
    assert (parsed[0]["time_model_load"], parsed[1]["time_model_load"], parsed[1]["time_steps"]) == ("", "1.5", "2.0")
    md = table.md.read_text()
    assert "## Training metrics (final step)" in md and "| baseline |" in md and "-60.00" in md
    assert TrialRow.from_dict(json.loads(table.jsonl.read_text().splitlines()[-1])) == rows[1]
    older = {k: v for k, v in rows[1].to_dict().items() if k != "phase_seconds"}  # a row from before the phases
    assert TrialRow.from_dict(older).phase_seconds == {}


def _writer(run_dir, i, barrier):
    barrier.wait()  # every process starts its write at the same moment
    ResultsTable(run_dir).write(TrialRow(f"t{i}", "done", params={"i": i}))


def test_concurrent_writers_lose_nothing(tmp_path, monkeypatch):
    """8 processes write at once, each slowed for 0.3 s between reading the table and replacing it: only the
    lock keeps them from writing back what they read, without each other's rows."""
    to_dict = TrialRow.to_dict

    def slow_to_dict(row):
        time.sleep(0.3)
        return to_dict(row)

    monkeypatch.setattr(TrialRow, "to_dict", slow_to_dict)  # forked writers inherit it
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_writer, args=(tmp_path, i, barrier)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0] * 8
    assert sorted(r.trial_id for r in ResultsTable(tmp_path).rows()) == sorted(f"t{i}" for i in range(8))
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_reader_never_sees_a_half_written_file(tmp_path):
    """Each file is replaced whole: a reader that opened it before a write reads the complete old version
    (a file rewritten in place would change, or come up empty, under it), and the new version is complete."""
    table = ResultsTable(tmp_path)
    table.write(TrialRow("t1", "queued", params={"retain_coef": 1.0}))
    paths = (table.jsonl, table.csv, table.md)
    old = {path: path.read_text() for path in paths}
    readers = {path: open(path) for path in paths}
    try:
        table.write(TrialRow("t2", "queued", params={"retain_coef": 2.0}))
        for path, reader in readers.items():
            assert reader.read() == old[path], path.name
    finally:
        for reader in readers.values():
            reader.close()
    assert [r.trial_id for r in table.rows()] == ["t1", "t2"] and "| t2 |" in table.md.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_advance_moves_a_live_status_forward_and_never_back_from_done(tmp_path):
    table = ResultsTable(tmp_path)
    table.write(TrialRow("t1", status="queued", mlflow_run_id="r1"))
    live = ("queued", "training")
    assert table.advance("t1", "training", only_from=live).status == "training"
    assert table.advance("t1", "evaluating", only_from=live).status == "evaluating"
    assert table.advance("t1", "training", only_from=live).status == "evaluating"  # a late report
    table.write(TrialRow("t1", status="done", mlflow_run_id="r1"))
    lines = table.jsonl.read_text().count("\n")
    assert table.advance("t1", "evaluating", only_from=live).status == "done" and table.get("t1").status == "done"
    assert table.jsonl.read_text().count("\n") == lines  # nothing appended
    assert table.advance("nope", "training", only_from=live) is None
