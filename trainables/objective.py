"""The training objective (docs/architecture.md#the-loss): remove and retain losses registered by name, and their sum.

    @remove_loss("cos")                       # selected by remove_variant="cos"; logged as cb_loss
    @retain_loss("kl", weight="beta_kl")      # always on, weighted by cfg.beta_kl; logged as retain_kl_loss
    loss, terms = objective(cfg, forget, retain, c_remove, c_retain)

    loss = c_remove · L_remove + c_retain · Σ_k w_k · L_k

A new loss is one registered function (plus its reference in tests/trainables/test_objective.py): the config
accepts its name, the objective adds it, the train loop logs it. This module imports no torch, so validating a
config (the CLIs' fail-fast checks) stays light: each loss imports its tensor math (``trainables.losses``) when
it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from trainables.config import TrainConfig


@dataclass(frozen=True)
class Activations:
    """One side of a micro-batch (forget or retain): the student's and its reference's block outputs (one
    ``[B, T, D]`` per target layer) and logits, and the ``[B, T]`` mask. The reference is the teacher
    (adapters off), or on the forget side of a ``needs_checkpoint`` remove loss the early checkpoint."""

    hiddens: list[Tensor]
    reference_hiddens: list[Tensor]
    logits: Tensor
    reference_logits: Tensor
    mask: Tensor


LossTerm = Callable[[Activations, "TrainConfig"], "Tensor"]


@dataclass(frozen=True)
class RemoveLoss:
    term: LossTerm
    needs_checkpoint: bool  # the forget side's reference is the early checkpoint (``checkpoint_model``)


@dataclass(frozen=True)
class RetainLoss:
    term: LossTerm
    weight: str  # the TrainConfig field w_k in the retain sum
    metric: str  # its per-step metric, retain_<name>_loss


REMOVE_LOSSES: dict[str, RemoveLoss] = {}
RETAIN_LOSSES: dict[str, RetainLoss] = {}
REMOVE_METRIC = "cb_loss"  # whichever remove loss runs; every loss metric ends in _loss (trainables.progress)


def remove_loss(name: str, *, needs_checkpoint: bool = False) -> Callable[[LossTerm], LossTerm]:
    """Register a remove loss under ``name``, the value ``remove_variant=name`` selects."""
    def register(term: LossTerm) -> LossTerm:
        _add(REMOVE_LOSSES, name, RemoveLoss(term, needs_checkpoint))
        return term
    return register


def retain_loss(name: str, *, weight: str) -> Callable[[LossTerm], LossTerm]:
    """Register a retain loss under ``name``: always computed, weighted by the config field ``weight``."""
    def register(term: LossTerm) -> LossTerm:
        _add(RETAIN_LOSSES, name, RetainLoss(term, weight, f"retain_{name}_loss"))
        return term
    return register


def _add(registry: dict, name: str, entry: RemoveLoss | RetainLoss) -> None:
    if name in registry:
        raise ValueError(f"loss {name!r} is already registered; give the new loss another name")
    registry[name] = entry


def loss_metrics() -> tuple[str, ...]:
    """The per-step loss metrics, remove first: ``("cb_loss", "retain_l2_loss", "retain_kl_loss")``."""
    return (REMOVE_METRIC, *(entry.metric for entry in RETAIN_LOSSES.values()))


def step_metrics() -> tuple[str, ...]:
    """What a training step measures, the losses first: the results table's training columns and the report's
    curves (the train loop reports these plus its schedule values)."""
    return ("loss", *loss_metrics(), "retain_acc", "forget_acc", "cos_sim_mean", "grad_norm")


@remove_loss("cos")
def remove_cos(forget: Activations, cfg: TrainConfig) -> Tensor:
    """Circuit breakers: L = mean_l masked_token_mean(ReLU(cos(h_l^θ, h_l^θ0))) on forget tokens."""
    from trainables.losses import cos_remove_loss

    return cos_remove_loss(forget.hiddens, forget.reference_hiddens, forget.mask)[0]


@remove_loss("checkpoint", needs_checkpoint=True)
def remove_checkpoint(forget: Activations, cfg: TrainConfig) -> Tensor:
    """Checkpoint transfer: L = mean_l masked_token_mean(mean_d (h_l^θ − h_l^ckpt)²) on forget tokens."""
    from trainables.losses import checkpoint_remove_loss

    return checkpoint_remove_loss(forget.hiddens, forget.reference_hiddens, forget.mask)


@retain_loss("l2", weight="retain_l2")
def retain_l2(retain: Activations, cfg: TrainConfig) -> Tensor:
    """L = mean_l masked_token_mean(‖h_l^θ − h_l^θ0‖₂) on retain tokens."""
    from trainables.losses import l2_retain_loss

    return l2_retain_loss(retain.hiddens, retain.reference_hiddens, retain.mask)


@retain_loss("kl", weight="beta_kl")
def retain_kl(retain: Activations, cfg: TrainConfig) -> Tensor:
    """L = T² · masked_token_mean(KL(softmax(z_θ0/T) ‖ softmax(z_θ/T))) on retain tokens, T = kl_temperature."""
    from trainables.losses import kl_retain_loss

    return kl_retain_loss(retain.logits, retain.reference_logits, retain.mask, cfg.kl_temperature,
                          cfg.kl_chunk_size)


def objective(cfg: TrainConfig, forget: Activations, retain: Activations, c_remove: float,
              c_retain: float) -> tuple[Tensor, dict[str, Tensor]]:
    """loss = c_remove · L_remove + c_retain · Σ_k w_k · L_k, and every term by its metric name.

    L_remove = REMOVE_LOSSES[cfg.remove_variant]; k runs over RETAIN_LOSSES, w_k = cfg.<its weight field>.
    """
    remove = REMOVE_LOSSES[cfg.remove_variant].term(forget, cfg)
    retained = {entry.metric: (float(getattr(cfg, entry.weight)), entry.term(retain, cfg))
                for entry in RETAIN_LOSSES.values()}
    loss = c_remove * remove + c_retain * sum(w * value for w, value in retained.values())
    return loss, {REMOVE_METRIC: remove, **{metric: value for metric, (_, value) in retained.items()}}
