"""One validated, JSON round-tripping config for a circuit-breaker + KL unlearning run.

    cfg = load_preset("miniworld", {"retain_coef": 5, "remove_coef": 5, "beta_kl": 0.3})
    cfg = TrainConfig.from_json(cfg.to_json())                     # round-trip

Objective (docs/architecture.md#the-loss), with s = step / steps and a_rm, a_ret from ``schedule``:
    loss = remove_coef*a_rm(s)*L_remove + retain_coef*a_ret(s)*(retain_l2*L_l2 + beta_kl*L_kl)
Layer indices mean decoder block l's output (forward hook on ``layers[l]`` = ``hidden_states[l+1]``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trainables.architectures import ARCHITECTURES, Architecture
from trainables.miniworld.build import WEIGHTS as WORLD_WEIGHTS  # mini-world weight sources
from trainables.objective import REMOVE_LOSSES

MINIWORLD_MODELS = ("miniworld", "miniworld-small")
SCHEDULES = ("eleuther", "paper", "constant")
LR_SCHEDULES = ("constant", "linear", "cosine")
DTYPES = ("float32", "bfloat16", "float16")
EVAL_TASK_SETS = ("miniworld", "real")


class ConfigError(ValueError):
    """An invalid config value; the message is one line naming the field and the fix."""


@dataclass(frozen=True)
class DataSpec:
    """Where forget/retain text comes from: the mini-world, a local .jsonl/.txt file, or a HF dataset.

    ``text_fields`` are joined with a blank line (the WMDP bio remove corpus: title, abstract, text).
    """

    source: str = "miniworld"          # miniworld | file | hf
    path: str = "forget"               # miniworld: forget|retain; file: a path; hf: a dataset id or local dir
    name: str | None = None            # hf config name
    split: str = "train"
    text_fields: tuple[str, ...] = ("text",)
    shuffle_seed: int | None = None    # None keeps the first N rows (EU's forget set); 42 for wikitext


@dataclass(frozen=True)
class TrainConfig:
    # --- model -----------------------------------------------------------------------------------------
    model: str = "miniworld"                  # miniworld | miniworld-small | HF id | local path
    world_seed: int = 0                       # mini-world models only: which seeded world (each cached apart)
    world_weights: str = "released"           # mini-world: released (same everywhere) | pretrain (train here)
    revision: str | None = None
    architecture: str = "llama"               # key of trainables.architectures.ARCHITECTURES
    num_layers: int = 4                       # the model's decoder blocks (checked against its config)
    dtype: str = "float32"
    # --- LoRA (peft) -------------------------------------------------------------------------------------
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj")
    lora_layers: tuple[int, ...] = (0, 1, 2)
    lora_init_std: float = 0.0                # lora_B ~ N(0, std) seeded by `seed`; 0 = peft's zeros
    # --- losses ------------------------------------------------------------------------------------------
    target_layers: tuple[int, ...] = (1, 2)   # block outputs the remove / L2 losses read
    remove_variant: str = "cos"               # a key of trainables.objective.REMOVE_LOSSES (cos, checkpoint)
    checkpoint_model: str = ""                # early checkpoint for remove_variant=checkpoint (mini-world: built)
    checkpoint_revision: str | None = None
    retain_l2: bool = True                    # l2_weight in {0, 1}
    retain_coef: float = 5.0
    remove_coef: float = 5.0
    beta_kl: float = 0.3
    kl_temperature: float = 1.0
    kl_chunk_size: int = 512                  # sequence positions per KL chunk: memory O(chunk * vocab)
    schedule: str = "eleuther"                # coefficient ramps a_rm(s), a_ret(s)
    # --- optimisation ------------------------------------------------------------------------------------
    lr: float = 1e-3
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    steps: int = 60                           # optimizer steps; 0 = epochs * num_examples / global batch
    epochs: int = 1
    per_device_batch: int = 32
    grad_accum: int = 1
    max_length: int = 32                      # tokens per example (truncated, right-padded)
    num_examples: int = 0                     # 0 = the whole forget / retain set
    seed: int = 0
    # --- data ----------------------------------------------------------------------------------------------
    forget: DataSpec = DataSpec(path="forget")
    retain: DataSpec = DataSpec(path="retain")
    # --- logging, checkpoints, evaluation -------------------------------------------------------------------
    log_every: int = 10                       # ray.train.report every k optimizer steps
    checkpoint_every: int = 0                 # 0 = only the final step
    eval_tasks: str = "miniworld"             # miniworld | real (wmdp_bio + mmlu_stem)
    eval_data_root: str = ""                  # local Hub-layout root for the real tasks ("" = Hub / HF cache)
    eval_batch_size: int = 32
    eval_limit: int = 0                       # 0 = all questions (smoke tests only)
    add_bos_token: bool = True                # the mini-world's models expect <s> first
    layer_index_convention: str = field(default="block_output", init=False)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def arch(self) -> Architecture:
        return ARCHITECTURES[self.architecture]

    @property
    def needs_checkpoint(self) -> bool:
        """The remove loss pulls toward the early checkpoint (``checkpoint_model``), loaded beside the model."""
        return REMOVE_LOSSES[self.remove_variant].needs_checkpoint

    def total_steps(self, world_size: int = 1, dataset_size: int | None = None) -> int:
        """``steps``, or ``epochs * examples / global batch`` (rounded down, at least 1)."""
        if self.steps:
            return self.steps
        examples = self.num_examples or dataset_size or 0
        return max(1, self.epochs * examples // (self.per_device_batch * self.grad_accum * world_size))

    # --- JSON round-trip ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("layer_index_convention")
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name: f for f in fields(cls) if f.init}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; valid fields: {sorted(known)}")
        kwargs = {k: _coerce(known[k].type, v, k) for k, v in d.items()}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """``{"retain_coef": "5", "forget.path": "x.jsonl"}`` -> a new validated config."""
        d = self.to_dict()
        for key, value in overrides.items():
            head, _, sub = key.partition(".")
            if sub:
                if head not in ("forget", "retain") or sub not in d[head]:
                    raise ConfigError(f"unknown config field {key!r}; nested fields: forget.<f>, retain.<f> "
                                      f"with <f> in {sorted(DataSpec.__dataclass_fields__)}")
                d[head] = {**d[head], sub: value}
            else:
                d[key] = value
        return TrainConfig.from_dict(d)


def _coerce(type_name: str, value: Any, name: str) -> Any:
    """Turn JSON / CLI strings into the field's type; errors name the field."""
    try:
        if type_name == "DataSpec":
            if isinstance(value, DataSpec):
                return value
            v = dict(value)
            for k in ("text_fields",):
                if k in v:
                    v[k] = tuple(v[k].split(",")) if isinstance(v[k], str) else tuple(v[k])
            for k in ("shuffle_seed",):
                if k in v and isinstance(v[k], str):
                    v[k] = None if v[k].lower() in ("", "none", "null") else int(v[k])
            return DataSpec(**v)
        if type_name.startswith("tuple[int"):
            items = value.split(",") if isinstance(value, str) else value
            return tuple(int(x) for x in items if str(x).strip() != "")
        if type_name.startswith("tuple[str"):
            return tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        if type_name == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
        if type_name == "str | None":
            return None if value in (None, "", "none", "None") else str(value)
        return value
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config field {name!r}: cannot read {value!r} as {type_name} ({err})") from None


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError (one line, naming the field) for the first invalid value. Loads nothing."""
    def need(ok: bool, name: str, message: str) -> None:
        if not ok:
            raise ConfigError(f"config field {name!r}: {message} (got {getattr(cfg, name, None)!r})")

    need(cfg.architecture in ARCHITECTURES, "architecture", f"must be one of {sorted(ARCHITECTURES)}")
    arch = cfg.arch
    for name in ("retain_coef", "remove_coef", "beta_kl", "lr", "lora_dropout", "weight_decay", "lora_init_std",
                 "world_seed"):
        need(getattr(cfg, name) >= 0, name, "must be >= 0")
    need(cfg.lora_dropout < 1, "lora_dropout", "must be < 1")
    need(cfg.kl_temperature > 0, "kl_temperature", "must be > 0")
    for name in ("lora_r", "lora_alpha", "kl_chunk_size", "per_device_batch", "grad_accum", "max_length",
                 "log_every", "eval_batch_size", "num_layers", "epochs", "max_grad_norm"):
        need(getattr(cfg, name) > 0, name, "must be > 0")
    need(cfg.max_length >= 2, "max_length", "must be >= 2 (BOS plus at least one text token)")
    for name in ("steps", "warmup_steps", "num_examples", "checkpoint_every", "eval_limit"):
        need(getattr(cfg, name) >= 0, name, "must be >= 0")
    need(cfg.dtype in DTYPES, "dtype", f"must be one of {DTYPES}")
    need(cfg.world_weights in WORLD_WEIGHTS, "world_weights", f"must be one of {WORLD_WEIGHTS}")
    need(cfg.remove_variant in REMOVE_LOSSES, "remove_variant", f"unknown remove loss; use one of "
         f"{sorted(REMOVE_LOSSES)}, or register a new one with @remove_loss in trainables/objective.py")
    need(not cfg.needs_checkpoint or bool(cfg.checkpoint_model) or cfg.model in MINIWORLD_MODELS,
         "checkpoint_model", f"remove_variant={cfg.remove_variant} needs the early checkpoint's HF id or path")
    need(cfg.schedule in SCHEDULES, "schedule", f"must be one of {SCHEDULES}")
    need(cfg.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {LR_SCHEDULES}")
    need(cfg.eval_tasks in EVAL_TASK_SETS, "eval_tasks", f"must be one of {EVAL_TASK_SETS}")
    need(cfg.eval_tasks != "miniworld" or cfg.model in MINIWORLD_MODELS, "eval_tasks",
         f"the miniworld task set needs model in {MINIWORLD_MODELS}")
    need(len(cfg.target_layers) > 0, "target_layers", "needs at least one layer")
    need(len(cfg.lora_layers) > 0, "lora_layers", "needs at least one layer")
    for name in ("target_layers", "lora_layers"):
        bad = [i for i in getattr(cfg, name) if not 0 <= i < cfg.num_layers]
        need(not bad, name, f"layer(s) {bad} do not exist: the model has blocks 0..{cfg.num_layers - 1}")
    bad = sorted(set(cfg.lora_target_modules) - set(arch.linear_modules))
    need(not bad, "lora_target_modules", f"{bad} not in {arch.name}'s modules {list(arch.linear_modules)}")
    for side in ("forget", "retain"):
        spec: DataSpec = getattr(cfg, side)
        need(spec.source in ("miniworld", "file", "hf"), side, "source must be miniworld, file or hf")
        need(spec.source != "miniworld" or cfg.model in MINIWORLD_MODELS, side,
             f"miniworld data needs model in {MINIWORLD_MODELS}")
        need(spec.source != "miniworld" or spec.path in ("forget", "retain"), side,
             "miniworld data path must be 'forget' or 'retain'")
        need(bool(spec.text_fields), side, "text_fields must name at least one field")
