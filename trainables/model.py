"""Model set-up: base model + tokenizer, LoRA through peft, and the frozen early checkpoint.

The teacher is not a second copy: it is the same ``PeftModel`` under ``disable_adapter()`` + ``no_grad``.
Hidden states come from forward hooks on decoder blocks (``trainables.hooks``): block l = ``layers[l]``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from trainables.config import MINIWORLD_MODELS, ConfigError, TrainConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def miniworld(cfg: TrainConfig, progress: Callable[[str, int, int], None] | None = None):
    """The built (cached) mini-world for a mini-world config, else None; ``progress(stage, step, steps)`` is
    called through its pretraining when it is built now."""
    if cfg.model not in MINIWORLD_MODELS:
        return None
    from trainables.miniworld.build import build_world, world_config

    return build_world(world_config(cfg.model, cfg.world_seed, cfg.world_weights), progress=progress)


def model_source(cfg: TrainConfig, early: bool = False) -> tuple[str, str | None]:
    """(path or HF id, revision) of the base model, or of the early checkpoint when ``early``."""
    world = miniworld(cfg)
    if world is not None:
        return str(world.early_model_dir if early else world.base_model_dir), None
    if early:
        return cfg.checkpoint_model, cfg.checkpoint_revision
    return cfg.model, cfg.revision


def check_model_config(cfg: TrainConfig, source: str, revision: str | None) -> None:
    """Compare the model's config.json (no weights) with the config: family and number of blocks."""
    hf = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=False)
    if hf.model_type not in cfg.arch.model_types:
        raise ConfigError(f"config field 'architecture': {source} is a {hf.model_type!r} model, "
                          f"not one of {cfg.arch.model_types}; set architecture= accordingly")
    if hf.num_hidden_layers != cfg.num_layers:
        raise ConfigError(f"config field 'num_layers': {source} has {hf.num_hidden_layers} blocks, "
                          f"the config says {cfg.num_layers}; fix num_layers / target_layers / lora_layers")


def load_tokenizer(cfg: TrainConfig):
    source, revision = model_source(cfg)
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=False)
    if tokenizer.pad_token is None:  # EU / GPT-NeoX convention: pad = eos
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(cfg: TrainConfig, device: torch.device, early: bool = False) -> torch.nn.Module:
    source, revision = model_source(cfg, early=early)
    check_model_config(cfg, source, revision)
    model = AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=DTYPES[cfg.dtype],
                                                 trust_remote_code=False)
    return model.to(device)


def add_lora(model: torch.nn.Module, cfg: TrainConfig) -> PeftModel:
    """LoRA (r, alpha, dropout) on ``lora_target_modules`` of blocks ``lora_layers``.

    peft starts B at zero, so student == teacher at step 0, where both the cos remove loss and the KL
    retain loss have zero gradient: training then starts from float rounding noise, which differs between
    CPU kernels and machines. ``lora_init_std > 0`` draws B ~ N(0, std) from a generator seeded by ``seed``:
    the same small, deterministic push away from that stationary point on every machine.
    """
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
                      target_modules=list(cfg.lora_target_modules), layers_to_transform=list(cfg.lora_layers),
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    if cfg.lora_init_std > 0:
        generator = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
                    param.copy_(noise.to(param.dtype) * cfg.lora_init_std)
    return peft_model


def load_frozen(cfg: TrainConfig, device: torch.device, early: bool) -> torch.nn.Module:
    """A model with every parameter frozen, in eval mode (the early checkpoint, or a baseline copy)."""
    model = load_base_model(cfg, device, early=early)
    model.requires_grad_(False)
    return model.eval()


def load_adapter(base: torch.nn.Module, adapter_dir: str | Path) -> PeftModel:
    """Attach a saved LoRA adapter (safetensors) to an already loaded base model."""
    return PeftModel.from_pretrained(base, str(adapter_dir))
