"""bench_overhead's phase tables from results rows (no search run: the rows are made up)."""

from __future__ import annotations

from tuner.bench_overhead import phase_table, search_table
from tuner.records.schema import TrialRow


def test_phase_table_means_per_trial_and_search_phases():
    first = TrialRow("t0", "done", train_seconds=3.0, phase_seconds={"worker_start": 2.0, "steps": 1.0})
    second = TrialRow("t1", "done", train_seconds=5.0, phase_seconds={"gap": 4.0, "worker_start": 4.0, "steps": 1.0})
    table = phase_table([first, second], [{"steps": 0.5}], [0.6])
    lines = table.splitlines()
    assert lines[2:5] == ["| gap (n=1) | 4.00 | – |", "| worker_start | 3.00 | – |", "| steps | 1.00 | 0.50 |"]
    assert "| **sum of phases** | 6.00 | 0.50 |" in lines and lines[-1].endswith("| 4.00 | 0.60 |")
    once = search_table({"ray_start": 5.0, "tune_fit": 20.0}, 30.0, [first, second], 1, 2.0)
    assert "| rest: python start, imports, validation, exit | 5.00 |" in once
    assert "| of tune_fit, outside every trial (Tune start, first launch, stop) | 8.00 |" in once
