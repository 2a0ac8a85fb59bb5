"""The trial drivers' shared clock file (when the last trial ended) is never read half-written."""

from __future__ import annotations

import threading
from pathlib import Path

from tuner.orchestration.trial import _mark_trial_end


def test_a_trial_starting_beside_one_that_ends_reads_a_whole_time(tmp_path: Path) -> None:
    """Two trials at once: one marks its end over and over while the other reads; every read is a number (with a
    plain ``write_text`` a reader saw '' and the trial failed: 'could not convert string to float')."""
    path = tmp_path / ".last_trial_end"
    _mark_trial_end(path)
    done, bad = threading.Event(), []

    def writer() -> None:
        for _ in range(3000):
            _mark_trial_end(path)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set():
        text = path.read_text()
        reads += 1
        try:
            float(text)
        except ValueError:
            bad.append(text)
    thread.join()
    assert reads > 10 and not bad, bad[:3]
    assert [p.name for p in tmp_path.iterdir()] == [".last_trial_end"]  # no temporary file left behind
