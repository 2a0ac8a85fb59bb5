"""What goes where in MLflow, as pure functions: run names, params, metric keys, the adapter's README.

    mlflow ui --backend-store-uri sqlite:///<run_dir>/mlflow.db --host 127.0.0.1   # then the printed runs link

Child runs are named ``<trial_id> retain=5.12 remove=1.3 beta_kl=0.3`` (3 significant figures) and carry the
searched values once, as params rounded to 4 significant figures. Training metrics are ``train/<name>``,
evaluation ``eval/<name>`` (MLflow groups charts by prefix). Values that stay constant through a run (lr,
total_steps, a constant schedule's coefficients) are params, not metric curves.
"""

from __future__ import annotations

from typing import Any

from search_spaces import get_space
from trainables.evaluation.result import TaskScore
from tuner.records.schema import TrialRow

TRAIN, EVAL = "train/", "eval/"
MAYBE_CONSTANT = ("total_steps", "lr", "coef_remove", "coef_retain")  # params when constant, else curves
NOT_METRICS = ("step", "evaluating", "diverged")


def _sig(value: Any, digits: int) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def short_params(params: dict[str, Any]) -> str:
    """``retain=5.12 remove=1.3 beta_kl=0.3``: the searched values at 3 significant figures, ``_coef`` dropped."""
    return " ".join(f"{k.removesuffix('_coef')}={_sig(v, 3)}" for k, v in params.items())


def run_name(trial_id: str, params: dict[str, Any]) -> str:
    return f"{trial_id} {short_params(params)}".strip()


def rounded_params(params: dict[str, Any]) -> dict[str, str]:
    """Searched values as MLflow params, floats at 4 significant figures."""
    return {k: _sig(v, 4) for k, v in params.items()}


def train_metrics(report: dict[str, Any]) -> dict[str, float]:
    """One training report as ``train/`` metrics, without step counters and the possibly-constant values."""
    return {f"{TRAIN}{k}": v for k, v in report.items()
            if k not in NOT_METRICS and k not in MAYBE_CONSTANT and isinstance(v, (int, float))}


def constants_and_curves(history: list[dict[str, Any]]) -> tuple[dict[str, str], list[tuple[str, float, int]]]:
    """Split the possibly-constant values of a run's reports: constant ones -> params (4 significant figures),
    varying ones -> ``(train/<key>, value, step)`` metric points."""
    params, points = {}, []
    for key in MAYBE_CONSTANT:
        values = [(h[key], int(h.get("step", 0))) for h in history if isinstance(h.get(key), (int, float))]
        if len({v for v, _ in values}) == 1:
            params[key] = _sig(values[0][0], 4)
        else:
            points += [(f"{TRAIN}{key}", float(v), step) for v, step in values]
    return params, points


def named_scores(row: TrialRow) -> dict[str, TaskScore]:
    """forget, retain, the second prompt format (``forget_letter``) and every other task, by column name."""
    named = {"forget": row.forget, "retain": row.retain}
    if row.alt_format:
        named |= {f"forget_{row.alt_format}": row.forget_alt, f"retain_{row.alt_format}": row.retain_alt}
    return {k: v for k, v in (named | row.extra_scores).items() if v is not None}


def eval_metrics(row: TrialRow) -> dict[str, float]:
    """``eval/forget_acc``, ``eval/forget_stderr``, ... for every named score of the row."""
    out: dict[str, float] = {}
    for name, score in named_scores(row).items():
        out |= {f"{EVAL}{name}_acc": score.acc, f"{EVAL}{name}_stderr": score.stderr}
    return out


def parent_params(ctx: Any) -> dict[str, Any]:
    """The search, not one trial: space, sampler, its ranges or grid, delta, seed, and the shared config
    (the preset with overrides and the space's fixed values, without the searched keys)."""
    space, cfg = get_space(ctx.space), ctx.trial_config({})
    family = space.family(cfg)
    searched = {p.name for p in family.params} | {k for point in family.grid for k in point}
    config = {k: v for k, v in cfg.to_dict().items() if k not in searched}
    search = ({f"search.{p.name}": str(p).split("~", 1)[1] for p in space.params_for(cfg)} if family.params
              else {"search.grid": [rounded_params(point) for point in family.grid]})
    return {"space": ctx.space, "preset": ctx.preset, "sampler": space.sampler, "delta": ctx.delta,
            "seed": ctx.seed, "num_samples": ctx.num_samples, "git_commit": ctx.git_commit, **search,
            "config": config}


def adapter_readme(row: TrialRow, base_model: str) -> str:
    """The model card logged with a trial's LoRA adapter (in place of PEFT's empty template)."""
    lines = [f"# LoRA adapter of trial {row.trial_id}", "",
             f"Unlearning LoRA adapter for `{base_model}`, trained by unlearn-tuner (circuit breakers + KL retain).",
             "", "## Searched hyper-parameters", ""]
    lines += [f"- `{k}` = {v}" for k, v in rounded_params(row.params).items()] or ["- (none)"]
    lines += ["", "## Scores (accuracy ± stderr)", ""]
    lines += [f"- {name} (`{s.task}`, n={s.n}): {100 * s.acc:.1f} ± {100 * s.stderr:.1f} %"
              for name, s in named_scores(row).items()] or ["- not scored"]
    lines += ["", "Load it with `peft.PeftModel.from_pretrained(base_model, <this folder>)`.", ""]
    return "\n".join(lines)
