"""The mini-world build: determinism, the Hub layout lm-eval reads, and the cache's corruption handling."""

from __future__ import annotations

import json

import pytest

from trainables.miniworld import build as B
from trainables.miniworld import world as W

TINY = B.MiniWorldConfig(name="tiny", n_entities=6, hidden_size=32, intermediate_size=64, num_heads=2,
                         num_layers=2, vocab_size=400, stage1_steps=4, stage2_steps=4, batch=8)


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
    assert len(rows) == TINY.n_entities * 4 // 2
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
    facts = W.make_facts(0, 10)
    for domain in (W.FORGET, W.RETAIN):
        mine = [f for f in facts if f.domain == domain]
        assert len(mine) == 40 and sum(f.heldout for f in mine) == 20
    fact = facts[0]
    assert fact.sentences()[1] == f"{fact.cloze_stem()} {fact.value}."


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="n_entities"):
        B.MiniWorldConfig(n_entities=2)
    with pytest.raises(ValueError, match="stage1_steps"):
        B.MiniWorldConfig(stage1_steps=0)
