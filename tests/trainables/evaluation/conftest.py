"""A tiny offline eval world: Hub-layout WMDP/MMLU data, a byte-level BPE tokenizer, a random 2-layer Llama.

    write_hub_root(root)  ->  root/cais/wmdp/{README.md, wmdp-bio/test.jsonl}
                              root/cais/mmlu/{README.md, <19 STEM subjects>/{test,dev}.jsonl}
                              (test: 3, 4 or 5 questions per subject, 75 in all; dev: 2 each)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from trainables.evaluation.tasks import TaskSet
from trainables.offline import OFFLINE_ENV

MMLU_STEM_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
    "college_computer_science", "college_mathematics", "college_physics", "computer_security",
    "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
    "high_school_chemistry", "high_school_computer_science", "high_school_mathematics", "high_school_physics",
    "high_school_statistics", "machine_learning",
)
WORDS = ("virus", "host", "cell", "enzyme", "vector", "sample", "field", "signal", "circuit", "matrix",
         "proton", "lattice", "gene", "toxin", "spore", "orbit", "charge", "prime", "graph", "kernel")


def _question(rng: random.Random, subject: str) -> dict[str, Any]:
    words = rng.sample(WORDS, 6)
    return {"question": f"Which {words[0]} binds the {words[1]} of {subject.replace('_', ' ')}?",
            "subject": subject, "choices": words[2:], "answer": rng.randrange(4)}


def _write_repo(repo: Path, files: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """``files`` = {config: {split: rows}} -> ``<config>/<split>.jsonl`` + README.md ``configs:``."""
    front = ["---", "configs:"]
    for config, splits in files.items():
        front += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            (repo / config).mkdir(parents=True, exist_ok=True)
            (repo / config / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            front += [f"  - split: {split}", f"    path: {config}/{split}.jsonl"]
    (repo / "README.md").write_text("\n".join(front + ["---", "", "Synthetic test data."]) + "\n")


def write_hub_root(root: Path, n_bio: int = 20, n_test: int = 3, n_dev: int = 2, seed: int = 0) -> Path:
    rng = random.Random(seed)

    def rows(subject: str, n: int) -> list[dict[str, Any]]:
        return [_question(rng, subject) for _ in range(n)]

    _write_repo(root / "cais" / "wmdp", {"wmdp-bio": {"test": rows("biology", n_bio)}})
    # unequal subject sizes (n_test + 0, 1, 2, ...): the group's size-weighted mean differs from the plain mean
    _write_repo(root / "cais" / "mmlu", {s: {"test": rows(s, n_test + i % 3), "dev": rows(s, n_dev)}
                                         for i, s in enumerate(MMLU_STEM_SUBJECTS)})
    return root


def build_tiny_lm(texts: list[str]) -> tuple[Any, Any]:
    """A byte-level BPE tokenizer (``<pad> <s> </s>``, no BOS added by default) and a random Llama on it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", model_max_length=512)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
                         initializer_range=0.5)  # large weights: BOS and LoRA change predictions
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="session")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hub_root(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="session")
def tiny_lm(hub_root: Path) -> tuple[Any, Any]:
    texts = [p.read_text() for p in sorted(hub_root.rglob("*.jsonl"))]
    return build_tiny_lm(texts)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_lm: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model and tokenizer saved with ``save_pretrained`` (what ``--model`` and the CLI load)."""
    model, tokenizer = tiny_lm
    out = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_peft(tiny_lm: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A LoRA ``PeftModel`` on a copy of the tiny model (random B: it changes outputs) + its saved dir."""
    import copy

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(copy.deepcopy(tiny_lm[0]), config).eval()
    out = tmp_path_factory.mktemp("tiny_adapter")
    peft_model.save_pretrained(out)
    return peft_model, out


@pytest.fixture(scope="session")
def task_set(hub_root: Path) -> Any:
    """``wmdp_bio`` + ``mmlu_stem`` on the synthetic data root (shadow YAMLs in ``<root>/.lmeval_tasks``)."""
    from trainables.evaluation.tasks import real_task_set

    return real_task_set(hub_root)


@pytest.fixture(scope="session")
def base_result(tiny_lm: tuple[Any, Any], task_set: Any) -> Any:
    from trainables.evaluation.stage import evaluate_model

    return evaluate_model(*tiny_lm, task_set, batch_size=16)


@pytest.fixture(scope="session")
def peft_result(tiny_lm: tuple[Any, Any], tiny_peft: tuple[Any, Path], task_set: Any) -> Any:
    from trainables.evaluation.stage import evaluate_model

    return evaluate_model(tiny_peft[0], tiny_lm[1], task_set, batch_size=16)


@pytest.fixture
def lm_eval_cli() -> Any:
    """``lm_eval run`` in a subprocess, offline, on a task set's include dir; returns its results JSON."""
    return run_lm_eval_cli


def run_lm_eval_cli(model_args: str, task_set: TaskSet, out: Path) -> dict[str, Any]:
    """``lm_eval run`` in a subprocess, offline, on the same shadow task dir; its results JSON."""
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", model_args,
           "--device", "cpu", "--batch_size", "16", "--tasks", ",".join(task_set.tasks),
           "--include_path", str(task_set.include_path), "--output_path", str(out)]
    proc = subprocess.run(cmd, cwd=out, env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(out.rglob("results_*.json")).read_text())
