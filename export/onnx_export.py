"""Export a causal LM checkpoint (GPT-2 family or CodeGen) to a one-step ONNX decoder.

    report = export_decoder(Path("build/checkpoints/gpt2"), Path("model_repository/gpt2/1"))
    report.max_abs_diff  # parity against PyTorch, refused above 1e-3

The graph takes input_ids, attention_mask, position_ids and past_key_values.N.key/value
and returns logits and present.N.key/value, with dynamic batch and sequence axes.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

LOGGER = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-3
ONNX_FILE = "model.onnx"


class ParityError(RuntimeError):
    """The exported graph disagrees with PyTorch."""


@dataclass(frozen=True)
class ExportReport:
    onnx_path: Path
    layers: int
    heads: int
    head_dim: int
    max_abs_diff: float
    max_abs_diff_step: float


class _StepWrapper(torch.nn.Module):
    """Flat tensors in and out, so the legacy exporter sees no Cache object."""

    def __init__(self, model: torch.nn.Module, layers: int) -> None:
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

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


def geometry(config) -> tuple[int, int, int]:
    """(layers, heads, head_dim) of a GPT-2 or CodeGen config."""
    layers = config.n_layer
    heads = config.n_head
    return layers, heads, config.n_embd // heads


def io_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]


def load_model(checkpoint: Path) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(checkpoint)
    if config.model_type not in ("gpt2", "codegen"):
        raise ValueError(f"{checkpoint}: model_type {config.model_type!r} is not supported (gpt2, codegen)")
    # eager attention traces to plain ops and treats padded rows without NaNs
    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager")
    return model.eval()


def _left_padded_batch(vocab: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=(2, 7)).astype(np.int64)
    mask = np.ones((2, 7), np.int64)
    mask[0, :3] = 0  # first prompt is 4 tokens, left-padded to 7
    ids[0, :3] = 0
    positions = np.clip(mask.cumsum(-1) - 1, 0, None)
    return ids, mask, positions


def export_decoder(checkpoint: Path, out_dir: Path, opset: int = 17) -> ExportReport:
    """Write out_dir/model.onnx and check it against PyTorch; raise ParityError if off."""
    model = load_model(checkpoint)
    layers, heads, head_dim = geometry(model.config)
    in_names, out_names = io_names(layers)
    ids, mask, positions = _left_padded_batch(model.config.vocab_size)

    with torch.no_grad():  # reference computed before tracing touches the model
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    position_ids=torch.from_numpy(positions), use_cache=True)
        ref_logits = ref.logits.numpy()
        ref_cache = ref.past_key_values
        ref_past = [t.numpy().copy() for layer in ref_cache.layers for t in (layer.keys, layer.values)]
        step_ids = np.array([[5], [9]], np.int64)
        step_mask = np.concatenate([mask, np.ones((2, 1), np.int64)], axis=1)
        step_pos = positions[:, -1:] + 1
        ref_step = model(input_ids=torch.from_numpy(step_ids), attention_mask=torch.from_numpy(step_mask),
                         position_ids=torch.from_numpy(step_pos), cache=ref_cache, use_cache=True).logits.numpy()

    dummy_past = [torch.zeros(2, heads, 3, head_dim) for _ in range(2 * layers)]
    dummy = (torch.from_numpy(ids), torch.ones(2, 10, dtype=torch.int64), torch.from_numpy(positions), *dummy_past)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "position_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "total_sequence"}, "logits": {0: "batch", 1: "sequence"}}
    axes.update({n: {0: "batch", 2: "past_sequence"} for n in in_names[3:]})
    axes.update({n: {0: "batch", 2: "total_sequence"} for n in out_names[1:]})
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_FILE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_StepWrapper(model, layers), dummy, str(onnx_path), input_names=in_names,
                          output_names=out_names, dynamic_axes=axes, opset_version=opset, dynamo=False)

    diff, diff_step = _parity(onnx_path, ids, mask, positions, ref_logits, ref_past,
                              (step_ids, step_mask, step_pos, ref_step), in_names, heads, head_dim)
    report = ExportReport(onnx_path, layers, heads, head_dim, diff, diff_step)
    if max(diff, diff_step) > PARITY_TOLERANCE:
        onnx_path.unlink()
        raise ParityError(f"{checkpoint}: ONNX differs from PyTorch by {max(diff, diff_step):.2e} "
                          f"(> {PARITY_TOLERANCE}); model not written")
    return report


def _parity(onnx_path, ids, mask, positions, ref_logits, ref_past, step, in_names, heads, head_dim):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    empty = np.zeros((2, heads, 0, head_dim), np.float32)
    feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    feeds.update({n: empty for n in in_names[3:]})
    logits, *present = session.run(None, feeds)
    real = mask.astype(bool)  # padded positions carry no meaning
    diff = float(np.abs(logits - ref_logits)[real].max())
    step_ids, step_mask, step_pos, ref_step = step
    feeds = {"input_ids": step_ids, "attention_mask": step_mask, "position_ids": step_pos}
    feeds.update(dict(zip(in_names[3:], ref_past, strict=True)))
    step_logits = session.run(None, feeds)[0]
    return diff, float(np.abs(step_logits - ref_step).max())
