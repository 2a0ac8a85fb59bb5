"""PhaseTimer: named phases in the order they first ran, repeated phases summed, time spent inside counted."""

from __future__ import annotations

import time

import pytest

from trainables.phases import PhaseTimer


def test_phases_in_order_summed_and_counted_on_error():
    timer = PhaseTimer()
    with timer.phase("load"):
        time.sleep(0.02)
    with timer.phase("steps"):
        pass
    with pytest.raises(RuntimeError), timer.phase("load"):
        time.sleep(0.01)
        raise RuntimeError
    timer.add("gap", -1.0)  # a clock step backwards is never a negative phase
    assert list(timer.seconds) == ["load", "steps", "gap"]
    assert timer.seconds["load"] >= 0.03 and 0 <= timer.seconds["steps"] < 0.01 and timer.seconds["gap"] == 0
    assert timer.total == sum(timer.seconds.values())
