r"""Bring-your-own-checkpoint speed: the served engine against the raw loop, onnxruntime-genai and a peer.

    .venv/bin/python -m pointsman.loadtests.bench_families
    .venv/bin/python -m pointsman.loadtests.bench_families --models llama-89M gpt2-89M --prompts 32 512 \\
        --concurrency 1 4 16 32 --genai-python /tmp/genai-venv/bin/python --peer

Random-weight checkpoints of the llama and gpt2 families (~89 M and ~300 M parameters,
vocabulary 512, so nearly every weight sits in the layers) are built and exported once
under build/bench-families/. For each model and prompt length, in the same run:
- the raw in-process onnxruntime loop (the engine's decoder, greedy, one decode step per token);
- the model served by tritonserver (streamed with ignore_eos: Triton's generate_stream
  read with httpx, the client that reads llama-server, or tritonclient gRPC with
  --client grpc, which costs the shared cores twice the CPU per piece), at concurrency 1 the
  per-token latency (alternating request by request with the raw loop) and at every
  concurrency the tokens/s of that many requests sent together, next to the step-cost
  bound: batch / (time of one bare decode_batch step at that batch);
- onnxruntime-genai 0.18 (its own builder and KV cache, its own venv: --genai-python) on
  the same checkpoint and threads, at batch 1 and at the largest concurrency <= 16;
- the FastAPI + transformers.generate() peer (loadtests/peer_server.py) at concurrency 1,
  with the better of 1 and all threads (--peer);
- llama.cpp's llama-server on the same checkpoint converted to GGUF (f32, or Q8_0 for an
  -int8 model), the same threads and 16 slots, at c=1 (per-token latency) and tokens/s at
  each concurrency up to 16 (--llama-server and --llama-cpp-source; loadtests.llama_cpp).
onnxruntime-genai's and llama.cpp's c=1 latency alternate run by run with the raw loop,
which is printed beside them in brackets: their ratios are against that, same moment.
llama.cpp's c=1 requests take turns with a served request and a raw loop too, and the
median of those adjacent-pair ratios is printed beside the best-of ratio.
llama-server runs beside tritonserver, and at each concurrency the two take turns for
--rounds rounds (ours, then llama.cpp's), so each round's ratio shares the load of its moment.
All paths use the engine's own thread choice (engine.decoder.default_threads). Waiting
for work, llama.cpp's threads spin; ours spin too when the model has the cores to itself
(intra_op_spinning auto, export's default, which this single-model repository meets), so
--spinning off compares blocking with --llama-blocking (llama.cpp's sleep:
--poll 0 and, for the barrier between operators in its OpenMP build, OMP_WAIT_POLICY=passive).
Our weights sit in malloc's huge pages (pointsman.launcher sets GLIBC_TUNABLES; this
process runs itself again with it); llama.cpp maps its file in 4 KiB pages unless
--llama-load-mode none reads it into memory, where the same setting reaches it.
llama.cpp keeps its KV cache in f16 by default, and so it runs here (--llama-kv-cache
f16: the peer as its users run it). Ours is float32 in every variant (the int8 one
quantises weights only): --llama-kv-cache f32 compares at the same precision throughout,
a setting llama.cpp runs much slower (session 8 measured it). Rounds
are best-of-N: other work on a shared machine only slows a run down. Figures are printed
as measured; nothing is modelled.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pointsman.engine.decoder import (
    SPINNING,
    Decoder,
    default_threads,
    load_decoder,
    resolve_spinning,
    spinning_fits,
    usable_cores,
)
from pointsman.loadtests.bench_serving import GrpcStreamer, HttpStreamer, raw_generate

if TYPE_CHECKING:
    from pointsman.launcher.tritonserver import TritonServer

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "bench-families"
SHAPES = {  # name -> (family, shape); vocabulary 512, context 1024
    "llama-89M": ("llama", dict(width=768, layers=10, heads=12, kv_heads=4)),
    "llama-300M": ("llama", dict(width=1024, layers=20, heads=16, kv_heads=4)),
    "gpt2-89M": ("gpt2", dict(width=768, layers=12, heads=12)),
    "gpt2-300M": ("gpt2", dict(width=1024, layers=24, heads=16)),
}
CONTEXT = 1024
VARIANTS = ("", "-int8")  # a model name may end in -int8: the same checkpoint, quantised
GENAI_FAMILIES = ("llama", "mistral", "qwen2", "phi3")  # what its model builder covers among ours


@dataclass
class Cell:
    """Every figure of one model at one prompt length (None: not measured)."""

    model: str
    params_m: float
    prompt: int
    threads: int
    spinning: bool  # whether our threads spin within a step (intra_op_spinning resolved)
    raw_ms: float | None = None
    served_ms: float | None = None
    genai_ms: float | None = None
    peer_ms: float | None = None
    peer_threads: int | None = None
    served_tps: dict[int, float] = field(default_factory=dict)
    served_rounds: dict[int, list[float]] = field(default_factory=dict)  # every round, in order
    bound_tps: dict[int, float] = field(default_factory=dict)
    genai_tps: dict[int, float] = field(default_factory=dict)
    llama_ms: float | None = None
    raw_by_genai_ms: float | None = None  # the raw loop, alternated run by run with onnxruntime-genai
    raw_by_llama_ms: float | None = None  # the raw loop, alternated request by request with llama-server
    llama_tps: dict[int, float] = field(default_factory=dict)
    llama_rounds: dict[int, list[float]] = field(default_factory=dict)  # every round, alternated with ours
    llama_by_raw: list[float] = field(default_factory=list)  # llama.cpp/raw, each pair of adjacent requests
    llama_by_served: list[float] = field(default_factory=list)  # llama.cpp/served, each pair of adjacent requests
    notes: list[str] = field(default_factory=list)


def prepare(name: str, kv_cache: str = "inplace", work: Path = WORK) -> tuple[Path, Path, float]:
    """Build and export the checkpoint once; (checkpoint, model folder, parameters in millions).

    kv_cache "concat" exports the older graph layout as `<name>-concat` (bench_kv_cache's baseline).
    work: the folder of checkpoints, exports, GGUF files and genai models (--work); an export
    whose exporter source changed since is redone, a checkpoint is never rebuilt.
    """
    from rich.console import Console

    from pointsman.export.pipeline import export_model
    from pointsman.export.random_checkpoints import build_checkpoint, family_tokenizer

    base = name.removesuffix("-int8")
    family, shape = SHAPES[base]
    checkpoint = work / "checkpoints" / base
    if not (checkpoint / "config.json").exists():
        tokenizer = family_tokenizer(work / "tokenizer", add_bos=family != "gpt2")
        build_checkpoint(family, tokenizer, checkpoint, context=CONTEXT, initializer_range=0.02, logit_scale=1.0,
                         **shape)
    exported = name if kv_cache == "inplace" else f"{name}-{kv_cache}"
    export_model(checkpoint, exported, work / "repository", console=Console(file=io.StringIO()),
                 quantize="int8" if name.endswith("-int8") else None, kv_cache=kv_cache)
    folder = work / "repository" / f"{exported}_stream"  # the engine model (repository/name is its twin)
    from safetensors import safe_open

    with safe_open(str(checkpoint / "model.safetensors"), "np") as weights:
        params = sum(int(np.prod(weights.get_slice(k).get_shape())) for k in weights.keys())  # noqa: SIM118
    return checkpoint, folder, params / 1e6


def prompt_text(tokenizer, length: int) -> tuple[str, list[int]]:
    """A text that the served tokenizer encodes to exactly `length` ids (BOS included)."""
    from pointsman.export.random_checkpoints import TRAINING_TEXT

    source = "".join(TRAINING_TEXT) * 20
    low, high = 1, len(source)
    while low < high:  # the shortest prefix with at least `length` ids
        mid = (low + high) // 2
        if len(tokenizer.encode(source[:mid])) < length:
            low = mid + 1
        else:
            high = mid
    for end in range(low, low + 8):
        ids = tokenizer.encode(source[:end])
        if len(ids) == length:
            return source[:end], ids
    raise SystemExit(f"no prefix encodes to exactly {length} tokens")


def prompt_ids(folder: Path, length: int) -> list[int]:
    """Token ids of a prompt of exactly `length` tokens for the model in `folder` (BOS included)."""
    from pointsman.engine.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.from_file(str(folder / "1" / "tokenizer.json"), bos_id=model_bos_id(folder))
    return prompt_text(tokenizer, length)[1]


def step_bound(decoder: Decoder, prompt_ids: Sequence[int], batch: int, steps: int = 6) -> float:
    """Tokens/s if every step were a bare decode_batch of `batch` sequences, in a steady decoding loop.

    The prompt is prefilled once; the other sequences start from copies of its cache (each
    its own row of the KV buffer). The batch decodes on its own outputs as the engine does;
    the first two steps are left out and the fastest of the rest counts.
    """
    caches = [decoder.prefill(prompt_ids)[1]]
    fork = getattr(decoder, "fork", None)  # the in-place decoder: rows of their own
    caches += [fork(caches[0]) if fork else caches[0] for _ in range(batch - 1)]
    times = []
    try:
        for _ in range(2 + steps):
            began = time.perf_counter()
            _, caches = decoder.decode_batch([(5, c) for c in caches])
            times.append(time.perf_counter() - began)
    finally:
        for cache in caches:
            decoder.release(cache)
    return batch / min(times[2:])


Streamer = GrpcStreamer | HttpStreamer
# --client: how this bench streams from our server; llama-server is always read with httpx
CLIENTS = {"http": (HttpStreamer, "http_url"), "grpc": (GrpcStreamer, "grpc_url")}


def connect(server: TritonServer, model: str, client: str) -> Streamer:
    """A stream to the engine model `model`_stream of a running TritonServer, over --client."""
    kind, address = CLIENTS[client]
    return kind(getattr(server, address), f"{model}_stream")


def served_concurrent(server: TritonServer, model: str, prompt: str, tokens: int, concurrency: int,
                      client: str = "http") -> float | None:
    """Tokens/s of `concurrency` streaming requests sent together (prefill included); None if one failed.

    A request that waits over bench_serving's 120 s for a response counts as failed: on a
    loaded 2-core machine that is what c=32 with 512-token prompts can do.
    """
    import httpx

    streamers = [connect(server, model, client) for _ in range(concurrency)]
    spans: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(concurrency)

    def one(streamer: Streamer) -> None:
        start.wait()
        try:
            answer = streamer.generate(prompt, tokens)
        except (queue.Empty, SystemExit, httpx.HTTPError):  # timed out or an error: the cell reports None
            return
        with lock:
            spans.append((answer.sent, answer.arrivals[-1], answer.tokens))

    threads = [threading.Thread(target=one, args=(s,)) for s in streamers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in streamers:
            s.close()
    if len(spans) != concurrency or any(count != tokens for *_, count in spans):
        return None
    return sum(count for *_, count in spans) / (max(end for _, end, _ in spans) - min(s for s, _, _ in spans))


def genai(python: str, checkpoint: Path, name: str, prompt_ids: Sequence[int], tokens: int, threads: int,
          batch: int, work: Path = WORK) -> dict:
    out = work / "genai" / name
    runner = Path(__file__).with_name("genai_runner.py")
    done = subprocess.run([python, str(runner), "--checkpoint", str(checkpoint), "--out", str(out),
                           "--threads", str(threads), "--prompt-ids", ",".join(map(str, prompt_ids)),
                           "--new-tokens", str(tokens), "--batch", str(batch)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_ms_per_token(checkpoint: Path, prompt: str, tokens: int, threads: int, log: Path) -> float:
    """The FastAPI + transformers.generate() peer: best of two requests, latency / tokens (prefill included)."""
    from pointsman.loadtests.bench_report import Client, PeerProcess

    peer = PeerProcess(checkpoint, log, threads=threads).start()
    try:
        peer.wait_ready()
        client = Client("127.0.0.1", peer.port)
        best = float("inf")
        for _ in range(2):
            status, raw = client.post("/generate", {"prompt": prompt, "max_new_tokens": tokens,
                                                    "min_new_tokens": tokens})
            if status != 200:
                raise RuntimeError(f"peer answered {status}: {raw[:200]!r}")
            answer = json.loads(raw)
            best = min(best, answer["latency_ms"] / answer["tokens"])
        client.close()
        return best
    finally:
        peer.stop()


def measure(name: str, args: argparse.Namespace, deadline: float) -> list[Cell]:
    from pointsman.engine.tokenizer import TextTokenizer

    checkpoint, folder, params_m = prepare(name, work=args.work)
    family, quantized = SHAPES[name.removesuffix("-int8")][0], name.endswith("-int8")
    onnx = folder / "1" / "model.onnx"
    threads = default_threads(onnx.stat().st_size, usable_cores())
    tokenizer = TextTokenizer.from_file(str(folder / "1" / "tokenizer.json"), bos_id=model_bos_id(folder))
    cells = []
    with tempfile.TemporaryDirectory(prefix="bench-families-") as tmp, contextlib.ExitStack() as stack:
        decoder, server, spinning = serve_with_raw_loop(stack, Path(tmp), name, folder, args.work, args.spinning,
                                                        threads)
        llama_url = start_llama_cpp(stack, checkpoint, quantized, threads, args, Path(tmp))
        for length in args.prompts:
            prompt, ids = prompt_text(tokenizer, length)
            cell = Cell(name, params_m, length, threads, spinning)
            cells.append(cell)
            if isinstance(llama_url, Exception):
                cell.notes.append(f"llama.cpp failed: {llama_url}")
            elif llama_url is None:
                cell.notes.append("llama.cpp not measured (no --llama-server/--llama-cpp-source)")
            _latency(cell, server, decoder, prompt, ids, args)
            if isinstance(llama_url, str):
                _llama_latency(cell, llama_url, server, decoder, prompt, ids, args)
            for c in args.concurrency:
                if time.monotonic() > deadline:
                    cell.notes.append(f"c={c}+ not measured (time budget)")
                    break
                cell.bound_tps[c] = step_bound(decoder, ids + [5] * (args.tokens // 2), c)
                if not _concurrent_rounds(cell, c, server, llama_url, prompt, ids, args):
                    cell.notes.append(f"c={c}: a request failed or waited > 120 s")
                    break
                _print_progress(cell)
            if args.genai_python and not quantized and family in GENAI_FAMILIES and time.monotonic() < deadline:
                _genai(cell, args, checkpoint, ids, threads, decoder)
            if args.peer and not quantized and time.monotonic() < deadline:
                _peer(cell, checkpoint, prompt, args, Path(tmp))
            _print_progress(cell)
    return cells


def serve_with_raw_loop(stack: contextlib.ExitStack, tmp: Path, name: str, folder: Path, work: Path,
                        spinning: str, threads: int) -> tuple[Decoder, TritonServer, bool]:
    """Start tritonserver on the model and its twin (in `stack`); load the raw loop's decoder on the same graph.

    The raw loop waits as the served engine will: `spinning` auto is resolved as the stub resolves it.
    Returns (decoder, server, whether the threads spin).
    """
    from pointsman.launcher.tritonserver import ServerPorts, TritonServer
    from pointsman.triton_adapters.repository_threads import engine_threads

    repository = tmp / "repository"
    repository.mkdir()
    (repository / name).symlink_to(work / "repository" / name, target_is_directory=True)  # the twin
    engine_folder(repository / f"{name}_stream", folder, spinning)
    spins = resolve_spinning(spinning, fits=spinning_fits(engine_threads(repository, usable_cores()), usable_cores()))
    decoder = load_decoder(str(folder / "1" / "model.onnx"), threads=threads, providers="cpu", spinning=spins)
    server = stack.enter_context(TritonServer(repository, ports=ServerPorts.free(), log_file=tmp / "server.log"))
    return decoder, server, spins


def engine_folder(target: Path, exported: Path, spinning: str) -> None:
    """The engine model's folder as exported, with intra_op_spinning set as --spinning says."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    target.mkdir()
    for path in exported.iterdir():
        if path.name != "config.pbtxt":
            (target / path.name).symlink_to(path.resolve(), target_is_directory=path.is_dir())
    config = text_format.Parse((exported / "config.pbtxt").read_text(), mc.ModelConfig())
    config.parameters["intra_op_spinning"].string_value = spinning
    (target / "config.pbtxt").write_text(text_format.MessageToString(config))


def start_llama_cpp(stack: contextlib.ExitStack, checkpoint: Path, quantized: bool, threads: int, args,
                    tmp: Path) -> str | Exception | None:
    """Start llama-server on the same checkpoint and threads beside ours; its URL, the failure, or None (not asked)."""
    import httpx

    from pointsman.loadtests.llama_cpp import LlamaCppPeer

    peer = LlamaCppPeer.find(args.llama_server, args.llama_cpp_source, args.llama_cpp_python)
    if peer is None:
        return None
    try:
        gguf = peer.convert(checkpoint, "q8_0" if quantized else "f32", args.work / "gguf")
        return stack.enter_context(peer.serve(gguf, threads=threads, slots=16, context=CONTEXT,
                                              log=tmp / "llama.log", blocking=args.llama_blocking,
                                              load_mode=args.llama_load_mode,
                                              kv_cache=args.llama_kv_cache))
    except (RuntimeError, OSError, httpx.HTTPError) as exc:  # the peer failing is a note, not the end of the run
        return exc


def _llama_latency(cell: Cell, url: str, server: TritonServer, decoder: Decoder, prompt: str, ids: list[int],
                   args) -> None:
    """llama.cpp's per-token latency at c=1, request by request in turn with our served model and the raw loop.

    Best-of figures (llama_ms, raw_by_llama_ms) pick each side's least disturbed moment, which
    need not be the same moment; the ratio of each adjacent pair (llama_by_raw, llama_by_served)
    shares its moment's load, so their median is the steadier verdict on a shared machine.
    llama.cpp and our server take turns going first, so neither always runs in the other's wake.
    """
    import httpx

    from pointsman.loadtests.llama_cpp import per_token_ms

    llama, raw = [], []
    streamer = connect(server, cell.model, args.client)
    try:
        for repeat in range(args.repeats):
            if repeat % 2:
                served = _served_ms(streamer, prompt, args.tokens)
                llama.append(per_token_ms(url, ids, args.tokens, repeats=1))
            else:
                llama.append(per_token_ms(url, ids, args.tokens, repeats=1))
                served = _served_ms(streamer, prompt, args.tokens)
            raw.append(raw_ms_per_token(decoder, ids, args.tokens))
            cell.llama_by_served.append(llama[-1] / served)
            cell.llama_by_raw.append(llama[-1] / raw[-1])
    except (RuntimeError, httpx.HTTPError) as exc:
        cell.notes.append(f"llama.cpp failed: {exc}")
        return
    finally:
        streamer.close()
    cell.llama_ms, cell.raw_by_llama_ms = min(llama), min(raw)


def _concurrent_rounds(cell: Cell, c: int, server: TritonServer, llama_url, prompt: str, ids: list[int], args) -> bool:
    """--rounds rounds at concurrency c: ours, then llama.cpp's (up to its 16 slots); False if ours failed."""
    import httpx

    from pointsman.loadtests.llama_cpp import concurrent_tps

    for _ in range(args.rounds):
        served = served_concurrent(server, cell.model, prompt, args.tokens, c, args.client)
        if served is None:
            return False
        cell.served_rounds.setdefault(c, []).append(served)
        cell.served_tps[c] = max(cell.served_rounds[c])
        if isinstance(llama_url, str) and c <= 16:
            try:
                cell.llama_rounds.setdefault(c, []).append(concurrent_tps(llama_url, ids, args.tokens, c))
            except (RuntimeError, httpx.HTTPError) as exc:
                cell.notes.append(f"llama.cpp c={c} failed: {exc}")
                continue
            cell.llama_tps[c] = max(cell.llama_rounds[c])
    return True


def model_bos_id(folder: Path) -> int | None:
    """The BOS id export wrote into the model's config.pbtxt (None: the model adds none)."""
    from pointsman.export.repository import read_parameters

    value = read_parameters(folder).get("bos_token_id", "")
    return int(value) if value else None


def _latency(cell: Cell, server: TritonServer, decoder: Decoder, prompt: str, ids: list[int], args) -> None:
    """Per-token latency at concurrency 1, served and raw, alternating request by request."""
    streamer = connect(server, cell.model, args.client)
    served, raw = [], []
    try:
        for _ in range(args.repeats):
            served.append(_served_ms(streamer, prompt, args.tokens))
            raw.append(raw_ms_per_token(decoder, ids, args.tokens))
    finally:
        streamer.close()
    cell.served_ms, cell.raw_ms = min(served), min(raw)


def _served_ms(streamer: Streamer, prompt: str, tokens: int) -> float:
    # per decoding step, each piece dated by its token count: a character spanning tokens arrives as one piece
    return streamer.generate(prompt, tokens).step_s() * 1e3


def raw_ms_per_token(decoder: Decoder, ids: list[int], tokens: int) -> float:
    _, times = raw_generate(decoder, ids, tokens)
    return (times[-1] - times[0]) / (len(times) - 1) * 1e3


def _genai(cell: Cell, args, checkpoint: Path, ids: list[int], threads: int, decoder: Decoder) -> None:
    """onnxruntime-genai at batch 1, alternated run by run with the raw loop; then its static batch."""
    try:
        runs, raw = [], []
        for _ in range(args.repeats):
            runs.append(genai(args.genai_python, checkpoint, cell.model, ids, args.tokens, threads, 1,
                              args.work)["ms_per_token"])
            raw.append(raw_ms_per_token(decoder, ids, args.tokens))
        cell.genai_ms, cell.raw_by_genai_ms = min(runs), min(raw)
        for c in [c for c in args.concurrency if 1 < c <= 16][-1:]:
            cell.genai_tps[c] = genai(args.genai_python, checkpoint, cell.model, ids, args.tokens, threads,
                                      c, args.work)["tokens_per_s"]
    except (RuntimeError, ValueError) as exc:
        cell.notes.append(f"onnxruntime-genai failed: {exc}")


def _peer(cell: Cell, checkpoint: Path, prompt: str, args, tmp: Path) -> None:
    best = None
    for threads in sorted({1, usable_cores()}):
        try:
            ms = peer_ms_per_token(checkpoint, prompt, args.tokens, threads, tmp / "peer.log")
        except RuntimeError as exc:  # e.g. not ready in time on a loaded machine: say so, keep the run
            cell.notes.append(f"peer ({threads} threads) failed: {exc}")
            continue
        if best is None or ms < best[0]:
            best = (ms, threads)
    if best is not None:
        cell.peer_ms, cell.peer_threads = best


def _print_progress(cell: Cell) -> None:
    """One JSON line per finished cell on stderr, so a run cut short still leaves its figures."""
    print(json.dumps(cell.__dict__, default=str), file=sys.stderr, flush=True)  # noqa: T201


def _rounds(values: list[float] | None) -> str:
    """Every round's figure, in order (a/b for two rounds)."""
    return "/".join(f"{v:.1f}" for v in values) if values else "-"


def _paired(cell: Cell) -> str:
    """Median of the adjacent-pair ratios against the raw loop and the served model, and how many pairs."""
    if not cell.llama_by_raw:
        return "-"
    return (f"{np.median(cell.llama_by_raw):.2f}x, {np.median(cell.llama_by_served):.2f}x "
            f"(median of {len(cell.llama_by_raw)})")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(cells: list[Cell], concurrency: Sequence[int], tokens: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    latency = Table(title=f"per-token latency at c=1, ms ({tokens} new tokens; best of the run's repeats)")
    for column in ("model", "params", "prompt", "threads", "raw ORT loop", "served", "served/raw",
                   "ORT-genai (raw alt.)", "genai/raw", "peer (threads)", "llama.cpp (raw alt.)", "llama.cpp/raw",
                   "llama.cpp/ours by pair: raw, served"):
        latency.add_column(column, justify="left" if column == "model" else "right")
    for c in cells:
        ratio = c.served_ms / c.raw_ms if c.served_ms and c.raw_ms else None
        genai_ratio = c.genai_ms / c.raw_by_genai_ms if c.genai_ms and c.raw_by_genai_ms else None
        peer = f"{_fmt(c.peer_ms)} ({c.peer_threads})" if c.peer_ms else "-"
        llama_ratio = c.llama_ms / c.raw_by_llama_ms if c.llama_ms and c.raw_by_llama_ms else None
        genai = f"{_fmt(c.genai_ms, 2)} ({_fmt(c.raw_by_genai_ms, 2)})" if c.genai_ms else "-"
        llama = f"{_fmt(c.llama_ms, 2)} ({_fmt(c.raw_by_llama_ms, 2)})" if c.llama_ms else "-"
        latency.add_row(c.model, f"{c.params_m:.0f}M", str(c.prompt), str(c.threads), _fmt(c.raw_ms, 2),
                        _fmt(c.served_ms, 2), _fmt(ratio, 2) + ("x" if ratio else ""), genai,
                        _fmt(genai_ratio, 2) + ("x" if genai_ratio else ""), peer, llama,
                        _fmt(llama_ratio, 2) + ("x" if llama_ratio else ""), _paired(c))
    console.print(latency)
    throughput = Table(title="tokens/s served, each round (requests sent together, prefill included) | step-cost "
                             "bound (batch / one bare decode step) | onnxruntime-genai static batch | llama.cpp, "
                             "each round, taking turns with ours | ours/llama.cpp by round")
    throughput.add_column("model")
    throughput.add_column("prompt", justify="right")
    for c in concurrency:
        throughput.add_column(f"c={c}", justify="right")
    throughput.add_column("notes")
    for cell in cells:
        row = []
        for c in concurrency:
            text = f"{_rounds(cell.served_rounds.get(c))} | {_fmt(cell.bound_tps.get(c))}"
            if c in cell.genai_tps:
                text += f" | genai {_fmt(cell.genai_tps[c])}"
            if c in cell.llama_rounds:
                text += f" | llama.cpp {_rounds(cell.llama_rounds[c])}"
                ours, theirs = cell.served_rounds.get(c, []), cell.llama_rounds[c]
                text += " | ours/llama.cpp " + "/".join(f"{a / b:.2f}" for a, b in zip(ours, theirs, strict=False))
            row.append(text)
        throughput.add_row(cell.model, str(cell.prompt), *row, "; ".join(cell.notes))
    console.print(throughput)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_families",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SHAPES),
                        choices=[name + variant for name in SHAPES for variant in VARIANTS])
    parser.add_argument("--prompts", nargs="+", type=int, default=[32, 512])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4, 16, 32])
    parser.add_argument("--repeats", type=int, default=3,
                        help="c=1 latency requests per path (the best counts; llama.cpp's pairs also give a median)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="turns at each concurrency, ours then llama.cpp's (every round is printed)")
    parser.add_argument("--genai-python", help="python of a venv with onnxruntime-genai 0.18 (else not measured)")
    parser.add_argument("--peer", action="store_true", help="also run the FastAPI + transformers peer")
    parser.add_argument("--llama-server", help="a built llama-server binary (else llama.cpp is not measured)")
    parser.add_argument("--llama-cpp-source", help="the llama.cpp source it was built from (its GGUF converter)")
    parser.add_argument("--spinning", choices=SPINNING, default="auto",
                        help="our intra_op_spinning (default auto, export's: one model with every core spins "
                             "within a step, as llama.cpp's threads do); the raw loop waits the same way")
    parser.add_argument("--llama-blocking", action="store_true",
                        help="llama.cpp's threads sleep when they wait, as ours do by default: --poll 0 between "
                             "steps and OMP_WAIT_POLICY=passive between operators (default: llama.cpp's own, spin)")
    parser.add_argument("--llama-load-mode", choices=["mmap", "none"],
                        help="llama-server --load-mode: none reads the weights into memory, where malloc's huge "
                             "pages reach them as they reach ours (default: llama.cpp's own, mmap)")
    parser.add_argument("--llama-kv-cache", choices=["f16", "f32"], default="f16",
                        help="llama-server's KV cache type: f16 (default), llama.cpp's own; f32 as ours, the "
                             "same precision throughout, which llama.cpp runs much slower")
    parser.add_argument("--llama-cpp-python", help="a python with the converter's requirements (default: this one)")
    parser.add_argument("--work", type=Path, default=WORK,
                        help=f"checkpoints, exports, GGUF and genai models (default {WORK}); reused when present")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="http",
                        help="how ours is streamed: http (generate_stream read with httpx, as llama-server's "
                             "stream is; the default) or grpc (tritonclient)")
    parser.add_argument("--budget-minutes", type=float, default=40.0,
                        help="stop starting new concurrency cells after this long (the machine is shared)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request (export logs at INFO)
    deadline = time.monotonic() + 60 * args.budget_minutes
    cells: list[Cell] = []
    for name in args.models:
        if time.monotonic() > deadline:
            print(f"{name}: not measured (time budget)", file=sys.stderr)  # noqa: T201
            continue
        cells += measure(name, args, deadline)
    report(cells, args.concurrency, args.tokens)
    ours = "/".join(sorted({"spin" if cell.spinning else "block" for cell in cells})) or "-"
    print(f"threads waiting for work: ours {ours} (intra_op_spinning {args.spinning}), llama.cpp "  # noqa: T201
          f"{'block (--poll 0, OMP_WAIT_POLICY=passive)' if args.llama_blocking else 'default (spin)'}; "
          f"llama.cpp weights: {args.llama_load_mode or 'mmap (default)'}, KV cache: {args.llama_kv_cache} "
          f"(ours: float32); malloc huge pages: "
          f"{os.environ.get('GLIBC_TUNABLES', '')}; ours streamed over {args.client} "
          f"({'generate_stream read with httpx, as llama-server is' if args.client == 'http' else 'tritonclient'}); "
          "per-token figures time each decoding step by the pieces' token counts")
    return 0


if __name__ == "__main__":
    from pointsman.launcher.tritonserver import rerun_with_huge_pages

    rerun_with_huge_pages("pointsman.loadtests.bench_families")  # the raw loop runs as the stubs do
    raise SystemExit(main())
