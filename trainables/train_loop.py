"""The per-worker unlearning loop, for ``ray.train.torch.TorchTrainer`` (Train V2) or in-process.

    TorchTrainer(train_loop_per_worker, train_loop_config={"train": cfg.to_dict(), "evaluate": True}, ...)
    run_in_process(cfg)                                     # the same loop without Ray (debugging)

Each optimizer step: ``grad_accum`` micro-batches of forget + retain text, concatenated into ONE
student forward (DDP-safe) and one teacher forward under ``disable_adapter()`` + ``no_grad``:

    loss = c_rm * L_remove + c_ret * (retain_l2 * L_l2 + beta_kl * L_kl)    (c_* from the schedule)

composed by ``trainables.objective`` from the registered remove and retain losses.

Each run times its phases (``trainables.phases``) and returns them as ``phase_seconds``.

Every ``log_every`` steps the rank-averaged metrics are reported (with a safetensors checkpoint every
``checkpoint_every`` steps and at the end); a run resumes from ``ray.train.get_checkpoint()``. A
non-finite loss stops the run with a finite ``diverged`` result. Rank 0 evaluates the adapted model
with lm-eval where it sits (unless ``evaluate`` is false) and returns the final metrics.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import trainables
from trainables import losses
from trainables.checkpoint import load_checkpoint, save_checkpoint
from trainables.config import TrainConfig
from trainables.data import BatchSampler, load_texts, tokenize
from trainables.hooks import capture_block_outputs, unwrap_model
from trainables.model import add_lora, load_base_model, load_frozen, load_tokenizer, miniworld
from trainables.objective import Activations, objective, step_metrics
from trainables.phases import PhaseTimer
from trainables.schedules import coefficients

# This process's import of the loop and its libraries (transformers, peft): paid once, by its first Ray run.
_UNREPORTED_IMPORTS = {"imports": time.perf_counter() - trainables.IMPORTED_AT}

METRICS = (*step_metrics(), "coef_remove", "coef_retain", "lr", "tokens_per_s")  # per step


class Unlearner:
    """One worker's run: ``setup()`` then ``train()``; ``in_ray`` switches reporting and DDP."""

    def __init__(self, cfg: TrainConfig, in_ray: bool, out_dir: Path | None = None):
        self.cfg, self.in_ray, self.out_dir = cfg, in_ray, out_dir
        self.rank, self.world_size = 0, 1
        if in_ray:
            import ray.train

            ctx = ray.train.get_context()
            self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.history: list[dict[str, float]] = []
        self.timer = PhaseTimer()

    # --- set-up -------------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.device, timer = self._device(), self.timer
        with timer.phase("model_load"):
            self.tokenizer = load_tokenizer(cfg)
            base = load_base_model(cfg, self.device)
        with timer.phase("lora_setup"):
            self.model = add_lora(base, cfg)
            self.ddp_model = self._wrap_ddp(self.model)
        with timer.phase("model_load"):
            self.reference = load_frozen(cfg, self.device, early=True) if cfg.needs_checkpoint else None
        with timer.phase("data"):
            self._setup_data()
        with timer.phase("lora_setup"):
            self._setup_optimizer()
        with timer.phase("checkpoint"):
            self.start_step = self._maybe_resume()

    def _device(self) -> torch.device:
        if self.in_ray:
            import ray.train.torch

            return ray.train.torch.get_device()
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _wrap_ddp(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.in_ray and self.world_size > 1:
            import ray.train.torch

            return ray.train.torch.prepare_model(model, move_to_device=False)
        return model

    def _setup_data(self) -> None:
        cfg, world = self.cfg, miniworld(self.cfg)
        root = world.root if world else None
        self.forget = tokenize(load_texts(cfg.forget, cfg.num_examples, root), self.tokenizer, cfg.max_length)
        self.retain = tokenize(load_texts(cfg.retain, cfg.num_examples, root), self.tokenizer, cfg.max_length)
        self.forget_sampler = BatchSampler(len(self.forget), cfg.per_device_batch, cfg.seed)
        self.retain_sampler = BatchSampler(len(self.retain), cfg.per_device_batch, cfg.seed + 1)
        self.total_steps = cfg.total_steps(self.world_size, min(len(self.forget), len(self.retain)))

    def _setup_optimizer(self) -> None:
        from transformers import get_scheduler

        cfg = self.cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        name = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[cfg.lr_schedule]
        self.scheduler = get_scheduler(name, self.optimizer, num_warmup_steps=cfg.warmup_steps,
                                       num_training_steps=self.total_steps)

    def _maybe_resume(self) -> int:
        if not self.in_ray:
            return 0
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return 0
        with checkpoint.as_directory() as directory:
            return load_checkpoint(Path(directory), self.model, self.optimizer, self.scheduler)

    # --- one micro-batch -------------------------------------------------------------------------------
    def _loss_step(self, step: int, micro_batch: int) -> tuple[torch.Tensor, dict[str, float], int]:
        cfg, layers = self.cfg, list(self.cfg.target_layers)
        f_ids, f_mask = self.forget.batch(self.forget_sampler.indices(micro_batch))
        r_ids, r_mask = self.retain.batch(self.retain_sampler.indices(micro_batch))
        width = max(f_ids.shape[1], r_ids.shape[1])
        pad = self.tokenizer.pad_token_id
        ids = torch.cat([_pad(f_ids, width, pad), _pad(r_ids, width, pad)]).to(self.device)
        mask = torch.cat([_pad(f_mask, width, 0), _pad(r_mask, width, 0)]).to(self.device)
        n_f = f_ids.shape[0]
        f_m, r_m = mask[:n_f], mask[n_f:]

        with torch.no_grad(), self.model.disable_adapter(), capture_block_outputs(self.model, layers) as held:
            self.model.eval()
            teacher_logits = self.model(input_ids=ids, attention_mask=mask).logits
            teacher_h = {k: v.detach() for k, v in held.items()}
        if self.reference is not None:
            with torch.no_grad(), capture_block_outputs(self.reference, layers) as held:
                reference_logits = self.reference(input_ids=ids[:n_f], attention_mask=f_m).logits
                reference_h = [held[layer].detach() for layer in layers]
        else:
            reference_logits, reference_h = teacher_logits[:n_f], [teacher_h[layer][:n_f] for layer in layers]

        self.model.train()
        with capture_block_outputs(self.model, layers) as held:
            student_logits = self.ddp_model(input_ids=ids, attention_mask=mask).logits
            student_h = [held[layer] for layer in layers]

        forget = Activations([h[:n_f] for h in student_h], reference_h, student_logits[:n_f], reference_logits, f_m)
        retain = Activations([h[n_f:] for h in student_h], [teacher_h[layer][n_f:] for layer in layers],
                           student_logits[n_f:], teacher_logits[n_f:], r_m)
        c_rm, c_ret = coefficients(cfg.schedule, step, self.total_steps, cfg.remove_coef, cfg.retain_coef)
        loss, terms = objective(cfg, forget, retain, c_rm, c_ret)
        _, cos_sim = losses.cos_remove_loss([h.detach() for h in forget.hiddens],
                                            [teacher_h[layer][:n_f] for layer in layers], f_m)
        metrics = {"loss": loss.item(), **{name: value.item() for name, value in terms.items()},
                   "cos_sim_mean": float(cos_sim),
                   "retain_acc": float(losses.argmax_agreement(retain.logits, retain.reference_logits, r_m)),
                   "forget_acc": float(losses.argmax_agreement(forget.logits, forget.reference_logits, f_m)),
                   "coef_remove": c_rm, "coef_retain": c_ret}
        return loss, metrics, int(mask.sum())

    # --- the loop -------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        step, window = self.start_step, _Window()
        last: dict[str, float] = {}
        while step < self.total_steps:
            with self.timer.phase("first_step" if step == self.start_step else "steps"):
                stepped = self._optimizer_step(step, window)
            if not stepped:
                return self._finish(step, {**last, **_finite(window.means())}, diverged=True)
            step += 1
            if step % cfg.log_every == 0 or step == self.total_steps:
                save = step == self.total_steps or (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0)
                with self.timer.phase("checkpoint" if save else "report"):
                    last = {"step": step, "total_steps": self.total_steps, **self._all_ranks_mean(window.means()),
                            "tokens_per_s": window.tokens_per_s(self.world_size)}
                    self._report(last, save=save)
                window = _Window()
        return self._finish(step, last, diverged=False)

    def _optimizer_step(self, step: int, window: _Window) -> bool:
        """One update from ``grad_accum`` micro-batches; False (nothing updated) when any rank diverged."""
        accum = self.cfg.grad_accum
        self.optimizer.zero_grad(set_to_none=True)
        for a in range(accum):
            micro_batch = (step * accum + a) * self.world_size + self.rank
            sync = a == accum - 1 or not hasattr(self.ddp_model, "no_sync")
            with self.ddp_model.no_sync() if not sync else contextlib.nullcontext():
                loss, metrics, tokens = self._loss_step(step, micro_batch)
                if math.isfinite(loss.item()):
                    (loss / accum).backward()
            window.add(metrics, tokens)
        diverged = self._any_rank(not all(math.isfinite(v) for v in window.means().values()))
        grad_norm = float("nan") if diverged else float(torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], self.cfg.max_grad_norm))
        if diverged or not math.isfinite(grad_norm):
            return False
        self.optimizer.step()
        self.scheduler.step()
        window.extra(grad_norm=grad_norm, lr=self.scheduler.get_last_lr()[0])
        return True

    def _finish(self, step: int, last: dict[str, float], diverged: bool) -> dict[str, Any]:
        result: dict[str, Any] = {**last, "step": step, "diverged": int(diverged), "total_steps": self.total_steps}
        if diverged:
            self._report(result, save=False)
        return result

    # --- distributed helpers, reporting --------------------------------------------------------------------
    def _any_rank(self, flag: bool) -> bool:
        if self.world_size == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _all_ranks_mean(self, metrics: dict[str, float]) -> dict[str, float]:
        if self.world_size == 1:
            return metrics
        keys = sorted(metrics)
        t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    def _report(self, metrics: dict[str, float], save: bool) -> None:
        self.history.append(metrics)
        if not self.in_ray:
            print("  ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
            if save and self.out_dir:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                save_checkpoint(self.out_dir, self.model, self.optimizer, self.scheduler, int(metrics["step"]),
                                metrics)
            return
        import ray.train

        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if save and self.rank == 0:
                save_checkpoint(Path(tmp), self.model, self.optimizer, self.scheduler, int(metrics["step"]), metrics)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)


class _Window:
    """Running means of the micro-batch metrics between two reports, plus token throughput."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.fixed: dict[str, float] = {}
        self.count, self.tokens, self.start = 0, 0, time.perf_counter()

    def add(self, metrics: dict[str, float], tokens: int) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count, self.tokens = self.count + 1, self.tokens + tokens

    def extra(self, **values: float) -> None:
        self.fixed = values

    def means(self) -> dict[str, float]:
        return {**{k: v / max(self.count, 1) for k, v in self.sums.items()}, **self.fixed}

    def tokens_per_s(self, world_size: int) -> float:
        return self.tokens * world_size / max(time.perf_counter() - self.start, 1e-9)


def _pad(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: (v if math.isfinite(v) else 1e9) for k, v in metrics.items()}


def evaluate_adapted(unlearner: Unlearner) -> dict[str, Any]:
    """Score the adapted model in place (rank 0) with the preset's task set; returns EvalResult.to_dict()."""
    from trainables.evaluation.stage import evaluate_model
    from trainables.evaluation.tasks import task_set_for

    cfg = unlearner.cfg
    with unlearner.timer.phase("eval_tasks"):
        task_set = task_set_for(cfg)
    result = evaluate_model(unwrap_model(unlearner.model), unlearner.tokenizer, task_set,
                            batch_size=cfg.eval_batch_size, limit=cfg.eval_limit or None,
                            add_bos_token=cfg.add_bos_token, phases=unlearner.timer)
    return result.to_dict()


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train entry point: ``{"train": TrainConfig dict, "evaluate": bool}`` -> rank 0's final metrics.

    ``wall_clock``: (start, end) of this function in ``time.time()``, for the driver's worker_start / teardown.
    """
    started = time.time()
    torch.set_num_threads(int(os.environ.get("UNLEARN_TORCH_THREADS", "1")))
    unlearner = Unlearner(TrainConfig.from_dict(loop_config["train"]), in_ray=True)
    unlearner.timer.add("imports", _UNREPORTED_IMPORTS.pop("imports", 0.0))
    unlearner.setup()
    final = unlearner.train()
    if loop_config.get("evaluate", True) and not final["diverged"]:
        import ray.train

        with unlearner.timer.phase("report"):
            ray.train.report({"evaluating": 1})  # every rank reports; the controller marks the trial "evaluating"
        if unlearner.rank == 0:
            final["eval"] = evaluate_adapted(unlearner)
        if unlearner.world_size > 1:
            with unlearner.timer.phase("evaluation"):
                dist.barrier()
    return {**final, "history": unlearner.history, "phase_seconds": unlearner.timer.seconds,
            "wall_clock": [started, time.time()]}


def evaluate_base_per_worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train entry point for the baseline row: score the unadapted model (rank 0), no training."""
    from trainables.evaluation.stage import evaluate_model
    from trainables.evaluation.tasks import task_set_for

    started, timer = time.time(), PhaseTimer()
    timer.add("imports", _UNREPORTED_IMPORTS.pop("imports", 0.0))
    torch.set_num_threads(int(os.environ.get("UNLEARN_TORCH_THREADS", "1")))
    cfg = TrainConfig.from_dict(loop_config["train"])
    import ray.train.torch

    with timer.phase("model_load"):
        model, tokenizer = load_base_model(cfg, ray.train.torch.get_device()), load_tokenizer(cfg)
    with timer.phase("eval_tasks"):
        task_set = task_set_for(cfg)
    result = evaluate_model(model, tokenizer, task_set, batch_size=cfg.eval_batch_size,
                            limit=cfg.eval_limit or None, add_bos_token=cfg.add_bos_token, phases=timer)
    return {"eval": result.to_dict(), "phase_seconds": timer.seconds, "wall_clock": [started, time.time()]}


def run_in_process(cfg: TrainConfig, out_dir: Path | None = None, evaluate: bool = True) -> dict[str, Any]:
    """The same loop without Ray: one process, no DDP; saves the final checkpoint to ``out_dir``."""
    unlearner = Unlearner(cfg, in_ray=False, out_dir=out_dir)
    unlearner.setup()
    final = unlearner.train()
    if evaluate and not final["diverged"]:
        final["eval"] = evaluate_adapted(unlearner)
    return {**final, "history": unlearner.history, "phase_seconds": unlearner.timer.seconds}
