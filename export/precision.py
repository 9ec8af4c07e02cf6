"""Reduced-precision variants of an exported decoder and the checks each must pass.

    export_decoder(checkpoint, out, dtype="float16")   # GPU: traced in half precision, relative parity
    export_decoder(checkpoint, out, quantize="int8")   # CPU: int8 weights in blocks, perplexity check

The default export stays float32 and exact (|logit diff| <= 1e-3). A variant cannot be
held to that limit, so each has its own: float16 logits within 1% of the logit range of
the float32 reference; int8 perplexity on text sampled from the model itself within 10%
of the float32 graph's. Sizes and quality figures go into the export record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DTYPES = ("float32", "float16")
QUANTIZATIONS = ("int8",)
FLOAT16_RELATIVE_TOLERANCE = 1e-2
INT8_MAX_PERPLEXITY_RATIO = 1.10
INT8_BLOCK = 256  # weights per scale in an int8 graph (quantize_int8)
EXTERNAL_DATA_BYTES = 1 << 30  # a graph this big keeps its weights beside it (protobuf stops at 2 GB)
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


def int8_block(model) -> int:
    """INT8_BLOCK, or a smaller power of two where a MatMul's input is narrower (a block is padded to full)."""
    weights = {w.name: w.dims for w in model.graph.initializer}
    widths = [weights[n.input[1]][0] for n in model.graph.node
              if n.op_type == "MatMul" and n.input[1] in weights and len(weights[n.input[1]]) == 2]
    narrowest = min(widths, default=INT8_BLOCK)
    return max(16, min(INT8_BLOCK, 1 << (max(1, narrowest).bit_length() - 1)))


def quantize_int8(source: Path, target: Path) -> None:
    """8-bit weights: MatMuls by onnxruntime's MatMulNBits, the embedding table by dynamic quantisation.

    MatMulNBits is the Q8_0 of ONNX (symmetric, one scale per INT8_BLOCK weights; llama.cpp's
    blocks are 32). Accuracy level 4 quantises the activations to int8 too, so a step runs
    int8 dot products. Against dynamic quantisation (int8 per output channel) it decodes one
    sequence 1.1-1.3x faster and prefills slower (docs/families.md). Its quantizer takes
    Gather at 4 bits only, so the embedding table gets int8 from quantize_dynamic, as before.
    """
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line a MatMul
    model = onnx.load(str(source))
    settings = {"block_size": int8_block(model), "is_symmetric": True, "accuracy_level": 4, "bits": 8}
    quantizer = MatMulNBitsQuantizer(model, **settings,
                                     algo_config=DefaultWeightOnlyQuantConfig(**settings))
    quantizer.process()
    external = model_bytes(source) > EXTERNAL_DATA_BYTES
    staged = target.with_name(target.name + ".matmuls")
    quantizer.model.save_model_to_file(str(staged), use_external_data_format=external)
    try:
        # onnx's shape inference cannot type the outputs of onnxruntime's fused nodes (export.graph_passes):
        # the tensors it cannot type are float32
        quantize_dynamic(staged, target, weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"],
                         use_external_data_format=external, extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        for path in staged.parent.glob(staged.name + "*"):
            path.unlink()


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
