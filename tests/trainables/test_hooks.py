"""Forward hooks capture block l's output (= hidden_states[l + 1]) on tiny random HF models."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

from trainables.hooks import capture_block_outputs, get_decoder_layers, num_decoder_layers

torch.set_num_threads(1)
NUM_LAYERS = 4


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(config).eval()


def tiny_neox() -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=32,
    )
    return GPTNeoXForCausalLM(config).eval()


def lora(model: torch.nn.Module) -> torch.nn.Module:
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config).eval()


@pytest.fixture
def input_ids() -> torch.Tensor:
    return torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(0))


def manual_block_outputs(model: LlamaForCausalLM, input_ids: torch.Tensor) -> list[torch.Tensor]:
    """Independent reference: run the embeddings and each decoder block by hand."""
    inner = model.model
    hidden = inner.embed_tokens(input_ids)
    positions = torch.arange(input_ids.shape[1])[None]
    rotary = inner.rotary_emb(hidden, positions)
    outputs = []
    for block in inner.layers:
        out = block(hidden, position_embeddings=rotary, position_ids=positions)
        hidden = out[0] if isinstance(out, tuple) else out
        outputs.append(hidden)
    return outputs


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "peft-lora"])
def test_llama_block_l_is_hidden_states_l_plus_1(input_ids, wrap):
    base = tiny_llama()
    model = lora(base) if wrap else base
    layers = list(range(NUM_LAYERS))
    with torch.no_grad(), capture_block_outputs(model, layers) as captured:
        out = model(input_ids=input_ids, output_hidden_states=True)
    assert sorted(captured) == layers
    for layer in layers[:-1]:
        torch.testing.assert_close(captured[layer], out.hidden_states[layer + 1])
    # The last hidden_states entry is after the final norm; the hook gives the pre-norm block output.
    last = NUM_LAYERS - 1
    torch.testing.assert_close(base.model.norm(captured[last]), out.hidden_states[-1])


def test_llama_matches_manual_forward_through_blocks(input_ids):
    model = tiny_llama()
    with torch.no_grad(), capture_block_outputs(model, [1, NUM_LAYERS - 1]) as captured:
        model(input_ids=input_ids)
        reference = manual_block_outputs(model, input_ids)
    torch.testing.assert_close(captured[1], reference[1])
    torch.testing.assert_close(captured[NUM_LAYERS - 1], reference[-1])


def test_lora_changes_captured_outputs_and_keeps_grad(input_ids):
    model = lora(tiny_llama())
    with capture_block_outputs(model, [2]) as captured:
        model(input_ids=input_ids)
        student = captured[2]
        with torch.no_grad(), model.disable_adapter():
            model(input_ids=input_ids)
        teacher = captured[2]
    assert student.requires_grad and not teacher.requires_grad
    assert not torch.allclose(student, teacher)


def test_hooks_removed_after_exit_even_on_error(input_ids):
    model = lora(tiny_llama())
    blocks = get_decoder_layers(model)
    with pytest.raises(RuntimeError, match="boom"), capture_block_outputs(model, [0, 3]) as captured:
        assert all(len(blocks[i]._forward_hooks) == 1 for i in (0, 3))
        raise RuntimeError("boom")
    assert all(len(block._forward_hooks) == 0 for block in blocks)
    with torch.no_grad():
        model(input_ids=input_ids)
    assert captured == {}


def test_gpt_neox_lookup_and_capture(input_ids):
    model = tiny_neox()
    assert get_decoder_layers(model) is model.gpt_neox.layers
    assert num_decoder_layers(model) == 3
    with torch.no_grad(), capture_block_outputs(model, [0, 1]) as captured:
        out = model(input_ids=input_ids, output_hidden_states=True)
    for layer in (0, 1):
        torch.testing.assert_close(captured[layer], out.hidden_states[layer + 1])


def test_lookup_through_wrappers():
    base = tiny_llama()
    assert get_decoder_layers(lora(base)) is base.model.layers
    assert get_decoder_layers(torch.nn.DataParallel(base)) is base.model.layers
    assert num_decoder_layers(base) == NUM_LAYERS


def test_bad_layer_index_and_unknown_model():
    with pytest.raises(ValueError, match="out of range"), capture_block_outputs(tiny_llama(), [NUM_LAYERS]):
        pass
    with pytest.raises(ValueError, match="cannot find decoder blocks"):
        get_decoder_layers(torch.nn.Linear(2, 2))


def test_lora_init_std_is_a_seeded_push_away_from_the_adapters_off_model():
    """``lora_init_std``: B ~ N(0, std) from ``seed`` (same on every call); 0 keeps peft's zeros (output unchanged)."""
    from trainables.config import TrainConfig
    from trainables.model import add_lora

    def lora_b(cfg):
        model = add_lora(tiny_llama(), cfg)
        return model, torch.cat([p.flatten() for n, p in model.named_parameters() if "lora_B" in n])

    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    base = tiny_llama()(ids).logits
    zero_model, zero = lora_b(TrainConfig())
    assert torch.count_nonzero(zero) == 0 and torch.equal(zero_model(ids).logits, base)
    pushed_model, pushed = lora_b(TrainConfig(lora_init_std=1e-3, seed=3))
    assert pushed.std().item() == pytest.approx(1e-3, rel=0.1)
    assert torch.equal(pushed, lora_b(TrainConfig(lora_init_std=1e-3, seed=3))[1])
    assert not torch.equal(pushed, lora_b(TrainConfig(lora_init_std=1e-3, seed=4))[1])
    relative_change = ((pushed_model(ids).logits - base).norm() / base.norm()).item()
    assert 0 < relative_change < 0.1
