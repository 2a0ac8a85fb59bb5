"""Forget / retain text sets: loading, truncation + padding masks, and per-rank sharding.

Sources (``DataSpec.source``): the mini-world's corpora, a local ``.txt`` (one example per line) or
``.jsonl`` file, or a HF dataset (id or local directory; ``HF_HUB_OFFLINE=1`` is honoured by
``datasets`` itself). Ranks read disjoint micro-batches of one seeded order (``BatchSampler``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.config import DataSpec


class DataError(ValueError):
    """Missing or malformed training data; the message names the file or dataset and the field."""


def load_texts(spec: DataSpec, num_examples: int = 0, miniworld_root: Path | None = None) -> list[str]:
    """The first ``num_examples`` texts (all when 0), after an optional seeded shuffle."""
    if spec.source == "miniworld":
        if miniworld_root is None:
            raise DataError("miniworld data requested but no mini-world was built")
        texts = _read_lines(miniworld_root / "corpus" / f"{spec.path}.txt")
    elif spec.source == "file":
        path = Path(spec.path)
        texts = _read_jsonl(path, spec.text_fields) if path.suffix == ".jsonl" else _read_lines(path)
    else:
        texts = _read_hf(spec)
    if spec.shuffle_seed is not None:
        random.Random(spec.shuffle_seed).shuffle(texts)
    texts = texts[:num_examples] if num_examples else texts
    if not texts:
        raise DataError(f"{spec.source} data {spec.path!r} has no examples")
    return texts


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: fix the path (forget.path / retain.path)")
    return [line for line in path.read_text().splitlines() if line.strip()]


def _read_jsonl(path: Path, text_fields: tuple[str, ...]) -> list[str]:
    texts = []
    for number, line in enumerate(_read_lines(path), 1):
        try:
            row = json.loads(line)
            texts.append("\n\n".join(str(row[f]) for f in text_fields))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}:{number}: needs JSON objects with field(s) {list(text_fields)} ({err!r})") \
                from None
    return texts


def _read_hf(spec: DataSpec) -> list[str]:
    import datasets

    try:
        ds = datasets.load_dataset(spec.path, spec.name, split=spec.split)
    except Exception as err:  # datasets raises many types for missing / gated / offline data
        raise DataError(f"HF dataset {spec.path!r} ({spec.name}, {spec.split}) could not be loaded: "
                        f"{type(err).__name__}: {err}. Download it or point the spec at a local copy.") from None
    missing = [f for f in spec.text_fields if f not in ds.column_names]
    if missing:
        raise DataError(f"HF dataset {spec.path!r} has no field(s) {missing}; columns: {ds.column_names}")
    return ["\n\n".join(str(row[f]) for f in spec.text_fields) for row in ds]


@dataclass
class TokenizedSet:
    """Right-padded ``input_ids`` [N, T] and ``attention_mask`` [N, T] (1 = real token)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[indices], self.attention_mask[indices]


def tokenize(texts: list[str], tokenizer, max_length: int) -> TokenizedSet:
    """Truncate to ``max_length`` tokens and right-pad to the longest example (pad = eos if missing)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    return TokenizedSet(enc["input_ids"], enc["attention_mask"])


class BatchSampler:
    """Seeded epochs over the whole set, cut into micro-batches of ``batch`` examples.

    Micro-batch ``j`` is positions ``[j*batch, (j+1)*batch)`` of the per-epoch shuffled order. At
    optimizer step t, accumulation index a, rank r reads ``j = (t*grad_accum + a)*world_size + r``, so
    ranks never overlap, resume is exact, and 1 worker x accum 2 sees the same batches as 2 workers.
    """

    def __init__(self, size: int, batch: int, seed: int):
        self.size, self.batch, self.seed = size, batch, seed

    def indices(self, micro_batch: int) -> list[int]:
        out = []
        for k in range(micro_batch * self.batch, (micro_batch + 1) * self.batch):
            epoch, pos = divmod(k, self.size)
            order = list(range(self.size))
            random.Random(self.seed * 100003 + epoch).shuffle(order)
            out.append(order[pos])
        return out
