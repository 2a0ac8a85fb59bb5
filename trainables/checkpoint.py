"""Training checkpoints, all tensors as safetensors (no pickles):

    <dir>/adapter/adapter_model.safetensors + adapter_config.json   (peft save_pretrained)
    <dir>/optimizer.safetensors                                       (flattened optimizer state tensors)
    <dir>/trainer_state.json                                          (step, param groups, scheduler, metrics)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file, save_file


def save_checkpoint(directory: Path, model: PeftModel, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, metrics: dict[str, Any]) -> None:
    model.save_pretrained(directory / "adapter", safe_serialization=True)
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{param_id}.{key}"] = value
    save_file(tensors, str(directory / "optimizer.safetensors"))
    trainer_state = {"step": step, "param_groups": state["param_groups"], "optimizer_scalars": scalars,
                     "scheduler": scheduler.state_dict(), "metrics": metrics}
    (directory / "trainer_state.json").write_text(json.dumps(trainer_state, default=float))


def load_checkpoint(directory: Path, model: PeftModel, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler) -> int:
    """Restore adapter weights, optimizer and scheduler in place; returns the step to continue from."""
    adapter = load_file(str(directory / "adapter" / "adapter_model.safetensors"))
    device = next(p.device for p in model.parameters() if p.requires_grad)
    set_peft_model_state_dict(model, {k: v.to(device) for k, v in adapter.items()})
    trainer_state = json.loads((directory / "trainer_state.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in load_file(str(directory / "optimizer.safetensors")).items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor.to(device)
    for name, value in trainer_state["optimizer_scalars"].items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": trainer_state["param_groups"]})
    scheduler.load_state_dict(trainer_state["scheduler"])
    return int(trainer_state["step"])
