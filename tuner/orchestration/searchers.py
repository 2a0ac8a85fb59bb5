"""Tune's Optuna searchers as a search uses them: the constraint "retain drop <= delta" set on each trial before
Optuna is told, and (boundary sampler) each stopping-rule decision left for the console's progress line.

    ConstrainedOptunaSearch(metric=list(OBJECTIVES), mode=["min", "max"], sampler=make_sampler("tpe", ...),
                            baseline_retain=0.99, delta=0.02)

``OptunaSearch`` tells Optuna in ``on_trial_complete``; ``ResumableOptunaSearch`` calls ``_before_tell`` just
before, on a trial still open in the study, which is where Optuna's ``Trial.set_constraint`` belongs
(``tuner.orchestration.samplers.set_retain_constraint``). The retain accuracy is the objective at
``RETAIN_INDEX`` of the searcher's metrics. ``BoundaryOptunaSearch`` hands each decision of its stopping rule to
``_on_decision``; it goes to ``run_dir/boundary_status.json`` (``tuner.orchestration.status_line``).
"""

from __future__ import annotations

import math
from typing import Any

from search_spaces.facts import RETAIN_INDEX
from tuner.boundary_search import StopDecision
from tuner.boundary_search.searcher import BoundaryOptunaSearch, ResumableOptunaSearch
from tuner.orchestration.samplers import set_retain_constraint
from tuner.orchestration.status_line import write_decision


class RetainConstraint:
    """Mixin for a ``ResumableOptunaSearch``: a finished trial's retain score becomes its constraint."""

    def __init__(self, *args: Any, baseline_retain: float | None, delta: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._baseline_retain, self._delta = baseline_retain, delta

    def _before_tell(self, trial_id: str, result: dict[str, Any] | None) -> None:
        retain = (result or {}).get(self.metric[RETAIN_INDEX])
        if isinstance(retain, (int, float)) and math.isfinite(retain):  # else Optuna is told FAIL or PRUNED
            set_retain_constraint(self._ot_trials[trial_id], float(retain), self._baseline_retain, self._delta)
        super()._before_tell(trial_id, result)


class ConstrainedOptunaSearch(RetainConstraint, ResumableOptunaSearch):
    """TPE, NSGA-II or GP: the samplers read the constraint from the told trials."""


class ConstrainedBoundarySearch(RetainConstraint, BoundaryOptunaSearch):
    """The boundary sampler models the rule itself; the constraint makes ``study.best_trials`` feasible-only
    for Optuna's own tools on ``optuna.db``."""

    def _on_decision(self, decision: StopDecision) -> None:
        write_decision(self._run_dir, decision)
