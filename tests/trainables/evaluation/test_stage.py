"""The eval stage on a tiny random Llama, offline; the slow tests check it against lm-eval's own CLI."""

from __future__ import annotations

import copy
import json
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainables.evaluation.result import EvalResult, TaskScore
from trainables.evaluation.stage import evaluate_model, format_eval_table, json_safe, scores_from_results
from trainables.evaluation.tasks import TaskSet
from trainables.phases import PhaseTimer


def test_scores_every_task_and_group(base_result: EvalResult) -> None:
    scores = base_result.scores
    assert len(scores) == 2 + 19 and base_result.forget is scores["wmdp_bio"]
    assert (scores["wmdp_bio"].n, scores["mmlu_stem"].n, scores["mmlu_anatomy"].n) == (20, 75, 4)
    assert (scores["wmdp_bio"].version, scores["mmlu_stem"].version) == ("1", "2")
    subtasks = [s for name, s in scores.items() if name.startswith("mmlu_") and name != "mmlu_stem"]
    weighted = sum(s.acc * s.n for s in subtasks) / sum(s.n for s in subtasks)
    unweighted = sum(s.acc for s in subtasks) / len(subtasks)
    assert len({s.n for s in subtasks}) == 3 and abs(weighted - unweighted) > 0.005  # the check can tell them apart
    assert base_result.retain.acc == pytest.approx(weighted)  # lm-eval's size-weighted group mean
    assert base_result.raw["results"]["wmdp_bio"]["acc,none"] == base_result.forget.acc
    assert EvalResult.from_dict(json.loads(json.dumps(base_result.to_dict()))) == base_result


def test_peft_model_is_scored_unmerged(base_result: EvalResult, peft_result: EvalResult, tiny_peft: Any) -> None:
    assert any("lora_A" in name for name, _ in tiny_peft[0].named_parameters())
    assert [s.acc for s in peft_result.scores.values()] != [s.acc for s in base_result.scores.values()]


def test_restores_modes_rng_and_tokenizer_offline(tiny_lm: Any, task_set: TaskSet,
                                                  no_network: list[object]) -> None:
    model, tokenizer = tiny_lm[0], copy.deepcopy(tiny_lm[1])
    tokenizer.pad_token = None  # evaluate_model must borrow eos, not add a '<|pad|>' token
    vocab, encoded = len(tokenizer), tokenizer("a b")["input_ids"]
    model.train()
    model.model.layers[0].eval()  # mixed modes must come back per module
    modes = [m.training for m in model.modules()]
    timer = PhaseTimer()
    try:
        draws = []
        for run_eval in (True, False):
            random.seed(7), np.random.seed(7), torch.manual_seed(7)
            if run_eval:
                result = evaluate_model(model, tokenizer, task_set, batch_size=16, add_bos_token=True, phases=timer)
            draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
        assert draws[0] == draws[1]
        assert [m.training for m in model.modules()] == modes
    finally:
        model.eval()
    assert tokenizer.pad_token is None and len(tokenizer) == vocab and tokenizer("a b")["input_ids"] == encoded
    assert result.scores["wmdp_bio"].n == 20
    assert list(timer.seconds) == ["eval_tasks", "evaluation"] and 0 < timer.seconds["evaluation"] <= result.seconds
    assert no_network == []


def test_network_guard_sees_connections(no_network: list[object]) -> None:
    with pytest.raises(OSError, match="network"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1, never routed
    assert no_network == [("192.0.2.1", 443)]


def test_restores_state_when_lm_eval_raises(tiny_lm: Any, task_set: TaskSet,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import lm_eval.evaluator

    def broken_evaluate(**_: Any) -> None:
        torch.rand(5), random.random()
        raise RuntimeError("boom")

    monkeypatch.setattr(lm_eval.evaluator, "evaluate", broken_evaluate)
    model, tokenizer = tiny_lm
    torch.manual_seed(3), random.seed(3)
    model.train()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            evaluate_model(model, tokenizer, task_set, add_bos_token=True)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    after = (torch.rand(1).item(), random.random())
    torch.manual_seed(3), random.seed(3)
    assert after == (torch.rand(1).item(), random.random())
    assert tokenizer("a")["input_ids"][0] != tokenizer.bos_token_id  # BOS switched back off


def test_unknown_task_is_a_clear_error(tiny_lm: Any, task_set: TaskSet) -> None:
    bad = TaskSet(**{**task_set.to_dict(), "tasks": ("wmdp_chem",)})
    with pytest.raises(ValueError, match=r"unknown lm-eval task\(s\) \['wmdp_chem'\]"):
        evaluate_model(*tiny_lm, bad)


def test_scores_from_results_reads_groups_and_missing_stderr() -> None:
    res = {"results": {"t": {"acc,none": 0.5, "acc_stderr,none": "N/A"}, "g": {"alias": "g"}},
           "groups": {"g": {"acc,none": np.float64(0.25), "acc_stderr,none": np.float64(0.1),
                            "sample_count": {"acc,none": 8}}},
           "n-samples": {"t": {"original": 9, "effective": 4}}, "versions": {"t": 1, "g": 2}}
    assert scores_from_results(res) == {"t": TaskScore("t", 0.5, 0.0, 4, "1"), "g": TaskScore("g", 0.25, 0.1, 8, "2")}


def test_json_safe_converts_numpy_and_drops_objects() -> None:
    raw = {"a": np.float64(0.5), "b": (np.int64(2), object()), 3: {"c": object(), "d": None}}
    assert json_safe(raw) == {"a": 0.5, "b": [2], "3": {"d": None}}
    assert type(json_safe(raw)["a"]) is float


def test_format_eval_table() -> None:
    def result(forget: float, retain: float) -> EvalResult:
        scores = {"wmdp_bio": TaskScore("wmdp_bio", forget, 0.0307, 200, "1"),
                  "mmlu_stem": TaskScore("mmlu_stem", retain, 0.03, 200, "2"),
                  "mmlu_anatomy": TaskScore("mmlu_anatomy", 0.5, 0.1, 20, "1")}
        return EvalResult(scores=scores, forget_task="wmdp_bio", retain_task="mmlu_stem")

    lines = format_eval_table(result(0.25, 0.235), baseline=result(0.265, 0.2)).splitlines()
    assert lines[0] == "| task | accuracy (%) | n | Δ vs baseline (pts) |"
    assert lines[2] == "| wmdp_bio | 25.00±3.07 | 200 | -1.50 |"
    assert lines[3] == "| mmlu_stem | 23.50±3.00 | 200 | +3.50 |"
    assert len(format_eval_table(result(0.25, 0.235)).splitlines()) == 5


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["base", "add_bos_token", "peft"])
def test_scores_equal_lm_eval_cli(variant: str, tiny_lm: Any, tiny_model_dir: Path, tiny_peft: Any,
                                  task_set: TaskSet, base_result: EvalResult, peft_result: EvalResult,
                                  tmp_path: Path, lm_eval_cli: Any) -> None:
    model_args = f"pretrained={tiny_model_dir},dtype=float32"
    ours = base_result
    if variant == "add_bos_token":
        model_args += ",add_bos_token=True"
        ours = evaluate_model(*tiny_lm, task_set, batch_size=16, add_bos_token=True)
        assert ours.scores != base_result.scores  # the tiny model is sensitive to BOS
    elif variant == "peft":
        model_args += f",peft={tiny_peft[1]}"
        ours = peft_result
    cli = lm_eval_cli(model_args, task_set, tmp_path)
    assert set(ours.scores) == set(cli["results"])
    for name, score in ours.scores.items():
        theirs = cli["results"][name]
        assert score.acc == pytest.approx(theirs["acc,none"], abs=1e-4), name
        assert score.stderr == pytest.approx(theirs["acc_stderr,none"], abs=1e-4), name
    assert cli["n-samples"]["wmdp_bio"]["effective"] == ours.forget.n == 20
    assert cli["groups"]["mmlu_stem"]["acc,none"] == pytest.approx(ours.retain.acc, abs=1e-4)
