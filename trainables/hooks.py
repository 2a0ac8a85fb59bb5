"""Capture decoder-block outputs with forward hooks (docs/architecture.md#hidden-states).

Index convention (``LAYER_INDEX_CONVENTION``, for configs to record):
layer ``l`` is the OUTPUT of decoder block ``layers[l]`` (0-based), which equals
``output_hidden_states[l + 1]`` of a HF forward (``hidden_states[0]`` is the embeddings) — except
for the last block, whose ``hidden_states`` entry has the final norm applied; the hook returns the
pre-norm block output there too. Never use ``hidden_states[l]`` for layer ``l``: that is block l−1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

LAYER_INDEX_CONVENTION = "block_output"

# Where decoder blocks live inside a HF causal LM (Llama/Mistral/Qwen/..., GPT-NeoX, GPT-2 style).
_BLOCK_LIST_PATHS = ("model.layers", "gpt_neox.layers", "transformer.h")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip (Distributed)DataParallel ``.module`` and peft ``base_model.model`` wrappers."""
    while True:
        if isinstance(model, DataParallel | DistributedDataParallel):
            model = model.module
        elif hasattr(model, "get_base_model"):  # peft.PeftModel
            model = model.get_base_model()
        else:
            return model


def get_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ``nn.ModuleList`` of decoder blocks of a (possibly wrapped) HF causal LM."""
    inner = unwrap_model(model)
    for path in _BLOCK_LIST_PATHS:
        try:
            blocks = inner.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise ValueError(
        f"cannot find decoder blocks in {type(inner).__name__}; looked for {', '.join(_BLOCK_LIST_PATHS)}"
    )


def num_decoder_layers(model: nn.Module) -> int:
    """Number of decoder blocks (valid layer indices are 0 .. n−1)."""
    return len(get_decoder_layers(model))


@contextmanager
def capture_block_outputs(model: nn.Module, layers: Sequence[int]) -> Iterator[dict[int, Tensor]]:
    """Yield a dict ``layer -> [B, T, D]`` refreshed on every forward with block ``layers[l]``'s output.

    Tensors keep their autograd graph (not detached). Each forward overwrites the dict, so copy it
    (``dict(captured)``) before running another forward (e.g. teacher then student). Hooks are
    removed when the context exits, also on error.
    """
    blocks = get_decoder_layers(model)
    bad = [layer for layer in layers if not 0 <= layer < len(blocks)]
    if bad:
        raise ValueError(
            f"layer indices {bad} out of range: model has {len(blocks)} decoder blocks (0-based)"
        )

    captured: dict[int, Tensor] = {}

    def make_hook(layer: int):
        def hook(module: nn.Module, args: object, output: Tensor | tuple) -> None:
            captured[layer] = output[0] if isinstance(output, tuple) else output

        return hook

    handles = [blocks[layer].register_forward_hook(make_hook(layer)) for layer in layers]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()
