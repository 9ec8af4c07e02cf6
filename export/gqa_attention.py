"""Trace a transformers model's attention as onnxruntime's GroupQueryAttention, over a KV buffer kept in place.

    with gqa_tracing(model) as state:   # inside the traced forward: state.bind(past, seqlens_k, total)
        torch.onnx.export(...)

Every family's attention layer applies its own projections and rotary embeddings, then
calls `cache.update(key, value)` and the registered attention function. Here the cache
hands the new keys and values through unchanged, and the attention function becomes one
`com.microsoft.GroupQueryAttention` node. For the rotary families (ROTARY_FAMILIES) the
family's `apply_rotary_pos_emb` is switched off while tracing and the operator rotates
instead (do_rotary), from cos/sin tables the family's own rotary module computes for
every served position: its scaling rules stay the family's, and the ~15 small nodes per
layer that rotate and reshape queries and keys leave the decoding step. That operator writes the new entries into
`past_key` at each row's own length and attends over `seqlens_k + 1` entries. When the
caller binds `present` to the same buffer as `past` (onnxruntime I/O binding), nothing is
copied: the cache is written in place and never regrown per step (engine.kv_buffer).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

ATTENTION_NAME = "pointsman_gqa"
DOMAIN = "com.microsoft"
# model_type -> (transformers module whose apply_rotary_pos_emb the attention calls, interleaved pairs).
# codegen rotates pairs (2i, 2i+1) (rotate_every_two); the others rotate halves (rotate_half).
ROTARY_FAMILIES = {
    "llama": ("transformers.models.llama.modeling_llama", False),
    "mistral": ("transformers.models.mistral.modeling_mistral", False),
    "qwen2": ("transformers.models.qwen2.modeling_qwen2", False),
    "phi3": ("transformers.models.phi3.modeling_phi3", False),
    "gpt_neox": ("transformers.models.gpt_neox.modeling_gpt_neox", False),
    "codegen": ("transformers.models.codegen.modeling_codegen", True),
}
ROTARY_TABLE_MULTIPLE = 8  # GroupQueryAttention: cos_cache width must be a multiple of 8 (<= head_size / 2)


@dataclass
class GqaState:
    """What the traced attention layers read (past buffers, lengths) and write (present)."""

    past: list[torch.Tensor] = field(default_factory=list)  # key, value per layer: [B, KV, capacity, D]
    seqlens_k: torch.Tensor | None = None  # int32 [B]: each row's total length - 1
    total_length: torch.Tensor | None = None  # int32 [1]: the longest row's total length
    present: list[torch.Tensor] = field(default_factory=list)
    position_ids: torch.Tensor | None = None  # int64 [B, S]: what the operator rotates by
    cos_cache: torch.Tensor | None = None  # [positions, rotary_dim / 2], None: the family rotates itself
    sin_cache: torch.Tensor | None = None
    interleaved: bool = False


_LOCAL = threading.local()


class _GroupQueryAttention(torch.autograd.Function):
    """Traces to one GroupQueryAttention node; the eager forward only gives tracing its shapes."""

    @staticmethod
    def forward(ctx, query, key, value, past_key, past_value, seqlens_k, total_length, cos, sin, position_ids,
                num_heads: int, kv_heads: int, scale: float, window: int, interleaved: int):
        return query.clone(), past_key.clone(), past_value.clone()

    @staticmethod
    def symbolic(g, query, key, value, past_key, past_value, seqlens_k, total_length, cos, sin, position_ids,
                 num_heads: int, kv_heads: int, scale: float, window: int, interleaved: int):
        rotary = [] if cos is None else [cos, sin, position_ids]
        out, present_key, present_value = g.op(
            f"{DOMAIN}::GroupQueryAttention", query, key, value, past_key, past_value, seqlens_k, total_length,
            *rotary, num_heads_i=num_heads, kv_num_heads_i=kv_heads, scale_f=scale, local_window_size_i=window,
            do_rotary_i=int(cos is not None), rotary_interleaved_i=interleaved, outputs=3)
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
        state.cos_cache, state.sin_cache, state.position_ids if state.cos_cache is not None else None,
        int(heads), int(kv_heads), scale, window, int(state.interleaved))
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


def rotary_tables(model: torch.nn.Module, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The cos and sin tables [positions, rotary_dim / 2] from the family's own rotary module (its scaling included)."""
    rotary = next(m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding"))
    ids = torch.arange(positions)[None, :]
    with torch.no_grad():
        first, second = rotary(torch.zeros(1, dtype=torch.float32), position_ids=ids)
    if model.config.model_type == "codegen":  # (sin, cos), each already rotary_dim / 2 wide
        return second[0].float(), first[0].float()
    half = first.shape[-1] // 2  # cat(freqs, freqs): the first half is the table
    return first[0, :, :half].float(), second[0, :, :half].float()


@contextlib.contextmanager
def _rotation_off(module_name: str) -> Iterator[None]:
    """The family's apply_rotary_pos_emb as the identity: the operator rotates instead."""
    module = importlib.import_module(module_name)
    original = module.apply_rotary_pos_emb
    if module_name.endswith("codegen"):
        module.apply_rotary_pos_emb = lambda tensor, sin, cos: tensor
    else:
        module.apply_rotary_pos_emb = lambda q, k, cos, sin, *args, **kwargs: (q, k)
    try:
        yield
    finally:
        module.apply_rotary_pos_emb = original


@contextlib.contextmanager
def gqa_tracing(model: torch.nn.Module, positions: int | None = None) -> Iterator[GqaState]:
    """Switch `model` to the GroupQueryAttention implementation while the block runs.

    positions: the served context; given for a rotary family, the operator rotates with
    tables of that many positions (ROTARY_FAMILIES), otherwise the traced family code does.
    """
    register()
    previous = model.config._attn_implementation
    state = GqaState()
    family = ROTARY_FAMILIES.get(model.config.model_type)
    rotation = contextlib.nullcontext()
    tables = rotary_tables(model, positions) if family is not None and positions else None
    # the operator takes tables rotary_dim / 2 wide in multiples of 8; a narrower (tiny) rotary stays traced
    if tables is not None and tables[0].shape[-1] % ROTARY_TABLE_MULTIPLE == 0:
        state.cos_cache, state.sin_cache = tables
        dtype = next(model.parameters()).dtype
        state.cos_cache, state.sin_cache = state.cos_cache.to(dtype), state.sin_cache.to(dtype)
        state.interleaved = family[1]
        rotation = _rotation_off(family[0])
    _LOCAL.state = state
    model.set_attn_implementation(ATTENTION_NAME)
    try:
        with rotation:
            yield state
    finally:
        model.set_attn_implementation(previous)
        _LOCAL.state = None


class GqaStepWrapper(torch.nn.Module):
    """Flat tensors in and out: ids, positions, lengths, logit positions and the past buffers; logits and presents."""

    def __init__(self, model: torch.nn.Module, state: GqaState, layers: int) -> None:
        super().__init__()
        self.model = model
        self.state = state
        self.layers = layers

    def forward(self, input_ids, position_ids, seqlens_k, total_sequence_length, logit_positions, *past):
        self.state.past = list(past)
        self.state.seqlens_k = seqlens_k
        self.state.total_length = total_sequence_length
        self.state.position_ids = position_ids
        self.state.present = []
        out = self.model(input_ids=input_ids, position_ids=position_ids, cache=_new_only_cache(), use_cache=True,
                         logits_to_keep=logit_positions)
        if len(self.state.present) != 2 * self.layers:
            raise RuntimeError(f"{len(self.state.present) // 2} of {self.layers} attention layers went through "
                               "GroupQueryAttention: this family's attention does not use the attention interface")
        return (out.logits, *self.state.present)
