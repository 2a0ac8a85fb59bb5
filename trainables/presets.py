"""Named starting configs: the mini-world (default) and the anchors' real-model set-ups.

    load_preset("deep-ignorance", {"retain_coef": 10})

* ``miniworld`` / ``miniworld-small``: the synthetic CPU benchmark (trainables.miniworld), with the
  set-up measured in docs/benchmarks.md#how-the-world-responds-to-the-coefficients: constant coefficients, KL-only
  retain, 60 steps, lr 1e-3, and a small seeded lora_B init (``lora_init_std``) so that results do not depend on the
  CPU's kernels.
* ``deep-ignorance``: EleutherAI's KL-retain checkpoint-transfer run (seed 002, docs/benchmarks.md#the-anchors):
  LoRA r16 on the GPT-NeoX projections, target layers 5..30, lr 1e-3, 1024 examples, global batch 32,
  KL-only retain, remove = MSE to the pretraining-stage checkpoint. LoRA covers all 32 blocks
  (docs/benchmarks.md#the-anchors: the anchors' 0..30 left the last block untouched).
* ``llama-3.1-8b-instruct`` / ``mistral-7b``: RRFA's circuit-breaker presets (seeds 000/001):
  cos remove, L2 + beta_kl * KL retain (beta_kl 0.5, T 1), paper schedule, CB layers 20..31, lr 1e-5.
"""

from __future__ import annotations

from typing import Any

from trainables.config import ConfigError, DataSpec, TrainConfig

WMDP_BIO_REMOVE = DataSpec(source="hf", path="Unlearning/WMDP-Bio-Remove-Dataset", split="train",
                           text_fields=("title", "abstract", "text"))
WIKITEXT = DataSpec(source="hf", path="EleutherAI/wikitext_document_level", name="wikitext-103-raw-v1",
                    split="train", text_fields=("page",), shuffle_seed=42)
# lora_B ~ N(0, 1e-3): trials start from the same deterministic push on every machine. With peft's zeros the
# first steps follow float rounding noise, and the AVX2 and AVX-512 kernel paths ended 10 forget points apart
# at the same seed_grid point; with this init they agreed to the last question (README, "The mini-world").
MINIWORLD_LORA_INIT_STD = 1e-3
LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

_REAL_COMMON: dict[str, Any] = dict(
    dtype="bfloat16", forget=WMDP_BIO_REMOVE, retain=WIKITEXT, eval_tasks="real", add_bos_token=False,
    lora_dropout=0.05, max_length=2048, eval_batch_size=16, log_every=1, kl_chunk_size=256,
)

PRESETS: dict[str, TrainConfig] = {
    "miniworld": TrainConfig(schedule="constant", retain_l2=False, lora_init_std=MINIWORLD_LORA_INIT_STD),
    "miniworld-small": TrainConfig(model="miniworld-small", schedule="constant", retain_l2=False, steps=40,
                                   lora_init_std=MINIWORLD_LORA_INIT_STD),
    "deep-ignorance": TrainConfig(
        **_REAL_COMMON,
        model="EleutherAI/deep-ignorance-unfiltered", architecture="gpt_neox", num_layers=32,
        lora_r=16, lora_alpha=16, lora_target_modules=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
        lora_layers=tuple(range(32)), target_layers=(5, 10, 15, 20, 25, 30),
        remove_variant="checkpoint", checkpoint_model="EleutherAI/deep-ignorance-pretraining-stage-unfiltered",
        checkpoint_revision="global_step38144", retain_l2=False, beta_kl=1.0, retain_coef=5.0, remove_coef=5.0,
        schedule="eleuther", lr=1e-3, lr_schedule="linear", weight_decay=0.01, steps=0, epochs=1,
        num_examples=1024, per_device_batch=4, grad_accum=8,
    ),
    "llama-3.1-8b-instruct": TrainConfig(
        **_REAL_COMMON,
        model="meta-llama/Llama-3.1-8B-Instruct", architecture="llama", num_layers=32,
        lora_r=16, lora_alpha=16, lora_target_modules=LLAMA_MODULES, lora_layers=tuple(range(32)),
        target_layers=tuple(range(20, 32)), remove_variant="cos", retain_l2=True, beta_kl=0.5,
        retain_coef=10.0, remove_coef=10.0, schedule="paper", lr=1e-5, lr_schedule="linear", warmup_steps=20,
        weight_decay=0.01, steps=1100, per_device_batch=16, grad_accum=1, num_examples=0,
    ),
    "mistral-7b": TrainConfig(
        **_REAL_COMMON,
        model="mistralai/Mistral-7B-Instruct-v0.2", architecture="llama", num_layers=32,
        lora_r=16, lora_alpha=16, lora_target_modules=LLAMA_MODULES, lora_layers=tuple(range(32)),
        target_layers=tuple(range(20, 32)), remove_variant="cos", retain_l2=True, beta_kl=0.5,
        retain_coef=5.0, remove_coef=5.0, schedule="paper", lr=1e-5, lr_schedule="linear", warmup_steps=20,
        weight_decay=0.01, steps=1100, per_device_batch=16, grad_accum=1, num_examples=0,
    ),
}


def load_preset(name: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The named preset with ``key=value`` overrides applied and validated."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].with_overrides(overrides or {})
