"""Score a model that is already in memory with lm-eval, with the numbers ``lm_eval run`` gives.

    result = evaluate_model(model, tokenizer, real_task_set(data_root))  # HF model or PeftModel, no merge
    result.forget.acc, result.retain.acc   # wmdp_bio; mmlu_stem = size-weighted mean of its 19 subtasks
    print(format_eval_table(result, baseline))

The same scores from the CLI (``add_bos_token`` only when passed here):

    lm_eval run --model hf --device cpu --batch_size 32 --tasks wmdp_bio,mmlu_stem \\
        --model_args pretrained=<dir>,dtype=float32[,peft=<adapter dir>][,add_bos_token=True] \\
        --include_path <task_set.include_path>

The model's train/eval modes, the global RNG states (python, numpy, torch CPU + CUDA) and the tokenizer
are left as they were found, also when lm-eval raises.
"""

from __future__ import annotations

import importlib.metadata
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from trainables.evaluation.result import EvalResult, TaskScore
from trainables.evaluation.tasks import TaskSet, check_tasks, make_task_manager
from trainables.offline import set_offline_env
from trainables.phases import PhaseTimer

FEWSHOT_SEED = 1234  # lm-eval's default ``fewshot_random_seed`` (CLI and simple_evaluate)


def evaluate_model(model: torch.nn.Module, tokenizer: Any, task_set: TaskSet, *, batch_size: int = 32,
                   limit: int | float | None = None, add_bos_token: bool | None = None,
                   phases: PhaseTimer | None = None) -> EvalResult:
    """Run ``task_set.tasks`` on ``model`` where it lies (device, dtype); score every task and group.

    ``add_bos_token``: ``None`` keeps the tokenizer's own behaviour, i.e. what ``lm_eval run`` does without
    ``add_bos_token`` in ``--model_args``; ``True``/``False`` match ``add_bos_token=True/False`` there (the
    tokenizer is switched for the duration, as lm-eval does when it loads one). Pass ``True`` for models
    trained with ``<s>`` first whose tokenizer does not add it itself (the mini-world).
    ``limit`` caps the questions per subtask (smoke tests only; ``n`` reports what ran).
    ``phases`` gets ``eval_tasks`` (lm-eval import, task index, HFLM, task objects) and ``evaluation``.
    """
    phases = phases or PhaseTimer()
    with phases.phase("eval_tasks"):
        if task_set.offline:
            set_offline_env()  # before lm_eval imports datasets
        from lm_eval.evaluator import evaluate
        from lm_eval.models.huggingface import HFLM

        check_tasks(task_set)
        task_manager = make_task_manager(task_set)
    start = time.perf_counter()
    with _restored_state(model), _eval_tokenizer(tokenizer, add_bos_token):
        with phases.phase("eval_tasks"):
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=add_bos_token)
            # What simple_evaluate does before ``evaluate``, minus its env-info probe (1-4 s, subprocesses).
            loaded = task_manager.load(list(task_set.tasks))
            for task in loaded["tasks"].values():
                if task.get_config("num_fewshot") is None:
                    task.set_config(key="num_fewshot", value=0)
                task.set_fewshot_seed(seed=FEWSHOT_SEED)
        with phases.phase("evaluation"):
            res = evaluate(lm=lm, task_dict=loaded, limit=limit, bootstrap_iters=1, log_samples=False)
    seconds = time.perf_counter() - start
    if res is None:
        raise RuntimeError("lm-eval returned no results (only rank 0 does under torchrun)")
    raw = json_safe(res) | {"lm_eval_version": importlib.metadata.version("lm_eval")}
    scores = scores_from_results(raw)
    for primary in (task_set.forget_task, task_set.retain_task):
        if primary not in scores:
            raise ValueError(f"lm-eval reported no 'acc,none' for {primary!r}; got {sorted(scores)}")
    return EvalResult(scores=scores, forget_task=task_set.forget_task, retain_task=task_set.retain_task,
                      raw=raw, seconds=seconds, alt_format=task_set.alt_format,
                      alt_forget_task=task_set.alt_forget_task, alt_retain_task=task_set.alt_retain_task)


def scores_from_results(res: dict[str, Any]) -> dict[str, TaskScore]:
    """One ``TaskScore`` per task and group with an ``acc,none`` in lm-eval's (or the CLI's JSON) results.

    n: ``n-samples[task].effective`` for a task; ``sample_count`` (the subtasks' sum) for a group.
    """
    scores = {}
    for name, metrics in {**res["results"], **res.get("groups", {})}.items():
        if "acc,none" not in metrics:
            continue  # a group without aggregate metrics
        if name in res.get("n-samples", {}):
            n = res["n-samples"][name]["effective"]
        else:
            n = metrics.get("sample_count", {}).get("acc,none", metrics.get("sample_len", 0))
        stderr = metrics.get("acc_stderr,none")
        stderr = float(stderr) if isinstance(stderr, int | float) and math.isfinite(stderr) else 0.0  # n < 2
        scores[name] = TaskScore(task=name, acc=float(metrics["acc,none"]), stderr=stderr, n=int(n),
                                 version=str(res.get("versions", {}).get(name, "")))
    return scores


def format_eval_table(result: EvalResult, baseline: EvalResult | None = None) -> str:
    """Markdown table, forget and retain first: ``| task | accuracy (%) | n | Δ vs baseline (pts) |``."""
    header = "| task | accuracy (%) | n |" + (" Δ vs baseline (pts) |" if baseline else "")
    lines = [header, "|---|---:|---:|" + ("---:|" if baseline else "")]
    order = [result.forget_task, result.retain_task]
    for name in order + sorted(set(result.scores) - set(order)):
        s = result.scores[name]
        line = f"| {name} | {100 * s.acc:.2f}±{100 * s.stderr:.2f} | {s.n} |"
        if baseline:
            base = baseline.scores.get(name)
            line += f" {100 * (s.acc - base.acc):+.2f} |" if base else " – |"
        lines.append(line)
    return "\n".join(lines)


_DROP = object()  # json_safe's marker for values it leaves out


def json_safe(obj: Any) -> Any:
    """lm-eval's result dict as plain JSON types: numpy scalars become floats/ints; objects are dropped."""
    if isinstance(obj, dict):
        out = {str(k): json_safe(v) for k, v in obj.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(obj, list | tuple):
        return [v for v in map(json_safe, obj) if v is not _DROP]
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return _DROP


@contextmanager
def _restored_state(model: torch.nn.Module) -> Iterator[None]:
    """Put back every module's train/eval mode (HFLM calls ``model.eval()``) and the global RNG states."""
    modes = [(m, m.training) for m in model.modules()]
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda_devices = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda_devices):  # torch CPU + every visible CUDA device
            yield
    finally:
        for module, training in modes:
            module.training = training
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextmanager
def _eval_tokenizer(tokenizer: Any, add_bos_token: bool | None) -> Iterator[None]:
    """Give the tokenizer a pad token without growing the vocab and apply ``add_bos_token``; undo after."""
    pad, bos_flag = tokenizer.pad_token, getattr(tokenizer, "add_bos_token", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    post_processor = backend.post_processor if backend is not None else None
    switch_bos = add_bos_token is not None and bos_flag != add_bos_token
    if pad is None:  # else HFLM may add '<|pad|>', a token the model's embedding does not have
        if tokenizer.eos_token is None and tokenizer.unk_token is None:
            raise ValueError("tokenizer has no pad, eos or unk token; set tokenizer.pad_token first")
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    try:
        if switch_bos:
            tokenizer.add_bos_token = add_bos_token  # rebuilds the post-processor, as from_pretrained does
            if add_bos_token and tokenizer("a")["input_ids"][:1] != [tokenizer.bos_token_id]:
                raise ValueError(f"add_bos_token=True but {type(tokenizer).__name__} prepends no BOS token")
        yield
    finally:
        tokenizer.pad_token = pad
        if switch_bos:
            tokenizer.add_bos_token = bos_flag
            if backend is not None:  # the exact original, not one rebuilt from the flags
                backend.post_processor = post_processor
