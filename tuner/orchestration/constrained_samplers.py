"""Optuna samplers whose ``constraints_func`` sees the trial's objective values.

Optuna's ``tell`` calls ``sampler.after_trial`` (which evaluates ``constraints_func``) *before* it stores the
values, so a constraint on an objective - "retain drop <= delta" - found ``trial.values`` empty and called
every trial feasible. These subclasses hand ``constraints_func`` a copy of the trial with the values set.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import optuna


class _ValuesFirst:
    """Mixin: ``after_trial`` with the values on the trial that ``constraints_func`` gets."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: optuna.trial.TrialState,
                    values: Sequence[float] | None) -> None:
        if values is not None and trial.values is None:
            trial = copy.copy(trial)
            trial.values = list(values)
        super().after_trial(study, trial, state, values)


class TPESampler(_ValuesFirst, optuna.samplers.TPESampler):
    """``optuna.samplers.TPESampler`` whose constraints see the values."""


class NSGAIISampler(_ValuesFirst, optuna.samplers.NSGAIISampler):
    """``optuna.samplers.NSGAIISampler`` whose constraints see the values."""


class GPSampler(_ValuesFirst, optuna.samplers.GPSampler):
    """``optuna.samplers.GPSampler`` whose constraints see the values."""
