"""TrainConfig validation, JSON round-trip, and every shipped preset (structure checked on tiny models)."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig, MistralConfig

from trainables.config import ConfigError, TrainConfig
from trainables.hooks import capture_block_outputs
from trainables.model import check_model_config
from trainables.presets import PRESETS, load_preset

REAL_PRESETS = ["deep-ignorance", "llama-3.1-8b-instruct", "mistral-7b"]
TINY = {  # the preset's family with its real depth, tiny width: same module names and layer indices
    "gpt_neox": lambda n: GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=n, num_attention_heads=2,
                                        intermediate_size=32, max_position_embeddings=32),
    "llama": lambda n: LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=n, num_attention_heads=2,
                                   num_key_value_heads=2, intermediate_size=32, max_position_embeddings=32),
    "mistral": lambda n: MistralConfig(vocab_size=64, hidden_size=16, num_hidden_layers=n, num_attention_heads=2,
                                       num_key_value_heads=2, intermediate_size=32, max_position_embeddings=32),
}
FAMILY = {"deep-ignorance": "gpt_neox", "llama-3.1-8b-instruct": "llama", "mistral-7b": "mistral"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_and_round_trips(name):
    cfg = load_preset(name)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert cfg.total_steps() >= 1


@pytest.mark.parametrize("name", REAL_PRESETS)
def test_real_preset_structure_on_a_tiny_model_of_its_family(name, tmp_path):
    cfg = load_preset(name)
    tiny = TINY[FAMILY[name]](cfg.num_layers)
    tiny.save_pretrained(tmp_path)                      # the loading code reads a local config.json
    check_model_config(cfg, str(tmp_path), None)
    model = AutoModelForCausalLM.from_config(tiny)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_target_modules),
                      layers_to_transform=list(cfg.lora_layers))
    peft_model = get_peft_model(model, lora)
    wrapped = {n.split(".lora_A")[0].split(".")[-1] for n, _ in peft_model.named_parameters() if "lora_A" in n}
    assert wrapped == set(cfg.lora_target_modules)
    with capture_block_outputs(peft_model, list(cfg.target_layers)) as held:
        peft_model(input_ids=torch.tensor([[1, 2, 3]]))
    assert sorted(held) == sorted(cfg.target_layers)


def test_deep_ignorance_is_seed_002():
    cfg = load_preset("deep-ignorance")
    assert cfg.target_layers == (5, 10, 15, 20, 25, 30) and cfg.lora_r == 16 and cfg.lr == 1e-3
    assert cfg.num_examples == 1024 and cfg.per_device_batch * cfg.grad_accum == 32
    assert cfg.remove_variant == "checkpoint" and cfg.checkpoint_revision == "global_step38144"
    assert not cfg.retain_l2 and cfg.total_steps() == 32


def test_wrong_depth_in_local_config_is_named(tmp_path):
    cfg = load_preset("deep-ignorance")
    TINY["gpt_neox"](4).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="num_layers"):
        check_model_config(cfg, str(tmp_path), None)
    assert AutoConfig.from_pretrained(tmp_path).num_hidden_layers == 4


@pytest.mark.parametrize("overrides, field", [
    ({"retain_coef": -1}, "retain_coef"),
    ({"kl_temperature": 0}, "kl_temperature"),
    ({"max_length": 1}, "max_length"),
    ({"target_layers": "1,7"}, "target_layers"),
    ({"lora_layers": "0,4"}, "lora_layers"),
    ({"lora_target_modules": "q_proj,query_key_value"}, "lora_target_modules"),
    ({"schedule": "cosine"}, "schedule"),
    ({"remove_variant": "npo"}, "remove_variant"),
    ({"model": "x/y", "eval_tasks": "real", "forget.source": "file", "retain.source": "file",
      "remove_variant": "checkpoint", "checkpoint_model": ""}, "checkpoint_model"),
    ({"lr": "fast"}, "lr"),
    ({"lora_init_std": -0.1}, "lora_init_std"),
    ({"world_seed": -1}, "world_seed"),
    ({"world_weights": "nosuch"}, "world_weights"),
    ({"not_a_field": 1}, "not_a_field"),
    ({"forget.bogus": 1}, "forget.bogus"),
])
def test_invalid_values_fail_with_one_line_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        load_preset("miniworld", overrides)
    message = str(err.value)
    assert field in message and "\n" not in message


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'gpt-5'"):
        load_preset("gpt-5")


def test_cli_strings_are_coerced():
    cfg = load_preset("miniworld", {"retain_l2": "false", "target_layers": "1,2", "steps": "7",
                                    "forget.path": "retain", "retain.shuffle_seed": "none"})
    assert cfg.retain_l2 is False and cfg.target_layers == (1, 2) and cfg.steps == 7 and cfg.forget.path == "retain"
