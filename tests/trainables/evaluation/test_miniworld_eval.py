"""The mini-world's lm-eval tasks through the evaluation stage: two worlds in one process never share data."""

from __future__ import annotations

import dataclasses

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainables.evaluation.stage import evaluate_model
from trainables.evaluation.tasks import miniworld_task_set
from trainables.miniworld import build as B

TINY = B.MiniWorldConfig(name="tiny", n_entities=8, hidden_size=32, intermediate_size=64, num_heads=2,
                         num_layers=2, vocab_size=1024, stage1_steps=4, stage2_steps=4, batch=8, mc_batch=4,
                         weights="pretrain")


def test_two_worlds_are_scored_on_their_own_questions(tmp_path):
    """``datasets`` caches local data by directory + config name; each world must keep its own cache."""
    for n_entities in (8, 10):
        world = B.build_world(dataclasses.replace(TINY, n_entities=n_entities), root=tmp_path)
        model = AutoModelForCausalLM.from_pretrained(world.base_model_dir)
        tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
        result = evaluate_model(model, tokenizer, miniworld_task_set(world), add_bos_token=True)
        assert {score.n for score in result.scores.values()} == {round(n_entities * 4 * TINY.heldout_share)}
        assert set(result.scores) == set(B.TASKS)
        assert result.forget_task == B.FORGET_TASK and result.retain_task == B.RETAIN_TASK


@pytest.mark.slow
def test_miniworld_scores_equal_lm_eval_cli(tmp_path, lm_eval_cli):
    """Our in-memory scores == ``lm_eval run --include_path <world>/tasks`` on the saved base model."""
    world = B.build_world(TINY, root=tmp_path)
    model = AutoModelForCausalLM.from_pretrained(world.base_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    ours = evaluate_model(model, tokenizer, miniworld_task_set(world), add_bos_token=True)
    cli = lm_eval_cli(f"pretrained={world.base_model_dir},dtype=float32,add_bos_token=True",
                          miniworld_task_set(world), tmp_path)
    assert set(ours.scores) == set(cli["results"])
    for name, score in ours.scores.items():
        assert score.acc == pytest.approx(cli["results"][name]["acc,none"], abs=1e-4), name
        assert score.stderr == pytest.approx(cli["results"][name]["acc_stderr,none"], abs=1e-4), name
