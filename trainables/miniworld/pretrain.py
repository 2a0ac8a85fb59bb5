"""Tokenizer and two-stage pretraining of the mini-world's tiny Llama.

Stage 1 trains on the retain domain only -> the *early checkpoint* (ignorant of the forget domain, the
analog of deep-ignorance's pretraining-stage checkpoint). Stage 2 continues on both domains -> the
*base model* (the analog of deep-ignorance-unfiltered). Each step sums causal-LM losses over a mixture:
fact sentences (all tokens), question/answer documents and fresh multiple-choice documents in the exact
WMDP/MMLU letter format (answer tokens only).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    get_cosine_with_min_lr_schedule_with_warmup,
)

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with ``<s>`` prepended by the post-processor (like Llama's tokenizer)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   model_max_length=128, padding_side="right")


def new_model(tokenizer: PreTrainedTokenizerFast, hidden: int, layers: int, heads: int, intermediate: int,
              seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=128, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


def encode_pairs(tokenizer: PreTrainedTokenizerFast, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """(context, continuation) -> (ids of ``<s> context+continuation``, index where the loss starts)."""
    return [(tokenizer(c + a)["input_ids"], len(tokenizer(c)["input_ids"])) for c, a in pairs]


def lm_loss(model: LlamaForCausalLM, batch: Sequence[tuple[list[int], int]], pad_id: int) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens from each item's start index on (right-padded)."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    for row, (ids, start) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, start: len(ids)] = torch.tensor(ids[start:])
    return model(input_ids=input_ids, attention_mask=input_ids != pad_id, labels=labels).loss


Draw = Callable[[random.Random], list[tuple[list[int], int]]]  # one sub-batch of encoded documents


def pool_draw(items: Sequence[tuple[list[int], int]], n: int) -> Draw:
    """``n`` items sampled (without replacement) from a fixed pool each step."""
    return lambda rng: rng.sample(items, min(n, len(items)))


def fresh_draw(tokenizer: PreTrainedTokenizerFast, make: Callable[[random.Random], tuple[str, str]], n: int) -> Draw:
    """``n`` newly generated (context, continuation) documents each step (e.g. reshuffled MC items)."""
    return lambda rng: encode_pairs(tokenizer, [make(rng) for _ in range(n)])


def concat_draws(draws: Sequence[Draw]) -> Draw:
    """One sub-batch made of each draw's items, in order (e.g. one draw per domain)."""
    return lambda rng: [item for draw in draws for item in draw(rng)]


def pretrain(model: LlamaForCausalLM, mixture: dict[str, Draw], steps: int, lr: float, seed: int, pad_id: int,
             on_step: Callable[[int, float], None]) -> None:
    """AdamW (betas .9/.98, wd .01), warmup then cosine to 0, grad clip 1.0: the run ends converged.

    Every step draws one sub-batch per ``mixture`` entry (seeded) and sums their losses.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(optimizer, num_warmup_steps=min(50, steps // 10),
                                                           num_training_steps=steps, min_lr_rate=0.0)
    model.train()
    for step in range(steps):
        loss = sum(lm_loss(model, draw(rng), pad_id) for draw in mixture.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        on_step(step, loss.item())
    model.eval()
