"""The mini-world's lm-eval tasks through the evaluation stage: two worlds in one process never share data."""

from __future__ import annotations

import dataclasses

from transformers import AutoModelForCausalLM, AutoTokenizer

from trainables.miniworld import build as B
from tuner.eval_stage import evaluate_model
from tuner.tasks import miniworld_task_set

TINY = B.MiniWorldConfig(name="tiny", n_entities=6, hidden_size=32, intermediate_size=64, num_heads=2,
                         num_layers=2, vocab_size=400, stage1_steps=4, stage2_steps=4, batch=8)


def test_two_worlds_are_scored_on_their_own_questions(tmp_path):
    """``datasets`` caches local data by directory + config name; each world must keep its own cache."""
    for n_entities in (6, 8):
        world = B.build_world(dataclasses.replace(TINY, n_entities=n_entities), root=tmp_path)
        model = AutoModelForCausalLM.from_pretrained(world.base_model_dir)
        tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
        result = evaluate_model(model, tokenizer, miniworld_task_set(world), add_bos_token=True)
        assert {score.n for score in result.scores.values()} == {n_entities * 4 // 2}
        assert set(result.scores) == set(B.TASKS)
        assert result.forget_task == B.FORGET_TASK and result.retain_task == B.RETAIN_TASK
