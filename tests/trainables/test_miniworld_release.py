"""Released mini-world weights: a released world equals the from-scratch build it was published from, and
every shipped release matches today's recipe (a recipe change without republishing fails here)."""

from __future__ import annotations

import dataclasses

import pytest

from trainables.miniworld import build as B
from trainables.miniworld import release as R

TINY = B.MiniWorldConfig(name="tiny", n_entities=8, hidden_size=32, intermediate_size=64, num_heads=2,
                         num_layers=2, vocab_size=1024, stage1_steps=4, stage2_steps=4, batch=8, mc_batch=4,
                         weights="pretrain")
RELEASED = dataclasses.replace(TINY, weights="released")


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A TINY world trained here and published into a temporary ``released/``."""
    monkeypatch.setattr(R, "RELEASED_DIR", tmp_path / "released")
    world = B.build_world(TINY, root=tmp_path / "scratch")
    return world, R.publish(world)


def _weights(world):
    return {stage: (world.root / stage / "model.safetensors").read_bytes() for stage in R.STAGES}


def test_released_world_has_the_published_weights_and_its_own_key(published, tmp_path):
    scratch, _ = published
    released = B.build_world(RELEASED, root=tmp_path / "other")
    assert _weights(released) == _weights(scratch)
    assert released.root.name != scratch.root.name  # cached apart
    assert (released.tokenizer_dir / "tokenizer.json").read_bytes() == \
        (scratch.tokenizer_dir / "tokenizer.json").read_bytes()
    assert R.released_seeds("tiny") == [0]


def test_missing_stale_or_corrupt_release_is_one_clear_error(published, tmp_path):
    _, dest = published
    with pytest.raises(ValueError, match=r"no released weights for tiny world seed 1 \(released: \[0\]\); "
                                         r"train them here with world_weights=pretrain"):
        R.check_released(dataclasses.replace(RELEASED, seed=1))
    with pytest.raises(ValueError, match="trained by recipe .* republish them with"):
        R.check_released(dataclasses.replace(RELEASED, stage2_steps=5))
    (dest / "base.safetensors").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="corrupt .sha256 mismatch.; restore it from git"):
        B.build_world(RELEASED, root=tmp_path / "third")
    assert not [p for p in (tmp_path / "third" / "miniworld").iterdir() if p.is_dir()]  # nothing half-built


@pytest.mark.parametrize("name, seed", [("miniworld", 0), ("miniworld", 1), ("miniworld", 2),
                                        ("miniworld-small", 0)])
def test_every_shipped_world_is_released_for_todays_recipe(name, seed):
    config = B.world_config(name, seed)  # raises if missing or trained by another recipe
    assert config.weights == "released" and seed in R.released_seeds(name)
