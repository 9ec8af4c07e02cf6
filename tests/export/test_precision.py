"""Reduced-precision exports: int8 for CPU and float16 for GPU, each with its own check and size.

    .venv/bin/pytest -q tests/export/test_precision.py
"""

from __future__ import annotations

import io
from pathlib import Path

import onnx
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rich.console import Console

from pointsman.export import precision
from pointsman.export.pipeline import export_model
from pointsman.export.random_checkpoints import build_checkpoint, family_tokenizer


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("precision")
    tokenizer = family_tokenizer(root / "tokenizer", add_bos=True)
    return build_checkpoint("llama", tokenizer, root / "llama", width=64, layers=2)


def export(checkpoint: Path, repository: Path, **variant) -> dict:
    return export_model(checkpoint, "m", repository, console=Console(file=io.StringIO()), **variant)


def test_int8_export_is_smaller_and_within_its_perplexity_limit(llama, tmp_path):
    exact = export(llama, tmp_path / "exact")
    int8 = export(llama, tmp_path / "int8", quantize="int8")

    assert (exact["variant"], int8["variant"]) == ("float32", "int8")
    assert int(int8["bytes"]) < 0.6 * int(exact["bytes"])
    assert int(int8["float32_bytes"]) == int(exact["bytes"])
    assert float(int8["int8_perplexity_ratio"]) <= precision.INT8_MAX_PERPLEXITY_RATIO
    assert float(exact["max_abs_diff_decode"]) <= 1e-3  # the default stays exact
    assert not (tmp_path / "int8" / "m_stream" / "1" / "exact").exists()  # the float32 intermediate is gone
    graph = onnx.load(str(tmp_path / "int8" / "m_stream" / "1" / "model.onnx")).graph
    matmuls = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert matmuls and not [n for n in graph.node if n.op_type == "MatMul"]  # every weight MatMul is 8-bit
    for node in matmuls:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        # 8-bit blocks no wider than the narrowest input (64 here): a wider one is padded out to full size
        assert (attributes["bits"], attributes["block_size"], attributes["accuracy_level"]) == (8, 64, 4)
    embedding = next(n for n in graph.node if n.op_type == "Gather" and n.input[0].endswith("_quantized"))
    assert embedding  # the embedding table is int8 too


def test_int8_blocks_are_the_standard_width_or_the_narrowest_input():
    def graph(*widths: int):
        weights = [onnx.helper.make_tensor(f"w{i}", onnx.TensorProto.FLOAT, [w, 8], [0.0] * w * 8)
                   for i, w in enumerate(widths)]
        nodes = [onnx.helper.make_node("MatMul", ["x", f"w{i}"], [f"y{i}"]) for i in range(len(widths))]
        return onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [], [], weights))

    assert precision.int8_block(graph(768, 2048)) == precision.INT8_BLOCK == 256
    assert precision.int8_block(graph(768, 96)) == 64
    assert precision.int8_block(graph(8)) == 16  # MatMulNBits' smallest block


def test_an_int8_model_over_its_perplexity_limit_is_refused_and_not_written(llama, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "INT8_MAX_PERPLEXITY_RATIO", 0.5)

    with pytest.raises(precision.QualityError, match="int8 perplexity is .* model not written"):
        export(llama, tmp_path, quantize="int8")

    assert not (tmp_path / "m_stream").exists()


def test_float16_export_is_within_its_relative_tolerance_and_the_engine_decodes_it(llama, tmp_path):
    import numpy as np

    from pointsman.engine.decoder import load_decoder

    stamp = export(llama, tmp_path, dtype="float16")
    decoder = load_decoder(str(tmp_path / "m_stream" / "1" / "model.onnx"), providers="cpu")
    logits, cache = decoder.prefill([1, 40, 41])
    step, caches = decoder.decode_batch([(int(np.argmax(logits)), cache)])

    assert stamp["variant"] == "float16"
    assert float(stamp["max_abs_diff_decode"]) > 0  # not exact, but within 1% of the logit range (else refused)
    assert decoder.kv_dtype == np.float16 and all(b.dtype == np.float16 for b in decoder._buffers)
    assert step.dtype == np.float32 and np.isfinite(step).all()


def test_float16_and_int8_cannot_be_combined_and_unknown_variants_name_the_option(llama, tmp_path):
    with pytest.raises(ValueError, match="--quantize int8 starts from the float32 graph"):
        export(llama, tmp_path, dtype="float16", quantize="int8")
    with pytest.raises(ValueError, match=r"--dtype must be one of float32, float16 \(got 'bfloat16'\)"):
        export(llama, tmp_path, dtype="bfloat16")
