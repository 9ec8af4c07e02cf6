"""The decoder protocol the engine drives, and its onnxruntime implementations.

    decoder = load_decoder("model_repository/gpt2_stream/1/model.onnx", threads=2)
    logits, cache = decoder.prefill([464, 3290])
    logits, caches = decoder.decode_batch([(last_token, cache)])
    decoder.release(cache)

load_decoder picks the implementation from the graph: engine.kv_buffer.InPlaceDecoder for
the default in-place layout (GroupQueryAttention over a preallocated buffer), OnnxDecoder
here for the concat layout (present = concat(past, new)), which exports before it wrote.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

LOGGER = logging.getLogger(__name__)

# One array per layer and kind (key, value), each shaped [1, heads, length, head_dim].
KVCache = list[np.ndarray]


class Decoder(Protocol):
    """A causal LM that runs one forward step with past key/values."""

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[np.ndarray, KVCache]:
        """Run the prompt; return the last position's logits [vocab] and the cache."""

    def decode_batch(
        self, steps: Sequence[tuple[int, KVCache]]
    ) -> tuple[np.ndarray, list[KVCache]]:
        """Run one new token for each sequence; return logits [batch, vocab] and new caches."""

    def release(self, cache: object) -> None:
        """The sequence is done with its cache (the engine calls this once per sequence)."""


def cache_length(cache: KVCache) -> int:
    return int(cache[0].shape[2])


@dataclass(frozen=True)
class GraphSignature:
    """Names and shapes read from the exported graph."""

    past_names: tuple[str, ...]
    present_names: tuple[str, ...]
    heads: int
    head_dim: int


def choose_providers(requested: str, available: Sequence[str], cache_dir: str) -> list:
    """Execution providers for a request like 'auto', 'cpu', 'cuda' or 'tensorrt'.

    'auto' takes CUDA when available, else CPU. TensorRT is opt-in ('tensorrt'): the KV
    cache grows every decoding step, so without fixed optimisation profiles TensorRT
    would rebuild engines as lengths change; its engine cache lives in the model folder.
    """
    wanted = {
        "auto": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "cpu": ["CPUExecutionProvider"],
    }.get(requested.lower())
    if wanted is None:
        raise ValueError(f"execution_providers must be auto, tensorrt, cuda or cpu (got {requested!r})")
    providers: list = []
    for name in wanted:
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            providers.append((name, {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache_dir}))
        else:
            providers.append(name)
    return providers


SPINNING = ("auto", "off", "on")  # intra_op_spinning in config.pbtxt
BYTES_PER_THREAD = 32 * 2**20  # below ~32 MB of weights per thread, the threads' handoff costs more than it saves


def usable_cores() -> int:
    """Cores this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads(model_bytes: int, cores: int) -> int:
    """Intra-op threads for a model of this size: one per 32 MB of weights, at most one per core.

    A decoding step reads every weight once, so big models are memory- and FLOP-bound and
    scale with threads; a tiny model's step is a few microseconds of work per operator, where
    waking a second thread costs more than it saves (see docs/families.md for the measurements).
    """
    return max(1, min(cores, -(-model_bytes // BYTES_PER_THREAD)))


def resolve_threads(threads: int | str, model_bytes: int, cores: int) -> int:
    """A config's intra_op_threads ("auto", "0" or a positive count) as a thread count."""
    text = str(threads).strip().lower()
    if text in ("auto", "0", ""):
        return default_threads(model_bytes, cores)
    if not text.isdigit():
        raise ValueError(f"intra_op_threads must be auto or a positive integer (got {threads!r})")
    return int(text)


def graph_bytes(path: str) -> int:
    """The graph's size with its external weights (a >2 GB export keeps them beside model.onnx)."""
    folder = os.path.dirname(path) or "."
    data = [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(os.path.basename(path))]
    return sum(os.path.getsize(p) for p in data if os.path.isfile(p))


def spinning_fits(engine_threads: Sequence[int], cores: int) -> bool:
    """True when every intra-op thread of the server's engines can have a core of its own.

    Then a thread spinning between operators takes a core no other engine needs, and the
    step gets faster (llama.cpp's threads spin so too). When engines share cores, a spinning
    thread burns the core another engine's step waits for: two spinning models on two
    cores took 1.5x to 2.2x as long per step (docs/families.md).
    """
    return sum(engine_threads) <= cores


def resolve_spinning(spinning: str | bool, fits: bool = False) -> bool:
    """A config's intra_op_spinning ("auto", "off" or "on") as a flag; auto is `fits` (spinning_fits)."""
    if isinstance(spinning, bool):
        return spinning
    text = str(spinning).strip().lower()
    if text not in SPINNING:
        raise ValueError(f"intra_op_spinning must be one of {', '.join(SPINNING)} (got {spinning!r})")
    return fits if text == "auto" else text == "on"


def session_options(threads: int, spinning: bool):
    """The onnxruntime options of a decoder: `threads` intra-op threads, one inter-op thread.

    Without `spinning` the threads block between operators: several models share few cores,
    and a spinning thread burns a core another model needs. With it they spin between the
    operators of a run (as llama.cpp's threads do) and stop when the run returns
    (force_spinning_stop), so an idle model never spins; for engines with cores of their own.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def _session(path: str, threads: int | str, providers: str, spinning: str | bool = "off"):
    import onnxruntime as ort

    options = session_options(resolve_threads(threads, graph_bytes(path), usable_cores()),
                              resolve_spinning(spinning))
    chosen = choose_providers(providers, ort.get_available_providers(), os.path.dirname(path))
    LOGGER.info("loading %s with %s", path, chosen)
    return ort.InferenceSession(path, options, providers=chosen)


def load_decoder(path: str, threads: int | str = "auto", providers: str = "auto",
                 spinning: str | bool = "off") -> Decoder:
    """The decoder for this graph's layout; threads "auto" (or 0) follows default_threads."""
    from pointsman.engine.kv_buffer import InPlaceDecoder, is_in_place_graph

    session = _session(path, threads, providers, spinning)
    return InPlaceDecoder(session) if is_in_place_graph(session) else OnnxDecoder(session)


class OnnxDecoder:
    """Runs a concat-layout graph; pads and joins caches for batched decode steps."""

    def __init__(self, session) -> None:  # onnxruntime.InferenceSession
        self._session = session
        inputs = {i.name: i for i in session.get_inputs()}
        if "seqlens_k" in inputs:
            raise ValueError("this graph keeps its KV cache in place (GroupQueryAttention): open it with "
                             "load_decoder, which gives an InPlaceDecoder")
        past = tuple(n for n in inputs if n.startswith("past_key_values."))
        present = tuple(o.name for o in session.get_outputs() if o.name.startswith("present."))
        shape = inputs[past[0]].shape
        self.signature = GraphSignature(past, present, int(shape[1]), int(shape[3]))
        self.providers = session.get_providers()
        # a float16 export (for GPUs) takes its cache in half precision
        self.kv_dtype = np.float16 if inputs[past[0]].type == "tensor(float16)" else np.float32
        self._last_step = _LastStep()

    @classmethod
    def from_file(cls, path: str, threads: int | str = "auto", providers: str = "auto") -> OnnxDecoder:
        """Load a concat-layout graph; threads "auto" (or 0) follows default_threads."""
        return cls(_session(path, threads, providers))

    def release(self, cache: object) -> None:
        """Nothing to give back: each cache is its own arrays."""

    def _run(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: KVCache):
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        feeds.update(zip(self.signature.past_names, past, strict=True))
        logits, *present = self._session.run(None, feeds)
        return logits.astype(np.float32, copy=False), present

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[np.ndarray, KVCache]:
        n = len(prompt_ids)
        ids = np.asarray([prompt_ids], dtype=np.int64)
        empty = np.zeros((1, self.signature.heads, 0, self.signature.head_dim), self.kv_dtype)
        logits, present = self._run(
            ids, np.ones((1, n), np.int64), np.arange(n, dtype=np.int64)[None, :],
            [empty] * len(self.signature.past_names),
        )
        return logits[0, -1], present

    def decode_batch(
        self, steps: Sequence[tuple[int, KVCache]]
    ) -> tuple[np.ndarray, list[KVCache]]:
        lengths = [cache_length(cache) for _, cache in steps]
        longest = max(lengths)
        batch = len(steps)
        ids = np.asarray([[token] for token, _ in steps], dtype=np.int64)
        positions = np.asarray([[n] for n in lengths], dtype=np.int64)
        mask = np.zeros((batch, longest + 1), np.int64)
        for row, n in enumerate(lengths):
            mask[row, longest - n:] = 1  # left padding: real entries sit at the right
        past = self._last_step.reuse([cache for _, cache in steps], longest)
        if past is None:
            past = [
                _left_pad_join([cache[k] for _, cache in steps], longest)
                for k in range(len(self.signature.past_names))
            ]
        logits, present = self._run(ids, mask, positions, past)
        caches = [
            _RowCache(layer[row:row + 1, :, longest - n:, :] for layer in present)
            for row, n in enumerate(lengths)
        ]
        self._last_step = _LastStep(present, caches)
        return logits[:, -1, :], caches


class _RowCache(list):
    """One sequence's cache: views into the batch's present arrays (weakly referenceable)."""

    __slots__ = ("__weakref__",)


class _LastStep:
    """The previous decode step's present arrays, remembered weakly.

    While the same sequences keep decoding together, those arrays already hold every
    cache left-padded side by side, so they are the next step's past as they are: no
    per-step copy of the whole KV cache. When sequences leave, their rows are dropped
    in one gather; when one joins, the caches are joined afresh.
    """

    def __init__(self, present: list[np.ndarray] | None = None, caches: Sequence[_RowCache] = ()) -> None:
        self._present = [weakref.ref(p) for p in present or ()]
        self._rows = {id(cache): (row, weakref.ref(cache)) for row, cache in enumerate(caches)}

    def reuse(self, caches: Sequence[KVCache], longest: int) -> KVCache | None:
        """Return this step's past cut from the last present arrays, or None if the batch changed otherwise."""
        rows = []
        for cache in caches:
            found = self._rows.get(id(cache))
            if found is None or found[1]() is not cache:
                return None  # a newly prefilled (or foreign) cache: join afresh
            rows.append(found[0])
        present = [ref() for ref in self._present]
        if not present or any(p is None for p in present):
            return None
        total = present[0].shape[2]
        if rows == list(range(len(self._rows))) and total == longest:
            return present
        return [p[rows, :, total - longest:, :] for p in present]  # one gather, trimmed to the longest


def _left_pad_join(parts: list[np.ndarray], length: int) -> np.ndarray:
    """Stack [1, H, n_i, D] arrays into [B, H, length, D], each right-aligned."""
    if all(p.shape[2] == length for p in parts):
        return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    heads, dim = parts[0].shape[1], parts[0].shape[3]
    out = np.zeros((len(parts), heads, length, dim), dtype=parts[0].dtype)
    for row, part in enumerate(parts):
        out[row, :, length - part.shape[2]:, :] = part[0]
    return out
