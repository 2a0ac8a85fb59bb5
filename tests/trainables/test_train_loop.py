"""The unlearning loop in-process: metrics, checkpoint restore, the objective, the checkpoint variant, divergence,
lr schedules; under Ray: DDP equivalence and fault recovery."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from trainables import losses
from trainables.checkpoint import load_checkpoint
from trainables.hooks import capture_block_outputs
from trainables.losses import checkpoint_remove_loss
from trainables.model import load_frozen
from trainables.presets import load_preset
from trainables.schedules import coefficients
from trainables.train_loop import METRICS, Unlearner, run_in_process

SMALL = {"steps": 6, "log_every": 2, "per_device_batch": 8}


def test_in_process_reports_every_metric_checkpoints_and_times_its_phases(tmp_path):
    cfg = load_preset("miniworld-small", SMALL)
    start = time.perf_counter()
    final = run_in_process(cfg, out_dir=tmp_path, evaluate=False)
    wall = time.perf_counter() - start
    assert [h["step"] for h in final["history"]] == [2, 4, 6] and final["diverged"] == 0
    for row in final["history"]:
        assert set(METRICS) <= set(row) and all(math.isfinite(row[k]) for k in METRICS)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    phases = final["phase_seconds"]
    assert list(phases) == ["model_load", "lora_setup", "data", "checkpoint", "first_step", "steps", "report"]
    assert all(s >= 0 for s in phases.values()) and sum(phases.values()) <= wall


def _trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def test_checkpoint_restores_weights_optimizer_and_scheduler(tmp_path):
    """A fresh run that loads the checkpoint holds what the saving run held: LoRA weights, AdamW moments and
    step counts, the scheduler's position (linear decay after warmup) and the step to continue from."""
    cfg = load_preset("miniworld-small", {**SMALL, "lr_schedule": "linear", "warmup_steps": 2})
    run = Unlearner(cfg, in_ray=False, out_dir=tmp_path)
    run.setup()
    run.train()
    fresh = Unlearner(cfg, in_ray=False)
    fresh.setup()
    assert load_checkpoint(tmp_path, fresh.model, fresh.optimizer, fresh.scheduler) == 6
    trained, restored = _trainable(run.model), _trainable(fresh.model)
    assert [n for n, _ in trained] == [n for n, _ in restored]
    assert any(p.abs().sum() > 0 for n, p in trained if "lora_B" in n)  # training moved B off its zero init
    for (name, p_run), (_, p_fresh) in zip(trained, restored, strict=True):
        assert torch.equal(p_fresh, p_run), name
        saved, loaded = run.optimizer.state[p_run], fresh.optimizer.state[p_fresh]
        assert sorted(loaded) == sorted(saved) == ["exp_avg", "exp_avg_sq", "step"], name
        for key, value in saved.items():
            assert torch.equal(torch.as_tensor(loaded[key]), torch.as_tensor(value)), (name, key)
    assert fresh.scheduler.state_dict() == run.scheduler.state_dict()
    assert fresh.scheduler.last_epoch == 6 and fresh.scheduler.get_last_lr() == run.scheduler.get_last_lr()
    assert [g["lr"] for g in fresh.optimizer.param_groups] == [g["lr"] for g in run.optimizer.param_groups]


def _perturbed(cfg) -> Unlearner:
    """An Unlearner whose LoRA B is random, so student and teacher differ (KL, L2 > 0) from the first step."""
    unlearner = Unlearner(cfg, in_ray=False)
    unlearner.setup()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in unlearner.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)
    return unlearner


@pytest.mark.parametrize("overrides", [
    {"retain_l2": True, "beta_kl": 0.5, "schedule": "eleuther"},
    {"retain_l2": False, "beta_kl": 1.0, "schedule": "paper", "remove_variant": "checkpoint"},
], ids=["cos+l2+kl", "checkpoint+kl"])
def test_loss_is_the_documented_objective(overrides):
    """loss = c_rm * L_remove + c_ret * (retain_l2 * L_l2 + beta_kl * L_kl), c_* from the schedule."""
    cfg = load_preset("miniworld-small", {**SMALL, **overrides, "retain_coef": 3.0, "remove_coef": 2.0})
    unlearner = _perturbed(cfg)
    loss, m, _ = unlearner._loss_step(3, 0)
    c_rm, c_ret = coefficients(cfg.schedule, 3, unlearner.total_steps, 2.0, 3.0)
    kl_part = c_ret * cfg.beta_kl * m["retain_kl_loss"]
    assert m["cb_loss"] > 0 and m["retain_l2_loss"] > 0 and kl_part > 1e-4 * loss.item()  # >> the tolerance
    assert (m["coef_remove"], m["coef_retain"]) == pytest.approx((c_rm, c_ret))
    assert loss.item() == pytest.approx(c_rm * m["cb_loss"] + c_ret * (
        float(cfg.retain_l2) * m["retain_l2_loss"] + cfg.beta_kl * m["retain_kl_loss"]), rel=1e-6)


def _inline_objective(unlearner: Unlearner, step: int, micro_batch: int) -> tuple[torch.Tensor, dict[str, float]]:
    """The objective as ``_loss_step`` wrote it inline before the loss registry: same forwards, same formula."""
    cfg, layers = unlearner.cfg, list(unlearner.cfg.target_layers)
    f_ids, f_mask = unlearner.forget.batch(unlearner.forget_sampler.indices(micro_batch))
    r_ids, r_mask = unlearner.retain.batch(unlearner.retain_sampler.indices(micro_batch))
    width, pad = max(f_ids.shape[1], r_ids.shape[1]), unlearner.tokenizer.pad_token_id
    padded = [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)
              for t, v in ((f_ids, pad), (r_ids, pad), (f_mask, 0), (r_mask, 0))]
    ids, mask = torch.cat(padded[:2]), torch.cat(padded[2:])
    n_f = f_ids.shape[0]
    f_m, r_m = mask[:n_f], mask[n_f:]
    model = unlearner.model
    with torch.no_grad(), model.disable_adapter(), capture_block_outputs(model, layers) as held:
        model.eval()
        teacher_logits = model(input_ids=ids, attention_mask=mask).logits
        teacher_h = {k: v.detach() for k, v in held.items()}
    if unlearner.reference is not None:
        with torch.no_grad(), capture_block_outputs(unlearner.reference, layers) as held:
            reference_logits = unlearner.reference(input_ids=ids[:n_f], attention_mask=f_m).logits
            reference_h = [held[layer].detach() for layer in layers]
    else:
        reference_logits, reference_h = teacher_logits[:n_f], [teacher_h[layer][:n_f] for layer in layers]
    model.train()
    with capture_block_outputs(model, layers) as held:
        student_logits = model(input_ids=ids, attention_mask=mask).logits
        student_h = [held[layer] for layer in layers]
    if cfg.remove_variant == "cos":
        cb_loss, cos_sim = losses.cos_remove_loss([h[:n_f] for h in student_h], reference_h, f_m)
    else:
        cb_loss = losses.checkpoint_remove_loss([h[:n_f] for h in student_h], reference_h, f_m)
        _, cos_sim = losses.cos_remove_loss([h[:n_f].detach() for h in student_h],
                                            [teacher_h[layer][:n_f] for layer in layers], f_m)
    l2 = losses.l2_retain_loss([h[n_f:] for h in student_h], [teacher_h[layer][n_f:] for layer in layers], r_m)
    kl = losses.kl_retain_loss(student_logits[n_f:], teacher_logits[n_f:], r_m, cfg.kl_temperature,
                               cfg.kl_chunk_size)
    c_rm, c_ret = coefficients(cfg.schedule, step, unlearner.total_steps, cfg.remove_coef, cfg.retain_coef)
    loss = c_rm * cb_loss + c_ret * (float(cfg.retain_l2) * l2 + cfg.beta_kl * kl)
    metrics = {"loss": loss.item(), "cb_loss": cb_loss.item(), "retain_l2_loss": l2.item(),
               "retain_kl_loss": kl.item(), "cos_sim_mean": float(cos_sim),
               "retain_acc": float(losses.argmax_agreement(student_logits[n_f:], teacher_logits[n_f:], r_m)),
               "forget_acc": float(losses.argmax_agreement(student_logits[:n_f], reference_logits, f_m)),
               "coef_remove": c_rm, "coef_retain": c_ret}
    return loss, metrics


def _lora_grads(unlearner: Unlearner, loss: torch.Tensor) -> list[torch.Tensor]:
    unlearner.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for _, p in _trainable(unlearner.model)]


@pytest.mark.parametrize("overrides", [
    {"retain_l2": True, "beta_kl": 0.5, "schedule": "eleuther"},
    {"retain_l2": False, "beta_kl": 1.0, "schedule": "paper", "remove_variant": "checkpoint"},
], ids=["cos+l2+kl", "checkpoint+kl"])
def test_composed_loss_is_bit_identical_to_the_inline_formula(overrides):
    """The registry's composition changes no bit: same loss, metrics and LoRA gradients on a fixed batch."""
    cfg = load_preset("miniworld-small", {**SMALL, **overrides, "retain_coef": 3.0, "remove_coef": 2.0})
    unlearner = _perturbed(cfg)
    loss, metrics, _ = unlearner._loss_step(3, 1)
    grads = _lora_grads(unlearner, loss)
    inline_loss, inline_metrics = _inline_objective(unlearner, 3, 1)
    inline_grads = _lora_grads(unlearner, inline_loss)
    assert loss.item() > 0 and torch.equal(loss, inline_loss)
    assert metrics == inline_metrics
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(torch.equal(g, h) for g, h in zip(grads, inline_grads, strict=True))


def test_checkpoint_variant_removes_toward_the_early_checkpoint():
    """At peft's LoRA init (B = 0) the student is the base model: cb_loss is the masked MSE between the base
    model's and the early checkpoint's block outputs on the forget batch, computed here independently."""
    cfg = load_preset("miniworld-small", {**SMALL, "remove_variant": "checkpoint", "lora_init_std": 0})
    unlearner = Unlearner(cfg, in_ray=False)
    unlearner.setup()
    reference = unlearner.reference
    assert reference is not None and not reference.training
    assert not any(p.requires_grad for p in reference.parameters())
    ids, mask = unlearner.forget.batch(unlearner.forget_sampler.indices(0))
    layers = list(cfg.target_layers)
    hidden = []
    for early in (False, True):
        model = load_frozen(cfg, torch.device("cpu"), early=early)
        with torch.no_grad(), capture_block_outputs(model, layers) as held:
            model(input_ids=ids, attention_mask=mask)
        hidden.append([held[layer] for layer in layers])
    expected = checkpoint_remove_loss(hidden[0], hidden[1], mask).item()
    _, metrics, _ = unlearner._loss_step(0, 0)
    assert expected > 1e-3 and metrics["cb_loss"] == pytest.approx(expected, rel=1e-4)


def test_non_finite_loss_ends_the_run_as_diverged(monkeypatch):
    """A NaN at the third step: no optimizer step with it, a finite 'diverged' result, the last report kept."""
    real, calls = losses.kl_retain_loss, []

    def nan_from_the_third_call(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        return out * float("nan") if len(calls) >= 3 else out

    monkeypatch.setattr(losses, "kl_retain_loss", nan_from_the_third_call)
    unlearner = Unlearner(load_preset("miniworld-small", {**SMALL, "log_every": 1}), in_ray=False)
    unlearner.setup()
    final = unlearner.train()
    assert final["diverged"] == 1 and final["step"] == 2 and len(calls) == 3
    assert final["retain_kl_loss"] == 1e9 and all(math.isfinite(v) for v in final.values())
    assert [h["step"] for h in unlearner.history] == [1, 2, 2] and unlearner.history[-1]["diverged"] == 1
    assert all(torch.isfinite(p).all() for _, p in _trainable(unlearner.model))


@pytest.mark.parametrize(("schedule", "factor"), [
    ("constant", lambda k: min(1.0, k / 2)),
    ("linear", lambda k: k / 2 if k < 2 else (6 - k) / 4),
    ("cosine", lambda k: k / 2 if k < 2 else 0.5 * (1 + math.cos(math.pi * (k - 2) / 4))),
])
def test_lr_schedule_with_warmup(schedule, factor):
    """The lr after optimizer step k (1..6) with 2 warmup steps: transformers' schedules, ramp from 0."""
    cfg = load_preset("miniworld-small", {**SMALL, "log_every": 1, "lr": 1e-3, "lr_schedule": schedule,
                                          "warmup_steps": 2})
    unlearner = Unlearner(cfg, in_ray=False)
    unlearner.setup()
    unlearner.train()
    assert [h["lr"] for h in unlearner.history] == pytest.approx([1e-3 * factor(k) for k in range(1, 7)])


def test_without_remove_pressure_the_model_stays_put():
    """Near LoRA init KL is at its minimum: with remove_coef 0 the KL term holds the small seeded push of
    ``lora_init_std`` in place (KL ~ 0, cos ~ 1), while remove pressure reroutes the forget representations."""
    still = run_in_process(load_preset("miniworld-small", {**SMALL, "steps": 20, "remove_coef": 0}), evaluate=False)
    moved = run_in_process(load_preset("miniworld-small", {**SMALL, "steps": 20, "remove_coef": 20}), evaluate=False)
    assert still["retain_kl_loss"] < 1e-2 and still["cos_sim_mean"] > 0.99
    assert moved["cos_sim_mean"] < still["cos_sim_mean"] - 0.05


def _fit(cfg, storage: Path, name: str, workers: int, kill_after_checkpoint: bool = False):
    import ray

    from trainables.launch import make_trainer

    ray.init(ignore_reinit_error=True, dashboard_host="127.0.0.1", num_cpus=2,
             runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}})
    trainer = make_trainer(cfg, name=name, storage=storage, workers=workers, evaluate=False, max_failures=1)
    killed: list[int] = []
    if kill_after_checkpoint:
        watcher = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(storage / name, killed))
        watcher.start()
    result = trainer.fit()
    return result.return_value, killed


def _kill_a_worker_after_first_checkpoint(run_dir: Path, killed: list[int]) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and not list(run_dir.glob("checkpoint_*")):
        time.sleep(0.2)
    for proc in psutil.Process().children(recursive=True):  # this test's Ray, never another run's workers
        try:
            cmdline = proc.cmdline()
        except psutil.Error:  # gone meanwhile
            continue
        if any("RayTrainWorker" in part for part in cmdline):
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(proc.pid)
            return


@pytest.mark.slow
def test_two_workers_match_one_worker_with_the_same_global_batch(tmp_path):
    base = {"steps": 6, "log_every": 1, "per_device_batch": 8}
    one, _ = _fit(load_preset("miniworld-small", {**base, "grad_accum": 2}), tmp_path, "one", workers=1)
    two, _ = _fit(load_preset("miniworld-small", base), tmp_path, "two", workers=2)
    assert {"imports", "model_load", "first_step", "steps", "checkpoint"} <= set(two["phase_seconds"])
    assert two["wall_clock"][0] <= two["wall_clock"][1]  # the driver splits fit() with it (tuner trial phases)
    relative = [abs(a["loss"] - b["loss"]) / max(abs(a["loss"]), 1e-8)
                for a, b in zip(one["history"], two["history"], strict=True)]
    print(f"1 worker x accum 2 vs 2 workers: max relative loss difference {max(relative):.2e} over "
          f"{len(relative)} logged steps")
    assert [h["step"] for h in one["history"]] == [h["step"] for h in two["history"]]
    assert max(relative) <= 1e-3


@pytest.mark.slow
def test_killed_worker_resumes_from_checkpoint_with_the_same_result(tmp_path):
    cfg = load_preset("miniworld-small", {"steps": 12, "log_every": 2, "checkpoint_every": 4, "per_device_batch": 8})
    clean, _ = _fit(cfg, tmp_path, "clean", workers=1)
    faulty, killed = _fit(cfg, tmp_path, "faulty", workers=1, kill_after_checkpoint=True)
    assert killed, "no Train worker was found to kill"
    print(f"killed worker pid {killed[0]}; final clean vs resumed: "
          + ", ".join(f"{k} {clean[k]:.6g}/{faulty[k]:.6g}" for k in ("loss", "cb_loss", "retain_kl_loss")))
    for key in ("loss", "cb_loss", "retain_kl_loss", "retain_l2_loss", "forget_acc", "retain_acc"):
        assert faulty[key] == pytest.approx(clean[key], rel=1e-5, abs=1e-7), key
