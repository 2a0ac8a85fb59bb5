"""The facts every part of a search shares, defined once: harmlessness, objectives, names.

    drop = retain_drop(baseline_retain, retain_acc)   # baseline - trial, an accuracy fraction
    feasible = drop <= delta                          # "harmless" on the point estimate; DEFAULT_DELTA = 0.02
    study_name("kl_boundary", "miniworld")            # "kl_boundary-miniworld": the Optuna study in optuna.db

Objectives are always (forget_acc ↓, retain_acc ↑) in this order: Optuna's ``trial.values``, the Tune
metrics the trial driver reports (``eval_<objective>``) and their lm-eval stderrs (``eval_<task>_stderr``,
kept on Optuna trials as the user attrs ``<task>_stderr``).

The model's P(harmless) = P(retain drop <= delta) is read against two fixed levels: ``AMBIGUOUS`` (the band
where the model has not decided; the report's dashed contours, the stopping rule's ambiguous share) and
``CONFIDENT`` (a point-feasible trial at least this likely to be harmless may be recommended; confirmed by
``CONFIRM_RUNS`` runs). A slice's boundary
is pinned when the model's interval there (its P = 0.9 to P = 0.1 crossings) spans at most ``PINNED_WIDTH`` decades
and trials reach within ``PINNED_WIDTH`` decades of both its ends (``tuner.analysis.slices.Slice.pinned``: the
report's slices and the stopping rule read it).
"""

from __future__ import annotations

DEFAULT_DELTA = 0.02  # largest harmless retain-accuracy drop (2 points)
DEFAULT_CONFIDENCE = 0.95  # one-sided z-tests on lm-eval stderrs (z = 1.645)
AMBIGUOUS = (0.1, 0.9)  # P(harmless) strictly inside this band: undecided
# World 0's table (calibration; realistic replay, stop-37 answer model, 20 seeds, face candidates; docs/benchmarks.md,
# "CONFIDENT 0.9, replicated contenders and face candidates (stop 38)"): the model's P is about calibrated (P 0.7-0.8:
# 79 % truly harmless, 0.8-0.9: 84 %, 0.9-0.95: 89 %) and the pick sits at the threshold: 0.7 stopped in 100 % of
# seeds, 70 % of picks truly harmless, regret 6.6; 0.9 in 85 %, 88 %, regret 8.2. On world 1 (held-out) 0.9 stopped in
# 45 % at a regret of 25 at 48 trials (0.7: 85 %, 6.3), as at stop 29: 0.7 is kept, and harmless picks stay below the
# 90 % asked
CONFIDENT = 0.7
# a point is confirmed once it has this many runs (its first trial and replicates with new training seeds): the
# stopping rule waits for its recommendation to be confirmed, and the search's answer prefers confirmed points. 3
# (stop 41, docs/benchmarks.md "How often P(harmless) at the answer is right"): on the synthetic calibration world
# stopped picks harmless 79 -> 94 % for fewer stops (95 -> 85 %); on held-out world 1 harmless 53 -> 38 %, 10 trials
# later; not adopted
CONFIRM_RUNS = 2
# calibrated with the stopping rule on world 0's dense table: with 0.5 (and max_ambiguous 0.2) the rule fired in 9
# of 10 replay seeds, each time with boundary error <= 0.22 decades
PINNED_WIDTH = 0.5

TASKS = ("forget", "retain")  # the two scored domains, in objective order
OBJECTIVES = tuple(f"{task}_acc" for task in TASKS)  # ("forget_acc", "retain_acc")
OBJECTIVE_MODES = {"forget_acc": "min", "retain_acc": "max"}
FORGET_INDEX, RETAIN_INDEX = 0, 1
EVAL_PREFIX = "eval_"  # the trial driver's final report: eval_forget_acc, eval_forget_stderr, ...
OBJECTIVE_METRICS = tuple(EVAL_PREFIX + name for name in OBJECTIVES)  # ("eval_forget_acc", "eval_retain_acc")
STDERR_METRICS = tuple(f"{EVAL_PREFIX}{task}_stderr" for task in TASKS)  # same order
STDERR_ATTRS = tuple(f"{task}_stderr" for task in TASKS)  # Optuna user attrs: the GPs' observation noise
# A replicate re-runs an earlier trial's coefficients with another training seed: the boundary sampler marks it with
# the Optuna user attrs REPLICATE_OF (the first run's trial number) and REPLICATE (k = 1, 2, ...). Which training seed
# a boundary-sampler trial trains with is the sampler's: it stores the offset as the user attr SEED_OFFSET (with fresh
# seeds, its trial number; else k for replicate k, none for a first run), the searcher passes it in the trial's Tune
# config under SEED_OFFSET, and the trial driver trains with ``seed + offset``.
REPLICATE, REPLICATE_OF, SEED_OFFSET = "replicate", "replicate_of", "seed_offset"
SEED_FIELD = "seed"  # the TrainConfig field SEED_OFFSET changes (the trial's row and MLflow run carry it)


def retain_drop(baseline_retain: float, retain_acc: float) -> float:
    """``baseline_retain - retain_acc``: how much retain accuracy a trial lost (a fraction; < 0 is a gain)."""
    return baseline_retain - retain_acc


def feasible(baseline_retain: float | None, retain_acc: float, delta: float) -> bool:
    """Retain drop <= delta on the point estimate (False without a baseline)."""
    return baseline_retain is not None and retain_drop(baseline_retain, retain_acc) <= delta


def study_name(space: str, preset: str) -> str:
    """The Optuna study of a search, in ``run_dir/optuna.db``."""
    return f"{space}-{preset}"
