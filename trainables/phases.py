"""Wall-clock phases of one run, summed per name, in the order they first ran.

    timer = PhaseTimer()
    with timer.phase("model_load"):
        model = load_base_model(cfg, device)
    timer.seconds                              # {"model_load": 1.23, ...}

A trial's ``phase_seconds`` (``tuner.records.schema.TrialRow``) joins the driver's phases (gap, trial_setup,
worker_start, teardown, results, mlflow) and the worker's (imports, model_load, lora_setup, data, first_step,
steps, report, checkpoint, eval_tasks, evaluation); ``python -m tuner.bench_overhead`` prints their means.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Named phases -> seconds (``time.perf_counter``); a phase entered twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(seconds, 0.0)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())
