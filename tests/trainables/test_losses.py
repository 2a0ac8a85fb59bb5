"""Losses of docs/architecture.md#the-loss against independent float64 numpy references (the registered losses built on
them: ``test_objective.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.losses import (
    argmax_agreement,
    checkpoint_remove_loss,
    cos_remove_loss,
    kl_retain_loss,
    l2_retain_loss,
    masked_token_mean,
)

torch.set_num_threads(1)
B, T, V, D = 3, 7, 11, 5


# ---------- independent float64 references ----------


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def ref_kl(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> float:
    """T² · Σ_{b,t} m · Σ_v p_t (log p_t − log p_s) / Σ m, teacher‖student."""
    log_p_s = np_log_softmax(student.detach().double().numpy() / temperature)
    log_p_t = np_log_softmax(teacher.detach().double().numpy() / temperature)
    kl = (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(-1)
    m = mask.double().numpy()
    return temperature**2 * float((kl * m).sum() / m.sum())


def ref_masked_mean(values: np.ndarray, mask: torch.Tensor) -> float:
    m = mask.double().numpy()
    return float((values * m).sum() / m.sum())


def as_np(hiddens: list[torch.Tensor]) -> list[np.ndarray]:
    return [h.detach().double().numpy() for h in hiddens]


# ---------- fixtures ----------


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def padded_mask() -> torch.Tensor:
    """Right-padded attention mask: lengths 7, 4, 1."""
    return (torch.arange(T)[None, :] < torch.tensor([[7], [4], [1]])).long()


@pytest.fixture
def mask() -> torch.Tensor:
    return padded_mask()


@pytest.fixture
def logits(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sharp teacher vs. flat student, so KL(teacher‖student) and KL(student‖teacher) differ clearly."""
    teacher = 6.0 * torch.randn(B, T, V, generator=gen, dtype=torch.float64)
    student = (0.3 * torch.randn(B, T, V, generator=gen, dtype=torch.float64)).requires_grad_()
    return student, teacher


def hidden_pair(gen: torch.Generator, layers: int = 2) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    student = [
        torch.randn(B, T, D, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(layers)
    ]
    reference = [
        torch.randn(B, T, D, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(layers)
    ]
    return student, reference


def with_garbage_pads(x: torch.Tensor, mask: torch.Tensor, value: float) -> torch.Tensor:
    return torch.where(mask.bool()[..., None], x.detach(), value)


# ---------- masked_token_mean ----------


def test_masked_token_mean_matches_reference_and_ignores_pads(gen, mask):
    values = torch.randn(B, T, generator=gen, dtype=torch.float64)
    expected = ref_masked_mean(values.numpy(), mask)
    assert masked_token_mean(values, mask).item() == pytest.approx(expected, rel=1e-12)
    garbage = torch.where(mask.bool(), values, float("nan"))
    assert masked_token_mean(garbage, mask).item() == pytest.approx(expected, rel=1e-12)


# ---------- KL retain ----------


def test_kl_is_teacher_student_per_token_mean(logits, mask):
    student, teacher = logits
    expected, swapped = ref_kl(student, teacher, mask), ref_kl(teacher, student, mask)
    assert abs(expected - swapped) > 0.5 * expected  # the fixture really discriminates the direction
    assert kl_retain_loss(student, teacher, mask).item() == pytest.approx(expected, rel=1e-9)


def test_kl_pads_do_not_change_result(logits, mask):
    student, teacher = logits
    clean = kl_retain_loss(student, teacher, mask)
    dirty = kl_retain_loss(
        with_garbage_pads(student, mask, 1e4), with_garbage_pads(teacher, mask, -1e4), mask
    )
    assert dirty.item() == pytest.approx(clean.item(), rel=1e-12)


def test_kl_temperature_scaling(logits, mask):
    student, teacher = logits
    expected = ref_kl(student, teacher, mask, temperature=2.0)
    assert kl_retain_loss(student, teacher, mask, temperature=2.0).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, T, T + 5])
def test_kl_chunked_equals_unchunked(logits, mask, chunk_size):
    student, teacher = logits
    whole = kl_retain_loss(student, teacher, mask, chunk_size=10_000)
    (grad_whole,) = torch.autograd.grad(whole, student)
    chunked = kl_retain_loss(student, teacher, mask, chunk_size=chunk_size)
    (grad_chunked,) = torch.autograd.grad(chunked, student)
    assert chunked.item() == pytest.approx(whole.item(), rel=1e-12)
    torch.testing.assert_close(grad_chunked, grad_whole)


def test_kl_backward_keeps_only_views_of_the_logits(logits, mask):
    """Memory O(B·chunk·V): every vocab-sized tensor saved for backward is a view of an input."""
    student, teacher = logits[0].detach().float().requires_grad_(), logits[1].float()
    inputs = {student.untyped_storage().data_ptr(), teacher.untyped_storage().data_ptr()}
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda x: saved.append(x) or x, lambda x: x):
        kl_retain_loss(student, teacher, mask, chunk_size=2)
    vocab_sized = [x for x in saved if x.dim() == 3]
    assert vocab_sized and all(x.untyped_storage().data_ptr() in inputs for x in vocab_sized)


def test_kl_half_precision_is_computed_in_fp32(logits, mask):
    student, teacher = (x.detach().bfloat16() for x in logits)
    loss = kl_retain_loss(student, teacher, mask)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref_kl(student, teacher, mask), rel=1e-5)


def test_kl_gradient_reaches_student_only(logits, mask):
    student, teacher = logits
    teacher = teacher.clone().requires_grad_()
    kl_retain_loss(student, teacher, mask, chunk_size=2).backward()
    assert teacher.grad is None
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert (student.grad[~mask.bool()] == 0).all()


# ---------- remove losses ----------


def test_cos_remove_is_relu_of_masked_cosine(gen, mask):
    student, reference = hidden_pair(gen)
    cosines = [
        (h * h0).sum(-1) / (np.linalg.norm(h, axis=-1) * np.linalg.norm(h0, axis=-1))
        for h, h0 in zip(as_np(student), as_np(reference), strict=True)
    ]
    loss, cos_mean = cos_remove_loss(student, reference, mask)
    assert loss.item() == pytest.approx(np.mean([ref_masked_mean(np.maximum(c, 0), mask) for c in cosines]))
    assert cos_mean.item() == pytest.approx(np.mean([ref_masked_mean(c, mask) for c in cosines]))
    assert not cos_mean.requires_grad


@pytest.mark.parametrize(
    ("reference", "expected_loss", "expected_cos"),
    [
        ([0.0, 1.0], 0.0, 0.0),
        ([-2.0, 0.0], 0.0, -1.0),
        ([3.0, 0.0], 1.0, 1.0),
        ([1.0, 1.0], 0.5**0.5, 0.5**0.5),
    ],
    ids=["orthogonal", "opposite", "aligned", "45-degrees"],
)
def test_cos_remove_geometry(reference, expected_loss, expected_cos):
    student = torch.tensor([[[1.0, 0.0]]], requires_grad=True)
    loss, cos_mean = cos_remove_loss([student], [torch.tensor([[reference]])], torch.ones(1, 1))
    assert loss.item() == pytest.approx(expected_loss, abs=1e-6)
    assert cos_mean.item() == pytest.approx(expected_cos, abs=1e-6)


def test_checkpoint_remove_is_masked_mse(gen, mask):
    student, checkpoint = hidden_pair(gen, layers=3)
    expected = np.mean(
        [
            ref_masked_mean(((h - hc) ** 2).mean(-1), mask)
            for h, hc in zip(as_np(student), as_np(checkpoint), strict=True)
        ]
    )
    assert checkpoint_remove_loss(student, checkpoint, mask).item() == pytest.approx(expected, rel=1e-12)


def test_l2_retain_is_masked_unsquared_norm(gen, mask):
    student, reference = hidden_pair(gen)
    expected = np.mean(
        [
            ref_masked_mean(np.linalg.norm(h - h0, axis=-1), mask)
            for h, h0 in zip(as_np(student), as_np(reference), strict=True)
        ]
    )
    assert l2_retain_loss(student, reference, mask).item() == pytest.approx(expected, rel=1e-12)


def test_l2_retain_gradient_is_finite_when_student_equals_reference(gen, mask):
    reference = torch.randn(B, T, D, generator=gen)
    student = reference.clone().requires_grad_()
    l2_retain_loss([student], [reference], mask).backward()
    assert torch.isfinite(student.grad).all()


# ---------- edge cases and validation ----------


def test_argmax_agreement_matches_reference(gen, mask):
    student, reference = torch.randn(B, T, 4, generator=gen), torch.randn(B, T, 4, generator=gen)
    agree = (student.numpy().argmax(-1) == reference.numpy().argmax(-1)).astype(float)
    assert argmax_agreement(student, reference, mask).item() == pytest.approx(ref_masked_mean(agree, mask))
    assert argmax_agreement(student, student, mask).item() == 1.0


def test_shape_errors_are_clear(gen, logits, mask):
    student, reference = hidden_pair(gen)
    with pytest.raises(ValueError, match="one reference per student layer"):
        l2_retain_loss(student, reference[:1], mask)
    with pytest.raises(ValueError, match=r"\[B, T, D\]"):
        cos_remove_loss([student[0]], [reference[0][:, :-1]], mask)
    with pytest.raises(ValueError, match="mask has shape"):
        checkpoint_remove_loss(student, reference, mask[:, :-1])
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        kl_retain_loss(logits[0], logits[1][..., :-1], mask)
    with pytest.raises(ValueError, match="temperature"):
        kl_retain_loss(*logits, mask, temperature=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        kl_retain_loss(*logits, mask, chunk_size=0)

