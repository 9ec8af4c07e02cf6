"""Graph rewrites after tracing: fewer, fused nodes for the same arithmetic, so a decoding step has less to run.

    optimize_graph(Path("model_repository/tinyllama_stream/1/model.onnx"))   # rewritten in place

A one-token decoding step of a small model is mostly fixed cost per node: the traced
graph computes every reshape's target shape from `Shape` nodes at run time, and applies
each RMSNorm and residual add as separate nodes. Passes that each keep the arithmetic:
- onnxruntime's transformer optimizer (fusions only, opt_level 0, so the file stays
  portable): RMSNorm and its residual add become SkipSimplifiedLayerNormalization,
  LayerNorm and its add SkipLayerNormalization, GELU forms Gelu/FastGelu/BiasGelu;
- shape folding: with symbolic shape inference, a transpose followed by its inverse goes,
  a chain of reshapes becomes one, a reshape to the shape it already has goes, and the
  rest get a constant target (0 copies a dimension); the shape arithmetic left unused
  is pruned.
- Gemm unflattening: a gpt2 Conv1D traces as reshape to 2-D, Gemm, and a reshape back whose
  target is computed at run time from Shape, Gather, Unsqueeze and Concat nodes (ten nodes
  per projection). A MatMul takes the 3-D tensor as it is; the bias becomes an Add, which
  a following SkipLayerNormalization takes as its own bias input.
- MatMul packing (as onnxruntime-genai's model builder does): the projections that read one
  tensor (q, k and v; gate and up) become one MatMul over their weights side by side, then a
  Split; where a split (this one, or a traced one: gpt2's c_attn) feeds a GroupQueryAttention
  as query, key and value, the operator takes the packed tensor itself. One wider GEMM
  instead of three narrow ones, so a step has fewer operators to schedule over the threads.
Export checks parity on the rewritten graph, so a pass that changed the result is refused.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger(__name__)
EXTERNAL_DATA_BYTES = 2**31 - 2**26  # above this the graph keeps its weights beside it (protobuf's 2 GB limit)


def optimize_graph(path: Path) -> dict[str, int]:
    """Rewrite the graph at `path` in place; return node counts by type, before and after (for the record)."""
    import onnx

    before = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    model = _fuse(path)
    shapes = _shapes(model)  # once (seconds, and a copy of the model): both passes read tensors that outlive folding
    fold_shapes(model, shapes)
    unflatten_gemms(model, shapes)
    fold_bias_into_skip_norm(model)
    pack_matmuls(model)
    _save(model, path)
    after = Counter(n.op_type for n in model.graph.node)
    LOGGER.info("%s: %d nodes -> %d", path, sum(before.values()), sum(after.values()))
    return {"nodes_before": sum(before.values()), "nodes_after": sum(after.values())}


def _fuse(path: Path):
    """The graph with onnxruntime's fusions, or as traced when they fail on it (codegen: a cycle in its GELU fusion)."""
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("gpt2")
    options.enable_attention = False  # attention is already one GroupQueryAttention node
    try:
        # num_heads/hidden_size 0: read from the graph where a fusion needs them (only attention does)
        optimized = optimize_model(str(path), model_type="gpt2", num_heads=0, hidden_size=0, opt_level=0,
                                   optimization_options=options, only_onnxruntime=False)
        optimized.topological_sort()  # raises on a graph the fusions broke
        return optimized.model
    except RuntimeError as exc:
        LOGGER.warning("%s: onnxruntime's fusions failed (%s); shape folding only", path, exc)
        return onnx.load(str(path))


def _save(model, path: Path) -> None:
    import onnx

    if model.ByteSize() > EXTERNAL_DATA_BYTES:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=f"{path.name}.data")
    else:
        onnx.save(model, str(path))


def _shapes(model) -> dict[str, list]:
    """Symbolic shape of every tensor (int or symbol per dimension)."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        if info.type.tensor_type.HasField("shape"):
            shapes[info.name] = [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]
    return shapes


def _static_target(source: list, target: list) -> list[int] | None:
    """A constant Reshape target: ints kept, a dimension equal to the source's copied (0), one left as -1."""
    out = []
    for i, dim in enumerate(target):
        if isinstance(dim, int) and dim > 0:
            out.append(dim)
        elif i < len(source) and source[i] == dim:
            out.append(0)
        else:
            out.append(-1)
    return out if out.count(-1) <= 1 else None


def _perm(node) -> list[int]:
    return list(next(a.ints for a in node.attribute if a.name == "perm"))


def fold_shapes(model, shapes: dict[str, list]) -> None:
    """Drop inverse transpose pairs and identity reshapes, fold reshape chains, prune dead shape arithmetic.

    shapes: _shapes of the model as it comes in.
    """
    graph = model.graph
    producer = _producers(graph)
    rename: dict[str, str] = {}

    def source(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in graph.node:
        node.input[:] = [source(i) for i in node.input]
        if node.op_type == "Transpose":
            inner = producer.get(node.input[0])
            if inner is not None and inner.op_type == "Transpose":
                perm, inner_perm = _perm(node), _perm(inner)
                if [inner_perm[p] for p in perm] == list(range(len(perm))):
                    rename[node.output[0]] = source(inner.input[0])
        elif node.op_type == "Reshape":
            _fold_reshape(graph, node, producer, shapes, rename, source)
    for out in graph.output:  # a graph output renamed away would lose its name: keep it on its node
        rename.pop(out.name, None)
    for node in graph.node:
        node.input[:] = [source(i) for i in node.input]
    _prune(graph)


def _fold_reshape(graph, node, producer: dict, shapes: dict, rename: dict, source) -> None:
    """Reshape straight from the chain's first input; drop it if that already has the shape, else a constant target."""
    from onnx import numpy_helper

    data = node.input[0]
    while (inner := producer.get(data)) is not None and inner.op_type == "Reshape":
        data = source(inner.input[0])  # reshape(reshape(x)) == reshape(x)
    have, want = shapes.get(data), shapes.get(node.output[0])
    if have is None or want is None:
        return
    if have == want and all(isinstance(d, str) or d > 0 for d in want):
        rename[node.output[0]] = data
        return
    target = _static_target(have, want)
    if target is None:
        return
    name = f"{node.name or node.output[0]}/static_shape"
    graph.initializer.append(numpy_helper.from_array(np.asarray(target, np.int64), name))
    node.input[:] = [data, name]


def _prune(graph) -> None:
    """Remove nodes and initializers nothing reads."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    kept = list(reversed(keep))
    del graph.node[:]
    graph.node.extend(kept)
    initializers = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _producers(graph) -> dict[str, object]:
    return {out: node for node in graph.node for out in node.output}


def _rewrite_nodes(graph, replaced: dict[int, list], dropped: set[int] = frozenset()) -> None:
    """The graph's nodes in order, each replaced by its list in `replaced` (by id), those in `dropped` left out."""
    rewritten = []
    for node in graph.node:
        if id(node) not in dropped:
            rewritten.extend(replaced.get(id(node), [node]))
    del graph.node[:]
    graph.node.extend(rewritten)


def unflatten_gemms(model, shapes: dict[str, list]) -> int:
    """Reshape to 2-D -> Gemm -> reshape back, as MatMul (+ Add of the bias) on the tensor as it is; how many.

    shapes: _shapes from before fold_shapes, which renames no tensor that survives it.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = _producers(graph)
    consumers = _consumers(graph)
    replaced: dict[int, list] = {}
    for gemm in [n for n in graph.node if n.op_type == "Gemm" and len(n.input) == 3]:
        attributes = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
        flatten = producer.get(gemm.input[0])
        after = consumers.get(gemm.output[0], [])
        weight, bias = weights.get(gemm.input[1]), weights.get(gemm.input[2])
        if (attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0 or attributes.get("transA", 0)
                or flatten is None or flatten.op_type != "Reshape" or len(consumers[flatten.output[0]]) != 1
                or len(after) != 1 or after[0].op_type != "Reshape" or weight is None or bias is None
                or len(bias.dims) != 1):
            continue
        data, unflatten = flatten.input[0], after[0]
        have, want = shapes.get(data), shapes.get(unflatten.output[0])
        if not have or not want or len(have) < 2 or have[:-1] != want[:-1]:
            continue  # the reshape back must restore the leading dimensions exactly
        matrix = numpy_helper.to_array(weight)
        if attributes.get("transB", 0):
            matrix = matrix.T
        name = gemm.name or gemm.output[0]
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(matrix), f"{name}/weight"))
        replaced[id(unflatten)] = [
            helper.make_node("MatMul", [data, f"{name}/weight"], [f"{name}/product"], name=f"{name}/matmul"),
            helper.make_node("Add", [f"{name}/product", gemm.input[2]], [unflatten.output[0]], name=f"{name}/bias"),
        ]
    _rewrite_nodes(graph, replaced)
    _prune(graph)
    return len(replaced)


def fold_bias_into_skip_norm(model) -> int:
    """Add(x, constant 1-D bias) read only by a SkipLayerNormalization without a bias: its bias input instead."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    consumers = _consumers(graph)
    dropped: set[int] = set()
    for add in [n for n in graph.node if n.op_type == "Add"]:
        bias = weights.get(add.input[1])
        readers = consumers.get(add.output[0], [])
        if bias is None or len(bias.dims) != 1 or len(readers) != 1:
            continue
        norm = readers[0]
        if norm.op_type != "SkipLayerNormalization" or len(norm.input) != 4 or add.output[0] not in norm.input[:2]:
            continue
        norm.input[list(norm.input[:2]).index(add.output[0])] = add.input[0]
        norm.input.append(add.input[1])  # input, skip, gamma, beta, bias: the sum output includes the bias too
        dropped.add(id(add))
    _rewrite_nodes(graph, {}, dropped)
    return len(dropped)


def pack_matmuls(model) -> int:
    """Merge MatMuls that read the same tensor with constant 2-D weights of one dtype; return how many groups."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    groups: dict[tuple, list] = {}
    for node in graph.node:
        w = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is not None and len(w.dims) == 2:
            groups.setdefault((node.input[0], w.dims[0], w.data_type), []).append(node)
    packed = 0
    replaced: dict[int, list] = {}  # id of a group's first MatMul -> the nodes that take its place
    dropped: set[int] = set()
    for (data, _, _), nodes in groups.items():
        if len(nodes) < 2:
            continue
        arrays = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]
        name = f"{nodes[0].name or nodes[0].output[0]}/packed"
        graph.initializer.append(numpy_helper.from_array(np.concatenate(arrays, axis=1), f"{name}/weight"))
        graph.initializer.append(numpy_helper.from_array(
            np.asarray([a.shape[1] for a in arrays], np.int64), f"{name}/sizes"))
        replaced[id(nodes[0])] = [
            helper.make_node("MatMul", [data, f"{name}/weight"], [f"{name}/output"], name=name),
            helper.make_node("Split", [f"{name}/output", f"{name}/sizes"], [n.output[0] for n in nodes],
                             name=f"{name}/split", axis=-1),
        ]
        dropped.update(id(n) for n in nodes[1:])
        packed += 1
    _rewrite_nodes(graph, replaced, dropped)
    _feed_packed_qkv(graph)
    _prune(graph)
    return packed


def _feed_packed_qkv(graph) -> None:
    """A Split giving exactly a GroupQueryAttention's query, key and value: let it take the packed tensor."""
    from onnx import helper

    consumers = _consumers(graph)
    for split in [n for n in graph.node if n.op_type == "Split"]:
        axis = next((helper.get_attribute_value(a) for a in split.attribute if a.name == "axis"), 0)
        if axis not in (-1, 2):  # the operator's inputs are [batch, sequence, hidden]
            continue
        outs = list(split.output)
        readers = {id(r): r for o in outs for r in consumers.get(o, [])}
        if len(outs) != 3 or len(readers) != 1:
            continue
        (attention,) = readers.values()
        if attention.op_type == "GroupQueryAttention" and list(attention.input[:3]) == outs:
            attention.input[0], attention.input[1], attention.input[2] = split.input[0], "", ""
