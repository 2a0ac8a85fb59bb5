"""Ray Tune's ``OptunaSearch``, resumable after a killed driver, and with what the boundary sampler needs.

``ResumableOptunaSearch`` (every sampled space): Tune saves the searcher at most every 10 s, the Optuna study
(``optuna.db``) at once. After a killed driver, ``restore`` reconciles them:

* a study trial still RUNNING that the saved searcher does not know was lost with the driver: FAIL
  (otherwise the boundary sampler would keep it as a pending point forever);
* a trial that finished in the study after the save is re-run by Tune (from its Train checkpoint); its
  second result is not told again (Optuna refuses to update a finished trial).

A trial whose final result has no finite objective values (the trial driver's report of a failed, diverged
or unscored trial: ``{"failed": 1, "diverged": 0}``), or that Tune ended with an error, is told to Optuna as
FAIL with the user attr ``failure`` = ``failed`` | ``diverged`` | ``error`` | ``unscored``: never as values,
so no sampler models it (Ray's own ``OptunaSearch`` tells a multi-objective result with missing metrics as
COMPLETE, which Optuna refuses, leaving the trial RUNNING).

``BoundaryOptunaSearch`` adds:

* each completed trial's lm-eval stderrs (``eval_forget_stderr`` / ``eval_retain_stderr`` in its final
  report) become Optuna user attrs, the GPs' observation noise;
* before each new trial it asks the stopping rule; once the boundary is pinned it returns
  ``Searcher.FINISHED`` (running trials finish, no new ones start) and writes ``run_dir/stop.json``;
* a trial the sampler gave a training seed offset (user attr SEED_OFFSET) gets ``SEED_OFFSET: offset`` in its
  Tune config, which the trial driver turns into training seed ``seed + offset``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search_spaces.facts import SEED_OFFSET, STDERR_ATTRS, STDERR_METRICS
from tuner.boundary_search.sampler import BoundarySampler
from tuner.boundary_search.stopping import STOP_FILE, StopDecision
from tuner.records.results import atomic_write

FAILURE_ATTR = "failure"  # user attr of a trial told FAIL: why it has no values


def failure(result: dict[str, Any] | None, error: bool, metrics: str | list[str]) -> str | None:
    """Why a trial's final result cannot be told as values (None when it can)."""
    values = [(result or {}).get(m) for m in ([metrics] if isinstance(metrics, str) else metrics)]
    if not error and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    result = result or {}
    return ("failed" if result.get("failed") else "diverged" if result.get("diverged") else
            "error" if error else "unscored")


class ResumableOptunaSearch(OptunaSearch):
    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        known = {t.number for t in self._ot_trials.values()}
        for trial in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number not in known:
                self._ot_study.tell(trial.number, state=TrialState.FAIL)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._ot_trials:
            number = self._ot_trials[trial_id].number
            if self._ot_study.get_trials(deepcopy=False)[number].state.is_finished():
                self._ot_trials.pop(trial_id)
                return
            reason = failure(result, error, self.metric)
            if reason is not None:
                self._ot_trials[trial_id].set_user_attr(FAILURE_ATTR, reason)
                self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.FAIL)
                self._completed_trials.add(trial_id)
                return
            self._before_tell(trial_id, result)
        super().on_trial_complete(trial_id, result=result, error=error)

    def _before_tell(self, trial_id: str, result: dict[str, Any] | None) -> None:
        """What a subclass records on a trial that is still open in the study, before Optuna is told."""


class BoundaryOptunaSearch(ResumableOptunaSearch):
    def __init__(self, *args: Any, run_dir: str | Path, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._run_dir = str(run_dir)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        sampler = self._sampler
        if trial_id not in self._ot_trials and isinstance(sampler, BoundarySampler) and self._ot_study is not None:
            ids = {t.number: tid for tid, t in self._ot_trials.items()}
            decision = sampler.stop_decision(self._ot_study, ids)
            self._on_decision(decision)
            if decision.stop:
                fired = {k: getattr(decision, k) for k in ("reason", "ambiguous_share", "p_feasible", "trials",
                                                             "recommended")}
                atomic_write(Path(self._run_dir) / STOP_FILE, json.dumps(fired))
                return Searcher.FINISHED
        config = super().suggest(trial_id)
        if not isinstance(config, dict):
            return config
        # the sampler set the attr in storage while Optuna's ask ran; the Trial object's own copy predates it
        number = self._ot_trials[trial_id].number
        offset = self._ot_study.get_trials(deepcopy=False)[number].user_attrs.get(SEED_OFFSET)
        if offset:
            config[SEED_OFFSET] = int(offset)
        return config

    def _on_decision(self, decision: StopDecision) -> None:
        """What a subclass does with each stopping-rule decision (the console's progress line)."""

    def _before_tell(self, trial_id: str, result: dict[str, Any] | None) -> None:
        for attr, key in zip(STDERR_ATTRS, STDERR_METRICS, strict=True):
            if result and isinstance(result.get(key), (int, float)):
                self._ot_trials[trial_id].set_user_attr(attr, float(result[key]))
