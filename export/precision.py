"""Reduced-precision variants of an exported decoder and the checks each must pass.

    export_decoder(checkpoint, out, dtype="float16")   # GPU: traced in half precision, relative parity
    export_decoder(checkpoint, out, quantize="int8")   # CPU: dynamic int8 weights, perplexity check

The default export stays float32 and exact (|logit diff| <= 1e-3). A variant cannot be
held to that limit, so each has its own: float16 logits within 1% of the logit range of
the float32 reference; int8 perplexity on text sampled from the model itself within 10%
of the float32 graph's. Sizes and quality figures go into the export record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DTYPES = ("float32", "float16")
QUANTIZATIONS = ("int8",)
FLOAT16_RELATIVE_TOLERANCE = 1e-2
INT8_MAX_PERPLEXITY_RATIO = 1.10
EVALUATION_TOKENS = 64


class QualityError(RuntimeError):
    """A reduced-precision variant lost more quality than its limit allows."""


@dataclass(frozen=True)
class Quality:
    """How a variant's next-token predictions compare with the float32 graph's on the same text."""

    perplexity_reference: float
    perplexity_variant: float
    top1_agreement: float  # share of positions where both graphs pick the same next token
    mean_kl: float  # mean KL(reference || variant) of next-token distributions, in nats

    @property
    def perplexity_ratio(self) -> float:
        return self.perplexity_variant / self.perplexity_reference

    def as_record(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}_perplexity_ratio": f"{self.perplexity_ratio:.4f}",
                f"{prefix}_top1_agreement": f"{self.top1_agreement:.4f}", f"{prefix}_mean_kl": f"{self.mean_kl:.3e}"}


def check_variant(dtype: str, quantize: str | None) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize must be one of {', '.join(QUANTIZATIONS)} (got {quantize!r})")
    if quantize and dtype != "float32":
        raise ValueError("--quantize int8 starts from the float32 graph: use it without --dtype float16")


def tolerance(dtype: str, case) -> float:
    """The parity limit of a float16 graph: 1% of the reference logits' range."""
    scale = float(np.abs(case.logits[case.mask.astype(bool)]).max())
    return FLOAT16_RELATIVE_TOLERANCE * max(scale, 1.0)


def evaluation_ids(model, start_id: int, length: int = EVALUATION_TOKENS, seed: int = 0) -> np.ndarray:
    """Text the model itself writes (sampled, seeded): what its perplexity is measured on."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(torch.tensor([[start_id]]), do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                             max_new_tokens=length - 1, min_new_tokens=length - 1)
    return out.numpy().astype(np.int64)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic quantisation by onnxruntime: int8 weights per channel, activations quantised at run time."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnx's shape inference cannot type the outputs of onnxruntime's fused nodes (export.graph_passes):
    # the tensors it cannot type are float32, the only dtype quantised
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})


def _next_token_logprobs(onnx_path: Path, ids: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    from pointsman.export.onnx_export import prompt_feeds

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], prompt_feeds(session, ids))[0][0].astype(np.float64)
    top = logits.max(-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


def compare(reference: Path, variant: Path, ids: np.ndarray) -> Quality:
    """Teacher-forced next-token quality of `variant` against `reference` on ids [1, n]."""
    ref = _next_token_logprobs(reference, ids)[:-1]
    var = _next_token_logprobs(variant, ids)[:-1]
    targets = ids[0, 1:]
    rows = np.arange(len(targets))
    kl = (np.exp(ref) * (ref - var)).sum(-1)
    return Quality(perplexity_reference=float(np.exp(-ref[rows, targets].mean())),
                   perplexity_variant=float(np.exp(-var[rows, targets].mean())),
                   top1_agreement=float((ref.argmax(-1) == var.argmax(-1)).mean()), mean_kl=float(kl.mean()))


def model_bytes(onnx_path: Path) -> int:
    """The graph's size with any external weight files beside it."""
    return sum(p.stat().st_size for p in onnx_path.parent.iterdir() if p.name.startswith(onnx_path.name))
