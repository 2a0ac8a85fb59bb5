"""Every registered remove and retain loss: its formula against a float64 reference, the contract all of them
keep (pads ignored, gradients to the student only, empty masks, fp32 math), the objective that composes them,
config errors for unknown names, and registering a new one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.trainables.test_losses import (
    B,
    T,
    V,
    as_np,
    hidden_pair,
    padded_mask,
    ref_kl,
    ref_masked_mean,
    with_garbage_pads,
)
from trainables.config import ConfigError, TrainConfig
from trainables.losses import masked_token_mean
from trainables.objective import (
    REMOVE_LOSSES,
    RETAIN_LOSSES,
    Activations,
    loss_metrics,
    objective,
    remove_loss,
    retain_loss,
)

torch.set_num_threads(1)
MASK = padded_mask()


def ref_cosines(x: Activations) -> list[np.ndarray]:
    return [(h * h0).sum(-1) / (np.linalg.norm(h, axis=-1) * np.linalg.norm(h0, axis=-1))
            for h, h0 in zip(as_np(x.hiddens), as_np(x.reference_hiddens), strict=True)]


def ref_layer_mean(per_token, x: Activations) -> float:
    """mean_l masked mean of per_token(h_l, h_l^ref) over ``[B, T]``."""
    return float(np.mean([ref_masked_mean(per_token(h, h0), x.mask)
                          for h, h0 in zip(as_np(x.hiddens), as_np(x.reference_hiddens), strict=True)]))


REFERENCES = {  # (kind, name) -> float64 numpy value of its formula; a new registered loss adds its line here
    ("remove", "cos"): lambda x, cfg: float(np.mean([ref_masked_mean(np.maximum(c, 0), x.mask)
                                                     for c in ref_cosines(x)])),
    ("remove", "checkpoint"): lambda x, cfg: ref_layer_mean(lambda h, hc: ((h - hc) ** 2).mean(-1), x),
    ("retain", "l2"): lambda x, cfg: ref_layer_mean(lambda h, h0: np.linalg.norm(h - h0, axis=-1), x),
    ("retain", "kl"): lambda x, cfg: ref_kl(x.logits, x.reference_logits, x.mask, cfg.kl_temperature),
}
REGISTERED = [("remove", name) for name in REMOVE_LOSSES] + [("retain", name) for name in RETAIN_LOSSES]
CFG = TrainConfig(kl_temperature=2.0, kl_chunk_size=2)  # both reach the retain kl term


def term(kind: str, name: str):
    return (REMOVE_LOSSES if kind == "remove" else RETAIN_LOSSES)[name].term


def activations(seed: int = 0, mask: torch.Tensor = MASK, dtype=torch.float64) -> Activations:
    """Student (requires grad) and reference hidden states and logits; the reference requires grad too, so a
    loss that forgets to detach it shows up as a reference gradient."""
    gen = torch.Generator().manual_seed(seed)
    hiddens, reference_hiddens = hidden_pair(gen)
    logits = [(scale * torch.randn(B, T, V, generator=gen, dtype=torch.float64)).requires_grad_()
              for scale in (0.3, 6.0)]
    if dtype != torch.float64:
        hiddens, reference_hiddens = ([h.detach().to(dtype).requires_grad_() for h in hs]
                                      for hs in (hiddens, reference_hiddens))
        logits = [z.detach().to(dtype).requires_grad_() for z in logits]
    return Activations(hiddens, reference_hiddens, logits[0], logits[1], mask)


def leaves(x: Activations) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(student tensors, reference tensors)."""
    return [*x.hiddens, x.logits], [*x.reference_hiddens, x.reference_logits]


def test_every_registered_loss_has_a_reference_and_every_reference_a_loss():
    assert sorted(REFERENCES) == sorted(REGISTERED), "give each registered loss one float64 reference"


@pytest.mark.parametrize(("kind", "name"), REGISTERED)
def test_registered_loss_matches_its_formula(kind, name):
    x = activations()
    expected = REFERENCES[kind, name](x, CFG)
    assert expected > 0 and term(kind, name)(x, CFG).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("kind", "name"), REGISTERED)
def test_registered_loss_ignores_pads_and_trains_the_student_only(kind, name):
    x = activations()
    clean = term(kind, name)(x, CFG)
    garbage = Activations(x.hiddens, [with_garbage_pads(h, MASK, 1e6) for h in x.reference_hiddens], x.logits,
                          with_garbage_pads(x.reference_logits, MASK, -1e4), MASK)
    assert term(kind, name)(garbage, CFG).item() == pytest.approx(clean.item(), rel=1e-12)
    clean.backward()
    student, reference = leaves(x)
    assert all(t.grad is None for t in reference)
    grads = [t.grad for t in student if t.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all((g[~MASK.bool()] == 0).all() for g in grads)


@pytest.mark.parametrize(("kind", "name"), REGISTERED)
def test_registered_loss_on_an_empty_mask_is_zero_and_differentiable(kind, name):
    x = activations(mask=torch.zeros(B, T))
    loss = term(kind, name)(x, CFG)
    assert loss.item() == 0.0
    loss.backward()
    grads = [t.grad for t in leaves(x)[0] if t.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("kind", "name"), REGISTERED)
def test_registered_loss_computes_half_precision_in_fp32(kind, name):
    x = activations(dtype=torch.bfloat16)
    loss = term(kind, name)(x, CFG)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(REFERENCES[kind, name](x, CFG), rel=1e-5)


def test_retain_weights_are_config_fields_and_metrics_end_in_loss():
    fields = TrainConfig.__dataclass_fields__
    assert all(entry.weight in fields for entry in RETAIN_LOSSES.values())
    metrics = loss_metrics()
    assert len(set(metrics)) == len(metrics) == 1 + len(RETAIN_LOSSES)
    assert all(m.endswith("_loss") for m in metrics)


@pytest.mark.parametrize("variant", sorted(REMOVE_LOSSES))
def test_objective_composes_the_registered_losses(variant):
    """loss = c_rm · L_remove + c_ret · Σ_k w_k · L_k, with w_k read from each retain loss's config field."""
    cfg = TrainConfig(remove_variant=variant, retain_l2=True, beta_kl=0.3, kl_temperature=2.0)
    forget, retain = activations(0), activations(1)
    loss, terms = objective(cfg, forget, retain, 1.5, 4.0)
    assert list(terms) == list(loss_metrics())
    retained = sum(float(getattr(cfg, entry.weight)) * REFERENCES["retain", name](retain, cfg)
                   for name, entry in RETAIN_LOSSES.items())
    assert loss.item() == pytest.approx(1.5 * REFERENCES["remove", variant](forget, cfg) + 4.0 * retained, rel=1e-9)
    assert terms["retain_l2_loss"].item() > 0
    without_l2, _ = objective(cfg.with_overrides({"retain_l2": False}), forget, retain, 1.5, 4.0)
    assert without_l2.item() == pytest.approx(loss.item() - 4.0 * terms["retain_l2_loss"].item(), rel=1e-9)


def test_unknown_remove_loss_is_a_one_line_config_error_listing_the_registered_ones():
    with pytest.raises(ConfigError) as err:
        TrainConfig(remove_variant="npo")
    message = str(err.value)
    assert "remove_variant" in message and "'npo'" in message and "@remove_loss" in message and "\n" not in message
    assert all(repr(name) in message for name in REMOVE_LOSSES)


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="already registered"):
        remove_loss("cos")(REMOVE_LOSSES["checkpoint"].term)
    assert REMOVE_LOSSES["cos"].term.__name__ == "remove_cos"


@pytest.fixture
def scratch_registries():
    """Registries restored after the test, which may register losses of its own."""
    saved = dict(REMOVE_LOSSES), dict(RETAIN_LOSSES)
    yield
    for registry, entries in zip((REMOVE_LOSSES, RETAIN_LOSSES), saved, strict=True):
        registry.clear()
        registry.update(entries)


def test_a_new_loss_is_one_registered_function(scratch_registries):
    """Registering is all it takes: the config accepts the remove variant, the objective and metrics add it."""

    @remove_loss("toy")
    def remove_toy(forget: Activations, cfg: TrainConfig) -> torch.Tensor:
        """L = masked_token_mean(z_θ[..., 0])"""
        return masked_token_mean(forget.logits[..., 0], forget.mask)

    @retain_loss("toy", weight="retain_coef")
    def retain_toy(retain: Activations, cfg: TrainConfig) -> torch.Tensor:
        """L = masked_token_mean(z_θ[..., 1])"""
        return masked_token_mean(retain.logits[..., 1], retain.mask)

    cfg = TrainConfig(remove_variant="toy", beta_kl=0.0, retain_l2=False, retain_coef=2.0)
    assert TrainConfig.from_json(cfg.to_json()) == cfg and not cfg.needs_checkpoint
    forget, retain = activations(0), activations(1)
    loss, terms = objective(cfg, forget, retain, 1.0, 1.0)
    assert loss_metrics()[-1] == "retain_toy_loss" and set(terms) == set(loss_metrics())
    expected = ref_masked_mean(as_np([forget.logits[..., 0]])[0], MASK) + 2.0 * ref_masked_mean(
        as_np([retain.logits[..., 1]])[0], MASK)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
