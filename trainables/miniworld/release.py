"""Released mini-world checkpoints: the same weights on every machine.

Pretraining a tiny model from scratch is chaotic: a last-bit difference (another CPU kernel path, another
thread count) grows to different weights within ~150 steps, in float32 and float64 alike, and unlearning
trials on those weights score differently (README, "The mini-world"). So, like WMDP's anchors, which ship
their deep-ignorance checkpoints, the default worlds ship their early and base weights here; facts,
questions and tokenizer are rebuilt (pure Python, identical everywhere) and checked against the release.

    released/<name>-seed<seed>/RELEASE.json              recipe key, tokenizer and weight sha256s, build facts
    released/<name>-seed<seed>/{early,base}.safetensors

    python -m trainables.miniworld --world-seed 1 --pretrain --release   # a maintainer publishes one
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import replace
from pathlib import Path

RELEASED_DIR = Path(__file__).parent / "released"
STAGES = ("early", "base")


def _release_dir(name: str, seed: int) -> Path:
    return RELEASED_DIR / f"{name}-seed{seed}"


def released_seeds(name: str) -> list[int]:
    """World seeds of ``name`` that have released weights."""
    return sorted(int(p.name.rsplit("-seed", 1)[1]) for p in RELEASED_DIR.glob(f"{name}-seed*")
                  if (p / "RELEASE.json").is_file())


def check_released(config) -> None:
    """Raise ValueError (with the fix) unless released weights exist for exactly this recipe."""
    manifest = _release_dir(config.name, config.seed) / "RELEASE.json"
    if not manifest.is_file():
        raise ValueError(f"no released weights for {config.name} world seed {config.seed} (released: "
                         f"{released_seeds(config.name) or 'none'}); train them here with world_weights=pretrain "
                         f"(results then depend on this machine's CPU kernels)")
    recipe = json.loads(manifest.read_text())["recipe_key"]
    if recipe != recipe_key(config):
        raise ValueError(f"the released {config.name} seed {config.seed} weights were trained by recipe {recipe}, "
                         f"this build's recipe is {recipe_key(config)}; republish them with "
                         f"`python -m trainables.miniworld --world-seed {config.seed} --pretrain --release`")


def recipe_key(config) -> str:
    """The cache key of the from-scratch build that produced (or would produce) these weights."""
    return replace(config, weights="pretrain").key()


def install(config, root: Path, tokenizer_json: Path) -> None:
    """Copy the released weights into a build directory (``root/{early,base}/``) after checking them."""
    check_released(config)
    src = _release_dir(config.name, config.seed)
    manifest = json.loads((src / "RELEASE.json").read_text())
    if sha256(tokenizer_json) != manifest["tokenizer_sha256"]:
        raise ValueError(f"the tokenizer rebuilt here differs from the released {config.name} seed {config.seed} "
                         f"one (tokenizers version?); train the world here with world_weights=pretrain")
    for stage in STAGES:
        weights = src / f"{stage}.safetensors"
        if sha256(weights) != manifest["sha256"][stage]:
            raise ValueError(f"{weights} is corrupt (sha256 mismatch); restore it from git")
        shutil.copyfile(weights, root / stage / "model.safetensors")


def publish(world) -> Path:
    """Copy a from-scratch world's weights into ``released/`` (maintainers; commit the result)."""
    import torch

    config = world.config
    dest = _release_dir(config.name, config.seed)
    dest.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        shutil.copyfile(world.root / stage / "model.safetensors", dest / f"{stage}.safetensors")
    manifest = {"recipe_key": recipe_key(config), "world_key": config.key(),
                "tokenizer_sha256": sha256(world.tokenizer_dir / "tokenizer.json"),
                "sha256": {stage: sha256(dest / f"{stage}.safetensors") for stage in STAGES},
                "built_with": {"torch": torch.__version__, "threads": min(torch.get_num_threads(), 2),
                               "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                               "machine": platform.machine()}}
    (dest / "RELEASE.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return dest


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (release manifests and the world cache's MANIFEST.json)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
