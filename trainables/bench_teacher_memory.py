"""Peak memory of the teacher as disabled adapters versus a frozen second copy of the base model.

    python -m trainables.bench_teacher_memory [--hidden 1024 --layers 12 --vocab 32000 --batch 2 --seq 64
                                               --steps 3 --device cpu|cuda]

A randomly initialised ``LlamaForCausalLM`` (no downloads) gets peft LoRA (r=8 on q,k,v,o,gate,up,down) and
runs ``--steps`` AdamW steps of the real objective pieces on random tokens: ``--batch`` forget plus ``--batch``
retain sequences in one student forward, cos remove loss at 2 target layers (``capture_block_outputs``) plus
KL retain (``kl_retain_loss``). The teacher is either (a) ``disabled``: the same ``PeftModel`` under
``disable_adapter()`` + ``no_grad`` (what ``Unlearner._loss_step`` does), or (b) ``copy``: a frozen deep copy
of the base model (requires_grad False, eval) held alongside.

Each variant runs in its own fresh subprocess (``--variant``), so the peaks don't contaminate each other,
and prints one JSON line. Peak memory: on CPU the peak RSS (``ru_maxrss``), absolute and above the RSS
right after imports (before any model is built, so the copy counts), with ``MALLOC_MMAP_THRESHOLD_`` fixed
so glibc hands freed tensors back and RSS tracks live memory; on CUDA ``max_memory_allocated()`` and the
same above ``memory_allocated()`` after imports. The parent prints a Markdown table, the ratios
copy / disabled, and checks that both variants compute the same loss (same seed, same batches) at every step
(at step 0 LoRA B is zero, so student == teacher and the loss is exactly 1 = cos 1 + KL 0 in both; the
later steps, after optimizer updates, are the informative part). The defaults (~220M params, fp32) keep the
weights the largest item and a whole CPU run (both children, one thread each) under two minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from trainables import losses
from trainables.hooks import capture_block_outputs

VARIANTS = ("disabled", "copy")
SIZES = {"hidden": 1024, "layers": 12, "vocab": 32000, "batch": 2, "seq": 64, "steps": 3}
MIB = 2**20


def _memory(device: str, peak: bool) -> int:
    """Bytes: CUDA peak (or current) allocated memory; on CPU the peak RSS so far (≈ current right after imports)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _loss(model: PeftModel, teacher: torch.nn.Module | None, layers: list[int], f_ids: torch.Tensor,
          r_ids: torch.Tensor) -> torch.Tensor:
    """cos remove (forget half) + KL retain (retain half), as in ``Unlearner._loss_step`` with unit coefficients."""
    ids, n_f = torch.cat([f_ids, r_ids]), f_ids.shape[0]
    mask = torch.ones_like(ids)
    net = model if teacher is None else teacher
    adapters_off = model.disable_adapter() if teacher is None else contextlib.nullcontext()
    with torch.no_grad(), adapters_off, capture_block_outputs(net, layers) as held:
        model.eval()
        teacher_logits = net(input_ids=ids, attention_mask=mask).logits
        teacher_h = [held[layer][:n_f] for layer in layers]
    model.train()
    with capture_block_outputs(model, layers) as held:
        student_logits = model(input_ids=ids, attention_mask=mask).logits
        student_h = [held[layer][:n_f] for layer in layers]
    cb_loss, _ = losses.cos_remove_loss(student_h, teacher_h, mask[:n_f])
    return cb_loss + losses.kl_retain_loss(student_logits[n_f:], teacher_logits[n_f:], mask[n_f:])


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    """Build the model (and, for ``copy``, the frozen copy), train ``--steps`` steps, measure peak memory."""
    torch.set_num_threads(1)
    baseline = _memory(args.device, peak=False)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                         num_hidden_layers=args.layers, num_attention_heads=max(args.hidden // 64, 1),
                         vocab_size=args.vocab, max_position_embeddings=args.seq)
    with torch.device(args.device):
        base = LlamaForCausalLM(config)
    teacher = copy.deepcopy(base).requires_grad_(False).eval() if args.variant == "copy" else None
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(base, lora)
    held = [model] if teacher is None else [model, teacher]
    params = sum(p.numel() for net in held for p in net.parameters())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    layers = [args.layers // 3, 2 * args.layers // 3]
    batches = torch.Generator().manual_seed(1)
    step_losses, start = [], time.perf_counter()
    for _ in range(args.steps):
        f_ids, r_ids = torch.randint(args.vocab, (2, args.batch, args.seq), generator=batches).to(args.device)
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(model, teacher, layers, f_ids, r_ids)
        loss.backward()
        optimizer.step()
        step_losses.append(loss.item())
    seconds = (time.perf_counter() - start) / args.steps
    peak = _memory(args.device, peak=True)
    return {"variant": args.variant, "params": params, "peak": peak, "above": peak - baseline,
            "seconds_per_step": seconds, "losses": step_losses}


def _child(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    flags = [f"--{name}={getattr(args, name)}" for name in (*SIZES, "device")]
    command = [sys.executable, "-m", "trainables.bench_teacher_memory", f"--variant={variant}", *flags]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONWARNINGS": "ignore::FutureWarning"}
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(args: argparse.Namespace) -> None:
    """Run both variants in fresh subprocesses; print the table, the ratios and the loss check."""
    rows = {variant: _child(args, variant) for variant in VARIANTS}
    print(f"hidden={args.hidden} layers={args.layers} vocab={args.vocab} batch={args.batch}+{args.batch} "
          f"seq={args.seq} steps={args.steps} device={args.device}\n")
    peak_name = "peak allocated" if args.device == "cuda" else "peak RSS"
    print(f"| variant | params (M) | {peak_name} (MiB) | above baseline (MiB) | s/step |")
    print("|---|---:|---:|---:|---:|")
    for variant, row in rows.items():
        print(f"| {variant} | {row['params'] / 1e6:.1f} | {row['peak'] / MIB:.0f} | {row['above'] / MIB:.0f} "
              f"| {row['seconds_per_step']:.2f} |")
    disabled, copied = rows["disabled"], rows["copy"]
    print(f"\nratio copy / disabled: {peak_name} {copied['peak'] / disabled['peak']:.2f}x, "
          f"above baseline {copied['above'] / disabled['above']:.2f}x")
    gap = max(abs(a - b) for a, b in zip(disabled["losses"], copied["losses"], strict=True))
    same = gap <= 1e-5  # the losses are O(1)
    print(f"step-0 loss: disabled {disabled['losses'][0]:.6f}, copy {copied['losses'][0]:.6f}; all {args.steps} "
          f"step losses {'match' if same else 'DIFFER'} (max |diff| {gap:.1e}): {disabled['losses']}")
    if not same:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in SIZES.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--variant", choices=VARIANTS, help="internal: run one variant and print a JSON line")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)), flush=True)
    else:
        compare(args)


if __name__ == "__main__":
    main()
