"""Export a decoder-only causal LM checkpoint to a one-step ONNX decoder.

    report = export_decoder(Path("build/checkpoints/tinyllama"), Path("model_repository/tinyllama/1"))
    report.max_abs_diff  # parity against PyTorch, refused above 1e-3

Two graph layouts (kv_cache):
- "inplace" (the default): input_ids, position_ids, seqlens_k, total_sequence_length,
  logit_positions (which positions get logits) and past_key_values.N.key/value, a
  preallocated buffer [batch, kv_heads, capacity, head_dim];
  each attention is onnxruntime's GroupQueryAttention, which writes the new entries into
  the buffer at each row's length (export.gqa_attention, engine.kv_buffer).
- "concat": input_ids, attention_mask, position_ids and the past; present = concat(past,
  new), so every step copies the cache (the layout before, kept as the benchmark baseline).
Both return logits and present.N.key/value, with dynamic batch and sequence axes. The key
and value tensors have the checkpoint's key/value heads (fewer than the query heads under
grouped-query attention); rotary embeddings, their scaling and tied or untied output
embeddings are traced from the transformers model itself (export.families says which).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from pointsman.export.families import LENGTH_DEPENDENT_ROPE, check_supported, context_length

LOGGER = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-3
ONNX_FILE = "model.onnx"
KV_CACHE_LAYOUTS = ("inplace", "concat")
# logit_positions: the positions whose logits the graph computes (the engine asks for the last one only,
# so a long prompt does not run the output projection over every position; scoring asks for all)
GQA_INPUTS = ["input_ids", "position_ids", "seqlens_k", "total_sequence_length", "logit_positions"]


class ParityError(RuntimeError):
    """The exported graph disagrees with PyTorch."""


@dataclass(frozen=True)
class ExportReport:
    onnx_path: Path
    layers: int
    kv_heads: int
    head_dim: int
    max_abs_diff: float
    max_abs_diff_step: float
    variant: str = "float32"  # float32 (exact), float16 or int8
    kv_cache: str = "inplace"  # KV_CACHE_LAYOUTS
    size_bytes: int = 0
    quality: dict[str, str] = field(default_factory=dict)  # a variant's figures against the float32 graph


class _StepWrapper(torch.nn.Module):
    """Flat tensors in and out, so the legacy exporter sees no Cache object."""

    def __init__(self, model: torch.nn.Module, layers: int) -> None:
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        # no config: full-length layers for every family. A sliding window (mistral, phi3)
        # is applied by the traced attention mask, never by dropping cache entries
        cache = DynamicCache()
        for layer in range(self.layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        # transformers 5 calls the past argument `cache` (it was past_key_values)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids, cache=cache, use_cache=True)
        present = getattr(out, "past_key_values", None) or out.cache
        flat = []
        for layer in present.layers:
            flat += [layer.keys, layer.values]
        return (out.logits, *flat)


def io_names(layers: int, kv_cache: str = "concat") -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    first = GQA_INPUTS if kv_cache == "inplace" else ["input_ids", "attention_mask", "position_ids"]
    return [*first, *past], ["logits", *present]


def load_model(checkpoint: Path) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(checkpoint)
    check_supported(config, checkpoint)
    # eager attention traces to plain ops and treats padded rows without NaNs; float32
    # whatever the checkpoint stores, so parity is checked at full precision
    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager", dtype=torch.float32)
    _freeze_length_dependent_rope(model)
    return model.eval()


def _freeze_length_dependent_rope(model: torch.nn.Module) -> None:
    """Keep dynamic and longrope rotary embeddings at their original-length frequencies.

    transformers switches them on the batch's longest position, in place on a buffer (no
    ONNX op traces that, and a sequence's output would depend on its neighbours). Export
    serves the context only up to the original length (families.context_length), where
    these frequencies are the ones transformers uses, so they are fixed here.
    """
    for module in model.modules():
        kind = getattr(module, "rope_type", None)
        if isinstance(kind, str) and any(k in kind for k in LENGTH_DEPENDENT_ROPE):
            module.inv_freq = module.original_inv_freq.clone()
            module.rope_type = f"{kind}-frozen-at-original-length"


def _left_padded_batch(vocab: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=(2, 7)).astype(np.int64)
    mask = np.ones((2, 7), np.int64)
    mask[0, :3] = 0  # first prompt is 4 tokens, left-padded to 7
    ids[0, :3] = 0
    positions = np.clip(mask.cumsum(-1) - 1, 0, None)
    return ids, mask, positions


@dataclass(frozen=True)
class ParityCase:
    """A left-padded prefill and one decode step, with PyTorch's answers."""

    ids: np.ndarray
    mask: np.ndarray
    positions: np.ndarray
    logits: np.ndarray
    past: list[np.ndarray]
    step_ids: np.ndarray
    step_mask: np.ndarray
    step_positions: np.ndarray
    step_logits: np.ndarray


def reference_case(model: torch.nn.Module) -> ParityCase:
    ids, mask, positions = _left_padded_batch(model.config.vocab_size)
    with torch.no_grad():  # reference computed before tracing touches the model
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    position_ids=torch.from_numpy(positions), use_cache=True)
        cache = ref.past_key_values
        past = [t.numpy().copy() for layer in cache.layers for t in (layer.keys, layer.values)]
        step_ids = np.array([[5], [9]], np.int64) % model.config.vocab_size
        step_mask = np.concatenate([mask, np.ones((2, 1), np.int64)], axis=1)
        step_pos = positions[:, -1:] + 1
        step = model(input_ids=torch.from_numpy(step_ids), attention_mask=torch.from_numpy(step_mask),
                     position_ids=torch.from_numpy(step_pos), cache=cache, use_cache=True).logits.numpy()
    return ParityCase(ids, mask, positions, ref.logits.numpy(), past, step_ids, step_mask, step_pos, step)


def export_decoder(checkpoint: Path, out_dir: Path, opset: int = 17, dtype: str = "float32",
                   quantize: str | None = None, kv_cache: str = "inplace") -> ExportReport:
    """Write out_dir/model.onnx and check it against PyTorch; raise ParityError if off.

    dtype "float16" traces the half-precision model (for GPUs) and checks it against the
    float32 reference with export.precision's own tolerance. quantize "int8" exports the
    exact float32 graph first, quantises it and holds it to a perplexity limit.
    """
    from pointsman.export import precision

    precision.check_variant(dtype, quantize)
    if kv_cache not in KV_CACHE_LAYOUTS:
        raise ValueError(f"--kv-cache must be one of {', '.join(KV_CACHE_LAYOUTS)} (got {kv_cache!r})")
    model = load_model(checkpoint)
    case = reference_case(model)
    if quantize is None:
        report = trace_and_check(model, case, out_dir / ONNX_FILE, checkpoint, opset, dtype, kv_cache)
        return replace(report, variant=dtype, size_bytes=precision.model_bytes(report.onnx_path))
    ids = precision.evaluation_ids(model, int(case.ids[1, 0]))
    exact = trace_and_check(model, case, out_dir / "exact" / ONNX_FILE, checkpoint, opset, kv_cache=kv_cache)
    target = out_dir / ONNX_FILE
    precision.quantize_int8(exact.onnx_path, target)
    quality = precision.compare(exact.onnx_path, target, ids)
    exact_bytes = precision.model_bytes(exact.onnx_path)
    for path in exact.onnx_path.parent.iterdir():
        path.unlink()
    exact.onnx_path.parent.rmdir()
    if quality.perplexity_ratio > precision.INT8_MAX_PERPLEXITY_RATIO:
        target.unlink()
        raise precision.QualityError(
            f"{checkpoint}: int8 perplexity is {quality.perplexity_ratio:.3f}x the float32 graph's "
            f"(> {precision.INT8_MAX_PERPLEXITY_RATIO}); model not written")
    size = precision.model_bytes(target)
    record = {**quality.as_record("int8"), "float32_bytes": str(exact_bytes)}
    return replace(exact, onnx_path=target, variant="int8", size_bytes=size, quality=record)


def trace_and_check(model: torch.nn.Module, case: ParityCase, onnx_path: Path, checkpoint: Path | str,
                    opset: int = 17, dtype: str = "float32", kv_cache: str = "inplace") -> ExportReport:
    """Trace `model` to onnx_path and hold it to the parity limit of its dtype."""
    from pointsman.export.graph_passes import optimize_graph
    from pointsman.export.precision import tolerance

    layers = len(case.past) // 2
    _, kv_heads, _, head_dim = case.past[0].shape  # key/value heads: fewer than heads under GQA
    torch_dtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    model = model.to(torch_dtype)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    if kv_cache == "inplace":
        _trace_in_place(model, layers, int(kv_heads), int(head_dim), torch_dtype, onnx_path, opset)
        optimize_graph(onnx_path)  # fusions and shape folding; parity below is checked on the result
        diff, diff_step = parity_in_place(onnx_path, case)
    else:
        _trace_concat(model, case, layers, int(kv_heads), int(head_dim), torch_dtype, onnx_path, opset)
        diff, diff_step = parity(onnx_path, case)
    report = ExportReport(onnx_path, layers, int(kv_heads), int(head_dim), diff, diff_step, kv_cache=kv_cache)
    limit = PARITY_TOLERANCE if dtype == "float32" else tolerance(dtype, case)
    if max(diff, diff_step) > limit:
        onnx_path.unlink()
        raise ParityError(f"{checkpoint}: {dtype} ONNX differs from PyTorch by {max(diff, diff_step):.2e} "
                          f"(> {limit:.1e}); model not written")
    return report


def _trace_in_place(model: torch.nn.Module, layers: int, kv_heads: int, head_dim: int, torch_dtype,
                    onnx_path: Path, opset: int) -> None:
    from pointsman.export.gqa_attention import DOMAIN, GqaStepWrapper, gqa_tracing

    in_names, out_names = io_names(layers, "inplace")
    capacity = 16
    dummy = (torch.zeros(1, 5, dtype=torch.int64), torch.arange(5)[None, :], torch.tensor([4], dtype=torch.int32),
             torch.tensor([5], dtype=torch.int32), torch.tensor([4], dtype=torch.int64),
             *[torch.zeros(1, kv_heads, capacity, head_dim, dtype=torch_dtype) for _ in range(2 * layers)])
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "position_ids": {0: "batch", 1: "sequence"},
            "seqlens_k": {0: "batch"}, "logit_positions": {0: "kept"}, "logits": {0: "batch", 1: "kept"}}
    axes.update({n: {0: "batch", 2: "capacity"} for n in in_names[len(GQA_INPUTS):] + out_names[1:]})
    with gqa_tracing(model, context_length(model.config)) as state, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(GqaStepWrapper(model, state, layers), dummy, str(onnx_path), input_names=in_names,
                          output_names=out_names, dynamic_axes=axes, opset_version=opset, dynamo=False,
                          custom_opsets={DOMAIN: 1})


def _trace_concat(model: torch.nn.Module, case: ParityCase, layers: int, kv_heads: int, head_dim: int,
                  torch_dtype, onnx_path: Path, opset: int) -> None:
    in_names, out_names = io_names(layers, "concat")
    dummy_past = [torch.zeros(2, kv_heads, 3, head_dim, dtype=torch_dtype) for _ in range(2 * layers)]
    dummy = (torch.from_numpy(case.ids), torch.ones(2, 10, dtype=torch.int64),
             torch.from_numpy(case.positions), *dummy_past)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "position_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "total_sequence"}, "logits": {0: "batch", 1: "sequence"}}
    axes.update({n: {0: "batch", 2: "past_sequence"} for n in in_names[3:]})
    axes.update({n: {0: "batch", 2: "total_sequence"} for n in out_names[1:]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_StepWrapper(model, layers), dummy, str(onnx_path), input_names=in_names,
                          output_names=out_names, dynamic_axes=axes, opset_version=opset, dynamo=False)


def parity(onnx_path: Path, case: ParityCase) -> tuple[float, float]:
    """Max |logit difference| of the graph against PyTorch: (left-padded prefill, decode step)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    past_names = [i.name for i in session.get_inputs()][3:]
    dtype = np.float16 if session.get_inputs()[3].type == "tensor(float16)" else np.float32
    shape = case.past[0].shape
    empty = np.zeros((shape[0], shape[1], 0, shape[3]), dtype)
    feeds = {"input_ids": case.ids, "attention_mask": case.mask, "position_ids": case.positions}
    feeds.update({n: empty for n in past_names})
    logits = session.run(None, feeds)[0].astype(np.float32)
    real = case.mask.astype(bool)  # padded positions carry no meaning
    diff = float(np.abs(logits - case.logits)[real].max())
    feeds = {"input_ids": case.step_ids, "attention_mask": case.step_mask, "position_ids": case.step_positions}
    feeds.update({n: p.astype(dtype) for n, p in zip(past_names, case.past, strict=True)})
    step_logits = session.run(None, feeds)[0].astype(np.float32)
    return diff, float(np.abs(step_logits - case.step_logits).max())


def parity_in_place(onnx_path: Path, case: ParityCase) -> tuple[float, float]:
    """parity() for the in-place graph: each prompt prefilled into its buffer row, then one batched step.

    GroupQueryAttention needs no padding: rows keep their own lengths (seqlens_k), which is
    what the engine feeds. The buffers are plain inputs here (present comes back as a copy).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    past_names = [i.name for i in session.get_inputs()][len(GQA_INPUTS):]
    dtype = np.float16 if session.get_inputs()[len(GQA_INPUTS)].type == "tensor(float16)" else np.float32
    batch, kv_heads, _, head_dim = case.past[0].shape
    lengths = case.mask.sum(axis=1)
    buffers = [np.zeros((batch, kv_heads, int(lengths.max()) + 1, head_dim), dtype) for _ in past_names]
    diff = 0.0
    for row, n in enumerate(lengths):
        real = case.mask[row].astype(bool)
        feeds = {"input_ids": case.ids[row][real][None, :], "position_ids": np.arange(n, dtype=np.int64)[None, :],
                 "seqlens_k": np.asarray([n - 1], np.int32), "total_sequence_length": np.asarray([n], np.int32),
                 "logit_positions": np.arange(n, dtype=np.int64)}
        feeds.update({name: b[row:row + 1] for name, b in zip(past_names, buffers, strict=True)})
        logits, *present = session.run(None, feeds)
        for b, p in zip(buffers, present, strict=True):
            b[row:row + 1] = p
        diff = max(diff, float(np.abs(logits[0].astype(np.float32) - case.logits[row][real]).max()))
    feeds = {"input_ids": case.step_ids, "position_ids": lengths[:, None].astype(np.int64),
             "seqlens_k": lengths.astype(np.int32), "total_sequence_length": np.asarray([lengths.max() + 1], np.int32),
             "logit_positions": np.zeros(1, np.int64)}
    feeds.update(dict(zip(past_names, buffers, strict=True)))
    step_logits = session.run(["logits"], feeds)[0].astype(np.float32)
    return diff, float(np.abs(step_logits - case.step_logits).max())


def prompt_feeds(session, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Feeds that run token ids [1, n] from an empty cache through either graph layout (logits at every position)."""
    inputs = session.get_inputs()
    n = ids.shape[1]
    positions = np.arange(n, dtype=np.int64)[None, :]
    past = [i for i in inputs if i.name.startswith("past_key_values.")]
    dtype = np.float16 if past[0].type == "tensor(float16)" else np.float32
    kv_heads, head_dim = int(past[0].shape[1]), int(past[0].shape[3])
    if any(i.name == "seqlens_k" for i in inputs):  # in place: a buffer row of the prompt's length
        feeds = {"input_ids": ids, "position_ids": positions, "seqlens_k": np.asarray([n - 1], np.int32),
                 "total_sequence_length": np.asarray([n], np.int32)}
        if any(i.name == "logit_positions" for i in inputs):
            feeds["logit_positions"] = np.arange(n, dtype=np.int64)
        empty = np.zeros((1, kv_heads, n, head_dim), dtype)
    else:
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": positions}
        empty = np.zeros((1, kv_heads, 0, head_dim), dtype)
    feeds.update({i.name: empty for i in past})
    return feeds
