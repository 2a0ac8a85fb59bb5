"""What the configs may name for each supported model family, known without downloading weights.

``linear_modules`` are the projection names peft can wrap with LoRA; ``model_types`` the HF
``config.model_type`` values of the family (checked when the model's config.json is read).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    name: str
    model_types: tuple[str, ...]
    linear_modules: tuple[str, ...]


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("llama", ("llama", "mistral"),
                     ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")),
        Architecture("gpt_neox", ("gpt_neox",), ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")),
    )
}
