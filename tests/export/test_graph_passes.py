"""The exported in-place graph: rotary inside GroupQueryAttention, fused and shape-folded, still within parity.

    .venv/bin/pytest -q tests/export/test_graph_passes.py

export_decoder refuses a graph over the 1e-3 parity limit, so each export here that
returns is also a parity pass; the assertions pin what the rewrites left in the graph.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pointsman.export.onnx_export import PARITY_TOLERANCE, export_decoder
from pointsman.export.random_checkpoints import build_checkpoint, family_tokenizer


def _graph(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False).graph


def _rotary_attributes(graph) -> list[tuple[int, int]]:
    """(do_rotary, rotary_interleaved) of every GroupQueryAttention node."""
    out = []
    for node in graph.node:
        if node.op_type == "GroupQueryAttention":
            attributes = {a.name: a.i for a in node.attribute}
            out.append((attributes.get("do_rotary", 0), attributes.get("rotary_interleaved", 0)))
    return out


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return family_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def _export(family: str, tokenizer, root: Path, **shape):
    checkpoint = build_checkpoint(family, tokenizer, root / "checkpoint", **shape)
    return export_decoder(checkpoint, root / "graph")


def test_a_llama_graph_rotates_inside_the_operator_and_keeps_no_shape_arithmetic(tokenizer, tmp_path):
    report = _export("llama", tokenizer, tmp_path)
    graph = _graph(report.onnx_path)
    ops = Counter(n.op_type for n in graph.node)

    assert _rotary_attributes(graph) == [(1, 0), (1, 0)]
    # rotate_half (Neg, Slice, Concat) and the reshapes' run-time shapes are gone; RMSNorm + residual fused
    assert ops["Neg"] == ops["Shape"] == ops["Concat"] == ops["Reshape"] == 0
    assert ops["SkipSimplifiedLayerNormalization"] > 0
    assert max(report.max_abs_diff, report.max_abs_diff_step) <= PARITY_TOLERANCE



def test_a_llama_graph_packs_q_k_v_into_the_operator_and_gate_with_up(tokenizer, tmp_path):
    report = _export("llama", tokenizer, tmp_path)
    graph = _graph(report.onnx_path)
    ops = Counter(n.op_type for n in graph.node)
    attention = [n for n in graph.node if n.op_type == "GroupQueryAttention"]

    # per layer: q/k/v as one MatMul read packed by the operator, o, gate/up as one (then a Split), down
    assert all(n.input[0].endswith("/packed/output") and n.input[1] == n.input[2] == "" for n in attention)
    assert ops["Split"] == len(attention)
    assert ops["MatMul"] == 4 * len(attention) + 1  # + the output projection
    assert max(report.max_abs_diff, report.max_abs_diff_step) <= PARITY_TOLERANCE

def test_a_gpt2_graph_runs_its_conv1d_projections_as_matmuls_with_no_shape_arithmetic(tokenizer, tmp_path):
    report = _export("gpt2", tokenizer, tmp_path)
    graph = _graph(report.onnx_path)
    ops = Counter(n.op_type for n in graph.node)
    attention = [n for n in graph.node if n.op_type == "GroupQueryAttention"]
    norms = [n for n in graph.node if n.op_type == "SkipLayerNormalization"]

    # traced: reshape to 2-D, Gemm, reshape back by Shape/Gather/Unsqueeze/Concat; c_attn then a Split
    assert ops["Gemm"] == ops["Shape"] == ops["Reshape"] == ops["Concat"] == ops["Split"] == 0
    assert all(n.input[1] == n.input[2] == "" for n in attention)  # q, k and v read packed
    assert ops["MatMul"] == 4 * len(attention) + 1  # c_attn, c_proj, c_fc, c_proj; + the output projection
    assert len(norms) == 2 * len(attention) and all(len(n.input) == 5 for n in norms)  # both c_proj biases in
    assert max(report.max_abs_diff, report.max_abs_diff_step) <= PARITY_TOLERANCE


@pytest.mark.parametrize(("family", "interleaved"), [("gpt_neox", 0), ("codegen", 1)])
def test_partial_and_interleaved_rotary_pass_parity_inside_the_operator(family, interleaved, tokenizer, tmp_path):
    # head_dim 64: gpt_neox rotates 16 dims (rotary_pct 0.25), codegen 32 in pairs (rotate_every_two)
    report = _export(family, tokenizer, tmp_path, width=128, heads=2)

    assert _rotary_attributes(_graph(report.onnx_path)) == [(1, interleaved), (1, interleaved)]
    assert max(report.max_abs_diff, report.max_abs_diff_step) <= PARITY_TOLERANCE


def test_a_rotary_narrower_than_the_operator_takes_stays_traced(tokenizer, tmp_path):
    # head_dim 16, rotary_pct 0.25: a 2-wide table, and the operator takes multiples of 8
    report = _export("gpt_neox", tokenizer, tmp_path)

    assert _rotary_attributes(_graph(report.onnx_path)) == [(0, 0), (0, 0)]
    assert max(report.max_abs_diff, report.max_abs_diff_step) <= PARITY_TOLERANCE


def test_the_graph_computes_logits_only_at_the_positions_asked_for(tokenizer, tmp_path):
    import onnxruntime as ort

    from pointsman.export.onnx_export import prompt_feeds

    session = ort.InferenceSession(str(_export("llama", tokenizer, tmp_path).onnx_path),
                                   providers=["CPUExecutionProvider"])
    ids = np.asarray([[5, 6, 7, 8, 9, 10]], np.int64)
    feeds = prompt_feeds(session, ids)
    every = session.run(["logits"], feeds)[0]
    last = session.run(["logits"], {**feeds, "logit_positions": np.asarray([5], np.int64)})[0]

    assert every.shape[1] == 6 and last.shape[1] == 1
    np.testing.assert_allclose(last[0, 0], every[0, 5], atol=1e-5)
