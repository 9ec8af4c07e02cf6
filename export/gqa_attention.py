"""Trace a transformers model's attention as onnxruntime's GroupQueryAttention, over a KV buffer kept in place.

    with gqa_tracing(model) as state:   # inside the traced forward: state.bind(past, seqlens_k, total)
        torch.onnx.export(...)

Every family's attention layer applies its own projections and rotary embeddings, then
calls `cache.update(key, value)` and the registered attention function. Here the cache
hands the new keys and values through unchanged, and the attention function becomes one
`com.microsoft.GroupQueryAttention` node. That operator writes the new entries into
`past_key` at each row's own length and attends over `seqlens_k + 1` entries. When the
caller binds `present` to the same buffer as `past` (onnxruntime I/O binding), nothing is
copied: the cache is written in place and never regrown per step (engine.kv_buffer).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

ATTENTION_NAME = "pointsman_gqa"
DOMAIN = "com.microsoft"


@dataclass
class GqaState:
    """What the traced attention layers read (past buffers, lengths) and write (present)."""

    past: list[torch.Tensor] = field(default_factory=list)  # key, value per layer: [B, KV, capacity, D]
    seqlens_k: torch.Tensor | None = None  # int32 [B]: each row's total length - 1
    total_length: torch.Tensor | None = None  # int32 [1]: the longest row's total length
    present: list[torch.Tensor] = field(default_factory=list)


_LOCAL = threading.local()


class _GroupQueryAttention(torch.autograd.Function):
    """Traces to one GroupQueryAttention node; the eager forward only gives tracing its shapes."""

    @staticmethod
    def forward(ctx, query, key, value, past_key, past_value, seqlens_k, total_length,
                num_heads: int, kv_heads: int, scale: float, window: int):
        return query.clone(), past_key.clone(), past_value.clone()

    @staticmethod
    def symbolic(g, query, key, value, past_key, past_value, seqlens_k, total_length,
                 num_heads: int, kv_heads: int, scale: float, window: int):
        out, present_key, present_value = g.op(
            f"{DOMAIN}::GroupQueryAttention", query, key, value, past_key, past_value, seqlens_k, total_length,
            num_heads_i=num_heads, kv_num_heads_i=kv_heads, scale_f=scale, local_window_size_i=window, outputs=3)
        out.setType(query.type())
        present_key.setType(past_key.type())
        present_value.setType(past_value.type())
        return out, present_key, present_value


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
               sliding_window=None, **kwargs):
    """The registered attention function: [B, H, S, D] query, [B, KV, S, D] new keys/values."""
    state: GqaState = _LOCAL.state
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    layer = module.layer_idx
    scale = float(scaling) if scaling is not None else dim ** -0.5
    # transformers' sliding window keeps the last `window` positions, the current one included;
    # GroupQueryAttention's local window counts the same positions
    window = int(sliding_window) if sliding_window else -1
    flat = [t.transpose(1, 2).reshape(batch, length, -1) for t in (query, key, value)]
    out, present_key, present_value = _GroupQueryAttention.apply(
        *flat, state.past[2 * layer], state.past[2 * layer + 1], state.seqlens_k, state.total_length,
        int(heads), int(kv_heads), scale, window)
    state.present += [present_key, present_value]
    return out.reshape(batch, length, heads, dim), None


def _new_only_cache():
    """A cache whose update hands the new keys/values straight to the attention function."""
    from transformers import DynamicCache

    class NewOnlyCache(DynamicCache):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            return key_states, value_states

        def get_seq_length(self, layer_idx: int = 0) -> int:
            return 0

    return NewOnlyCache()


def register() -> None:
    """Make `ATTENTION_NAME` a transformers attention implementation (masks: none, the operator masks)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _attention)


@contextlib.contextmanager
def gqa_tracing(model: torch.nn.Module) -> Iterator[GqaState]:
    """Switch `model` to the GroupQueryAttention implementation while the block runs."""
    register()
    previous = model.config._attn_implementation
    state = GqaState()
    _LOCAL.state = state
    model.set_attn_implementation(ATTENTION_NAME)
    try:
        yield state
    finally:
        model.set_attn_implementation(previous)
        _LOCAL.state = None


class GqaStepWrapper(torch.nn.Module):
    """Flat tensors in and out: ids, positions, lengths and the past buffers; logits and presents."""

    def __init__(self, model: torch.nn.Module, state: GqaState, layers: int) -> None:
        super().__init__()
        self.model = model
        self.state = state
        self.layers = layers

    def forward(self, input_ids, position_ids, seqlens_k, total_sequence_length, *past):
        self.state.past = list(past)
        self.state.seqlens_k = seqlens_k
        self.state.total_length = total_sequence_length
        self.state.present = []
        out = self.model(input_ids=input_ids, position_ids=position_ids, cache=_new_only_cache(), use_cache=True)
        if len(self.state.present) != 2 * self.layers:
            raise RuntimeError(f"{len(self.state.present) // 2} of {self.layers} attention layers went through "
                               "GroupQueryAttention: this family's attention does not use the attention interface")
        return (out.logits, *self.state.present)
