"""Unlearning losses (docs/architecture.md#the-loss): pure functions over tensors and {0,1} token masks (registered by
name, and composed into the objective, in ``trainables.objective``).

Shapes: hidden states are lists (one entry per target layer) of ``[B, T, D]``; logits are
``[B, T, V]``; masks are ``[B, T]`` (bool, int or float; non-zero = counted token).
Half-precision inputs are promoted to fp32 before any arithmetic; fp64 inputs stay fp64.
Reference / teacher / checkpoint tensors are always detached: gradients reach the student only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

DEFAULT_KL_CHUNK_SIZE = 512


def _fp32(x: Tensor) -> Tensor:
    """Promote fp16/bf16 to fp32; leave fp32/fp64 unchanged."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_mask(mask: Tensor, batch_shape: torch.Size, what: str) -> None:
    if mask.shape != batch_shape:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}, expected [B, T] = {tuple(batch_shape)} ({what})"
        )


def _check_hidden_pair(student: list[Tensor], reference: list[Tensor], mask: Tensor) -> None:
    if len(student) == 0 or len(student) != len(reference):
        raise ValueError(f"need one reference per student layer, got {len(student)} and {len(reference)}")
    for i, (h, h0) in enumerate(zip(student, reference, strict=True)):
        if h.dim() != 3 or h.shape != h0.shape:
            raise ValueError(
                f"layer {i}: hidden states must both be [B, T, D], got {tuple(h.shape)} and {tuple(h0.shape)}"
            )
        _check_mask(mask, h.shape[:2], f"layer {i}")


def masked_token_mean(values: Tensor, mask: Tensor) -> Tensor:
    """sum(values * mask) / sum(mask) over ``[B, T]``; 0 (graph still connected) when the mask is empty.

    Masked-out positions are zeroed with ``where``, so garbage (even inf/NaN) there never leaks in.
    """
    _check_mask(mask, values.shape, "masked_token_mean")
    weights = mask.to(values.dtype)
    total = torch.where(mask != 0, values * weights, 0.0).sum()
    count = weights.sum()
    return total / torch.where(count > 0, count, 1.0)


def cos_remove_loss(
    student_hiddens: list[Tensor], reference_hiddens: list[Tensor], mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Circuit-breaker rerouting loss and the diagnostic ``cos_sim_mean``.

    L = mean_l masked_token_mean(ReLU(cos(h_l^θ[b,t], h_l^θ0[b,t])), mask)
    cos_sim_mean = mean_l masked_token_mean(cos(...), mask)   (detached, no ReLU)
    """
    _check_hidden_pair(student_hiddens, reference_hiddens, mask)
    losses, cosines = [], []
    for h, h0 in zip(student_hiddens, reference_hiddens, strict=True):
        cos = F.cosine_similarity(_fp32(h), _fp32(h0.detach()), dim=-1)
        losses.append(masked_token_mean(torch.relu(cos), mask))
        cosines.append(masked_token_mean(cos.detach(), mask))
    return torch.stack(losses).mean(), torch.stack(cosines).mean()


def checkpoint_remove_loss(
    student_hiddens: list[Tensor], checkpoint_hiddens: list[Tensor], mask: Tensor
) -> Tensor:
    """Checkpoint-transfer remove loss: L = mean_l masked_token_mean(mean_d (h_l^θ − h_l^ckpt)², mask)."""
    _check_hidden_pair(student_hiddens, checkpoint_hiddens, mask)
    per_layer = [
        masked_token_mean((_fp32(h) - _fp32(hc.detach())).pow(2).mean(-1), mask)
        for h, hc in zip(student_hiddens, checkpoint_hiddens, strict=True)
    ]
    return torch.stack(per_layer).mean()


def l2_retain_loss(student_hiddens: list[Tensor], reference_hiddens: list[Tensor], mask: Tensor) -> Tensor:
    """Representation retain loss: L = mean_l masked_token_mean(‖h_l^θ − h_l^θ0‖₂, mask) (norm, not squared).

    The gradient is finite (zero) where h^θ == h^θ0, e.g. at LoRA initialisation.
    """
    _check_hidden_pair(student_hiddens, reference_hiddens, mask)
    per_layer = [
        masked_token_mean(torch.linalg.vector_norm(_fp32(h) - _fp32(h0.detach()), dim=-1), mask)
        for h, h0 in zip(student_hiddens, reference_hiddens, strict=True)
    ]
    return torch.stack(per_layer).mean()


def _check_logit_pair(student_logits: Tensor, other_logits: Tensor, mask: Tensor) -> None:
    if student_logits.dim() != 3 or student_logits.shape != other_logits.shape:
        raise ValueError(
            "logits must both be [B, T, V], got "
            f"{tuple(student_logits.shape)} and {tuple(other_logits.shape)}"
        )
    _check_mask(mask, student_logits.shape[:2], "logits")


def _kl_per_token(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """kl[b,t] = KL(softmax(z_t/T) ‖ softmax(z_s/T)) = Σ_v p_t (log p_t − log p_s), in ≥fp32."""
    log_p_student = F.log_softmax(_fp32(student_logits) / temperature, dim=-1)
    log_p_teacher = F.log_softmax(_fp32(teacher_logits) / temperature, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="none").sum(-1)


def kl_retain_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    mask: Tensor,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_KL_CHUNK_SIZE,
) -> Tensor:
    """KL retain loss, teacher‖student, per-token mean (NOT ``batchmean``):

    L = T² · Σ_{b,t} m[b,t] · KL(softmax(z_θ0[b,t]/T) ‖ softmax(z_θ[b,t]/T)) / Σ m

    Computed over sequence chunks of ``chunk_size`` positions; with grad enabled each chunk is
    activation-checkpointed, so the extra memory is O(B · chunk_size · V) in forward and backward.
    """
    _check_logit_pair(student_logits, teacher_logits, mask)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    teacher_logits = teacher_logits.detach()
    weights = mask.to(torch.promote_types(student_logits.dtype, torch.float32))
    total = student_logits.new_zeros((), dtype=weights.dtype)
    for start in range(0, student_logits.shape[1], chunk_size):
        part = slice(start, start + chunk_size)
        z_s, z_t = student_logits[:, part], teacher_logits[:, part]
        if torch.is_grad_enabled() and z_s.requires_grad:
            kl = checkpoint(_kl_per_token, z_s, z_t, temperature, use_reentrant=False)
        else:
            kl = _kl_per_token(z_s, z_t, temperature)
        total = total + torch.where(mask[:, part] != 0, kl * weights[:, part], 0.0).sum()
    count = weights.sum()
    return temperature**2 * total / torch.where(count > 0, count, 1.0)


@torch.no_grad()
def argmax_agreement(student_logits: Tensor, reference_logits: Tensor, mask: Tensor) -> Tensor:
    """Fraction of masked tokens where argmax_v z_θ == argmax_v z_ref (``retain_acc`` / ``forget_acc``)."""
    _check_logit_pair(student_logits, reference_logits, mask)
    agree = (student_logits.argmax(-1) == reference_logits.argmax(-1)).float()
    return masked_token_mean(agree, mask)
