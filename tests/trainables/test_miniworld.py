"""The mini-world build: determinism, the Hub layout lm-eval reads, and the cache's corruption handling."""

from __future__ import annotations

import json

import pytest

from trainables.miniworld import build as B
from trainables.miniworld import world as W

TINY = B.MiniWorldConfig(name="tiny", n_entities=8, hidden_size=32, intermediate_size=64, num_heads=2,
                         num_layers=2, vocab_size=1024, stage1_steps=4, stage2_steps=4, batch=8, mc_batch=4,
                         weights="pretrain")


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    return [B.build_world(TINY, root=tmp_path_factory.mktemp(f"cache{i}")) for i in range(2)]


def _files(world):
    return {str(p.relative_to(world.root)): p.read_bytes() for p in sorted(world.root.rglob("*"))
            if p.is_file() and p.parent.name != "tasks"}


def test_same_seed_gives_identical_files(two_builds):
    a, b = two_builds
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    assert {k for k in fa if fa[k] != fb[k]} == set()
    assert "base/model.safetensors" in fa and "early/model.safetensors" in fa and "tokenizer/tokenizer.json" in fa


def test_config_hash_names_the_cache():
    import dataclasses

    assert TINY.key() != dataclasses.replace(TINY, seed=1).key()
    assert TINY.key() == B.MiniWorldConfig(**dataclasses.asdict(TINY)).key()


def test_hub_layout_and_schema(two_builds):
    world = two_builds[0]
    wmdp = world.data_root / "cais" / "wmdp"
    assert "config_name: wmdp-bio-cloze" in (wmdp / "README.md").read_text()
    rows = [json.loads(line) for line in (wmdp / "wmdp-bio" / "test.jsonl").read_text().splitlines()]
    assert len(rows) == round(TINY.n_entities * 4 * TINY.heldout_share)
    for row in rows:
        assert set(row) == {"question", "choices", "answer"} and isinstance(row["answer"], int)
        assert len(row["choices"]) == 4 and 0 <= row["answer"] < 4
    mmlu = world.data_root / "cais" / "mmlu" / "materials_science"
    dev = [json.loads(line) for line in (mmlu / "dev.jsonl").read_text().splitlines()]
    assert dev and set(dev[0]) == {"question", "subject", "choices", "answer"}
    cloze = [json.loads(line) for line in (wmdp / "wmdp-bio-cloze" / "test.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in cloze] == [r["answer"] for r in rows]
    assert all(not r["question"].endswith("?") for r in cloze)
    for task in B.TASKS:
        text = (world.tasks_dir / f"{task}.yaml").read_text()
        assert f"dataset_path: {world.data_root}" in text and f"task: {task}" in text


def test_corrupt_or_half_written_cache_is_rebuilt(tmp_path):
    world = B.build_world(TINY, root=tmp_path)
    good = (world.base_model_dir / "model.safetensors").read_bytes()
    (world.base_model_dir / "model.safetensors").write_bytes(b"truncated")
    rebuilt = B.build_world(TINY, root=tmp_path)
    assert (rebuilt.base_model_dir / "model.safetensors").read_bytes() == good
    (world.root / "MANIFEST.json").unlink()  # an interrupted build never wrote its manifest
    assert (B.build_world(TINY, root=tmp_path).root / "MANIFEST.json").exists()
    assert not [p for p in (tmp_path / "miniworld").iterdir() if p.name.startswith(".tiny-") and p.is_dir()]


def test_facts_split_and_cloze_stems():
    facts = W.make_facts(0, 10, heldout_share=0.75)
    for domain in (W.FORGET, W.RETAIN):
        mine = [f for f in facts if f.domain == domain]
        assert len(mine) == 40 and sum(f.heldout for f in mine) == 30
    fact = facts[0]
    assert fact.sentences()[1] == f"{fact.cloze_stem()} {fact.value}."


def test_heldout_questions_never_appear_in_training_documents():
    """Practice documents (QA + letter MC) come from practice facts only; held-out facts are text only."""
    import random

    facts = W.make_facts(3, 12, heldout_share=0.75)
    rng = random.Random(0)
    practice_docs = [c + a for d in (W.FORGET, W.RETAIN) for c, a in W.qa_documents(facts, d)]
    practice_docs += ["".join(W.mc_document(f, rng)) for f in facts if not f.heldout for _ in range(20)]
    for f in (f for f in facts if f.heldout):
        assert not any(f.question() in doc for doc in practice_docs), f.question()
    assert all(f.question() in "".join(practice_docs) for f in facts if not f.heldout)


def test_letter_documents_match_the_eval_prompt(two_builds):
    """An MC practice document is the exact WMDP/MMLU prompt; " A".." D" are single tokens."""
    import random

    from transformers import AutoTokenizer

    fact = next(f for f in W.make_facts(0, 8) if f.domain == W.FORGET and not f.heldout)
    prompt, answer = W.mc_document(fact, random.Random(1))
    assert prompt.startswith(W.DESCRIPTIONS[W.FORGET] + fact.question() + "\nA. ") and prompt.endswith("\nAnswer:")
    letter = answer.strip()
    assert answer == f" {letter}" and prompt.split("\n")[3 + W.LETTERS.index(letter)] == f"{letter}. {fact.value}"
    tokenizer = AutoTokenizer.from_pretrained(two_builds[0].tokenizer_dir)
    assert [len(tokenizer(f" {x}", add_special_tokens=False)["input_ids"]) for x in W.LETTERS] == [1, 1, 1, 1]


def test_world_seed_selects_and_keys_a_world():
    assert B.world_config("miniworld", 2, "pretrain").seed == 2
    assert B.world_config("miniworld", 2, "pretrain").key() != B.world_config("miniworld", 0, "pretrain").key()
    assert B.world_config("miniworld", 0, "pretrain").key() != B.world_config("miniworld", 0).key()
    assert B.world_config("miniworld-small").n_entities < B.world_config().n_entities
    with pytest.raises(ValueError, match="unknown mini-world"):
        B.world_config("nosuch")
    with pytest.raises(ValueError, match="world seed"):
        B.world_config("miniworld", -1)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="n_entities"):
        B.MiniWorldConfig(n_entities=2)
    with pytest.raises(ValueError, match="stage1_steps"):
        B.MiniWorldConfig(stage1_steps=0)


def test_cli_rejects_a_bad_world_seed_before_building(capsys, tmp_path, monkeypatch):
    from trainables.miniworld.__main__ import main

    monkeypatch.setenv("UNLEARN_TUNER_CACHE", str(tmp_path))
    assert main(["--world-seed", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: world seed must be >= 0 (got -1)"
    assert not (tmp_path / "miniworld").exists()
