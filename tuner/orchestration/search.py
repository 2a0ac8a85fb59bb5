"""Ray Tune wiring: the trial driver, the searcher, and restore.

Sampled spaces use ``OptunaSearch`` (the boundary sampler with its stopping rule, or seeded TPE, NSGA-II,
GP; ``tuner.orchestration.samplers``) as a multi-objective search over
``eval_forget_acc`` (min) and ``eval_retain_acc`` (max) with the constraint "retain drop <= delta"
(set on each trial before Optuna is told, ``tuner.orchestration.searchers``), its study persisted
in ``run_dir/optuna.db``. Grid spaces run their fixed points with Tune's ``grid_search``. ``Tuner.restore``
resumes either, searcher state included.
"""

from __future__ import annotations

import os
from typing import Any

import optuna
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from search_spaces import get_space
from search_spaces.facts import OBJECTIVE_METRICS, OBJECTIVES, study_name
from tuner.orchestration.console import SearchReporter
from tuner.orchestration.context import SearchContext
from tuner.orchestration.progress import TrialProgress
from tuner.orchestration.samplers import make_sampler
from tuner.orchestration.searchers import ConstrainedBoundarySearch, ConstrainedOptunaSearch
from tuner.orchestration.trial import trial_driver

EXPERIMENT = "search"


def trainable(ctx: SearchContext) -> Any:
    return tune.with_resources(tune.with_parameters(trial_driver, ctx=ctx), {"cpu": 0, "memory": 1 << 20})


def _set_tune_env() -> None:
    # training metrics stream into Tune every report; the objectives come only with the final one
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's classic output: it calls our progress_reporter


def make_tuner(ctx: SearchContext) -> tune.Tuner:
    _set_tune_env()
    space = get_space(ctx.space)
    param_space = space.tune_param_space(ctx.trial_config({}))  # the resolved config: its retain loss sets ranges
    if space.sampler == "grid":
        search_alg, num_samples = None, 1
    else:
        storage = optuna.storages.RDBStorage(f"sqlite:///{ctx.path.resolve()}/optuna.db")
        modes = dict(space.objectives)
        kwargs = dict(metric=list(OBJECTIVE_METRICS), mode=[modes[m] for m in OBJECTIVES],
                      storage=storage, study_name=study_name(ctx.space, ctx.preset),
                      sampler=make_sampler(space.sampler, ctx.seed, ctx.num_samples, ctx.baseline_retain_acc,
                                           ctx.delta, space.boundary, ctx.baseline_forget),
                      baseline_retain=ctx.baseline_retain_acc, delta=ctx.delta)
        searcher = (ConstrainedBoundarySearch(**kwargs, run_dir=ctx.path) if space.sampler == "boundary"
                    else ConstrainedOptunaSearch(**kwargs))
        search_alg, num_samples = ConcurrencyLimiter(searcher, max_concurrent=ctx.max_concurrent), ctx.num_samples
    return tune.Tuner(
        trainable(ctx), param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=num_samples,  # a limiter, or a grid's cap:
                                    max_concurrent_trials=None if search_alg else ctx.max_concurrent,
                                    reuse_actors=True),  # one trial-driver process per slot, imports paid once
        run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str((ctx.path / "ray").resolve()),
                                  failure_config=tune.FailureConfig(max_failures=1), verbose=1,
                                  progress_reporter=reporter(ctx), callbacks=[TrialProgress(ctx)]),
    )


def reporter(ctx: SearchContext) -> SearchReporter:
    return SearchReporter(ctx, metric_columns=["step", "loss", "cb_loss", "retain_kl_loss", "forget_acc",
                                               *OBJECTIVE_METRICS])


def restore_tuner(ctx: SearchContext) -> tune.Tuner:
    _set_tune_env()
    tuner = tune.Tuner.restore(str((ctx.path / "ray" / EXPERIMENT).resolve()), trainable=trainable(ctx),
                               resume_unfinished=True, resume_errored=True)
    # the restored RunConfig holds the reporter and callbacks pickled with the old context (maybe another
    # run_dir): renew them
    if getattr(tuner, "_local_tuner", None) is not None:  # None under Ray Client, which keeps the old ones
        run_config = tuner._local_tuner.get_run_config()
        run_config.progress_reporter, run_config.callbacks = reporter(ctx), [TrialProgress(ctx)]
    return tuner
