"""Training data: local files, clear errors, tokenisation masks, and rank-disjoint micro-batches."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from trainables.config import DataSpec
from trainables.data import BatchSampler, DataError, load_texts, tokenize


def test_jsonl_fields_are_joined_and_txt_lines_read(tmp_path):
    path = tmp_path / "forget.jsonl"
    path.write_text("".join(json.dumps({"title": f"t{i}", "text": f"body {i}"}) + "\n" for i in range(5)))
    texts = load_texts(DataSpec(source="file", path=str(path), text_fields=("title", "text")), num_examples=3)
    assert texts == ["t0\n\nbody 0", "t1\n\nbody 1", "t2\n\nbody 2"]
    txt = tmp_path / "retain.txt"
    txt.write_text("a\n\nb\nc\n")
    assert load_texts(DataSpec(source="file", path=str(txt))) == ["a", "b", "c"]
    shuffled = load_texts(DataSpec(source="file", path=str(txt), shuffle_seed=42))
    assert sorted(shuffled) == ["a", "b", "c"]


def test_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_texts(DataSpec(source="file", path=str(tmp_path / "missing.jsonl")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: .*\['text'\]"):
        load_texts(DataSpec(source="file", path=str(bad)))


def test_local_hf_dataset_directory(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "train.jsonl").write_text("".join(json.dumps({"page": f"p{i}"}) + "\n" for i in range(4)))
    texts = load_texts(DataSpec(source="hf", path=str(tmp_path / "ds"), split="train", text_fields=("page",)))
    assert texts == ["p0", "p1", "p2", "p3"]
    with pytest.raises(DataError, match="no field"):
        load_texts(DataSpec(source="hf", path=str(tmp_path / "ds"), split="train", text_fields=("text",)))


def test_tokenize_masks_padding(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<pad>": 0, "a": 1, "b": 2, "[UNK]": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>").save_pretrained(tmp_path)
    tokenized = tokenize(["a b a", "b"], AutoTokenizer.from_pretrained(tmp_path), max_length=2)
    assert tokenized.input_ids.tolist() == [[1, 2], [2, 0]]
    assert tokenized.attention_mask.tolist() == [[1, 1], [1, 0]]


def test_micro_batches_are_disjoint_across_ranks_and_cover_each_epoch():
    sampler = BatchSampler(size=12, batch=3, seed=0)
    epoch = [i for micro_batch in range(4) for i in sampler.indices(micro_batch)]
    assert sorted(epoch) == list(range(12))
    assert sampler.indices(5) == BatchSampler(size=12, batch=3, seed=0).indices(5)
    assert sorted(sampler.indices(4) + sampler.indices(5) + sampler.indices(6) + sampler.indices(7)) == list(range(12))
