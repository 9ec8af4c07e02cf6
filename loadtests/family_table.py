"""Export parity of every supported family, as a markdown table.

    .venv/bin/python -m pointsman.loadtests.family_table

Builds a small seeded random-weight checkpoint of each family in process (the same
builder the family tests use), exports it with the graph passes, and prints the export's
own parity figures (max |logit difference| against transformers, prefill of a left-padded
batch and one decoding step; export refuses a graph over 1e-3) with the graph's node,
MatMul and Split counts. Greedy equality through the served model is
tests/integration/test_families_served.py's job.
"""

from __future__ import annotations

import collections
import logging
import sys
import tempfile
from pathlib import Path

import onnx

from pointsman.export.families import SUPPORTED_MODEL_TYPES
from pointsman.export.onnx_export import export_decoder
from pointsman.export.random_checkpoints import build_checkpoint, family_tokenizer

# the default test shapes, then two with a head wide enough for the rotary inside the operator
WIDE_HEADS = {"width": 128, "heads": 2}
CASES: tuple[tuple[str, dict], ...] = (*((family, {}) for family in SUPPORTED_MODEL_TYPES),
                                       ("gpt_neox", WIDE_HEADS), ("codegen", WIDE_HEADS))


def main() -> int:
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = family_tokenizer(Path(tmp) / "tokenizer")
        out = sys.stdout
        out.write("| family | prefill | decode step | nodes | MatMul | Split |\n|---|---|---|---|---|---|\n")
        for number, (family, shape) in enumerate(CASES):
            root = Path(tmp) / f"{family}-{number}"
            report = export_decoder(build_checkpoint(family, tokenizer, root / "checkpoint", **shape), root / "graph")
            graph = onnx.load(str(report.onnx_path), load_external_data=False).graph
            ops = collections.Counter(node.op_type for node in graph.node)
            label = family + (", head_dim 64" if shape else "")
            out.write(f"| {label} | {report.max_abs_diff:.1e} | {report.max_abs_diff_step:.1e} | "
                      f"{sum(ops.values())} | {ops['MatMul']} | {ops['Split']} |\n")
            out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
