"""Serving overhead at concurrency 1: per-token latency through Triton vs the raw onnxruntime loop.

    .venv/bin/python -m pointsman.loadtests.bench_serving
    .venv/bin/python -m pointsman.loadtests.bench_serving --url 127.0.0.1:8001 --requests 20 --tokens 64

Through the server: tritonclient gRPC streaming to the model (stream true, ignore_eos),
one request at a time; per-token latency is each request's inter-token latency as the
client sees it, (last piece - first piece) / (tokens - 1). In process: the engine's decoder on the
same ONNX file with the model's thread setting, greedy, one decode step per token, timed
the same way. The two alternate request by request, so drifting load on a shared
machine hits both alike. Target (issue 2): server p50 <= 1.3x in-process p50.

Without --url it starts tritonserver on free loopback ports with a repository holding
only the benchmarked model, and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointsman.engine.decoder import Decoder, load_decoder
from pointsman.engine.tokenizer import TextTokenizer
from pointsman.export.repository import engine_name

PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
TARGET = 1.3


@dataclass(frozen=True)
class Streamed:
    """One streamed request as the client saw it."""

    sent: float
    arrivals: list[float]  # when each piece with text arrived
    counts: list[int | None]  # the tokens generated when each piece went out (the engine's `tokens`), if sent
    tokens: int  # the final response's count

    def step_s(self) -> float:
        """Seconds per decoding step, first piece to last, each dated by its own token count.

        (last - first arrival) / (tokens - 1) would count a step for every token outside
        that span: a first or last piece that waited for a character's last byte.
        """
        first, last = self.counts[0], self.counts[-1]
        if first is None or last is None:
            raise SystemExit("the streamed pieces carry no token counts (an engine model sends them)")
        if last == first:
            raise SystemExit("the stream sent its text in one piece; no step to time")
        return (self.arrivals[-1] - self.arrivals[0]) / (last - first)


@dataclass(frozen=True)
class Timings:
    """Per-token gaps (seconds) and times to first token of every measured request."""

    gaps: np.ndarray
    ttft: np.ndarray

    def ms(self, q: float) -> float:
        return float(np.percentile(self.gaps, q) * 1e3)


class GrpcStreamer:
    """One gRPC stream to a decoupled model; each request's response arrival times."""

    def __init__(self, url: str, model: str) -> None:
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        self.model = model
        self._client = grpcclient.InferenceServerClient(url)
        self._answers: queue.Queue = queue.Queue()
        self._client.start_stream(callback=lambda result, error: self._answers.put((time.perf_counter(), result,
                                                                                     error)))

    def _input(self, name: str, value, dtype) -> object:
        array = np.array([value], dtype=dtype)
        tensor = self._grpc.InferInput(name, list(array.shape), {np.object_: "BYTES", np.int32: "INT32",
                                                                 np.bool_: "BOOL"}[dtype])
        tensor.set_data_from_numpy(array)
        return tensor

    def generate(self, prompt: str, tokens: int) -> Streamed:
        """Send one streaming request; read it to its final response."""
        inputs = [self._input("text_input", prompt.encode(), np.object_),
                  self._input("max_tokens", tokens, np.int32),
                  self._input("stream", True, np.bool_),
                  self._input("ignore_eos", True, np.bool_)]
        sent = time.perf_counter()
        self._client.async_stream_infer(self.model, inputs, enable_empty_final_response=True)
        arrivals, counts, count = [], [], 0
        while True:
            at, result, error = self._answers.get(timeout=120)
            if error is not None:
                raise SystemExit(f"{self.model} answered with an error: {error}")
            response = result.get_response()
            reported = result.as_numpy("tokens")
            if reported is not None:
                count = int(reported.reshape(-1)[0])
            text = result.as_numpy("text_output")
            if text is not None and text.reshape(-1)[0]:
                arrivals.append(at)
                counts.append(None if reported is None else count)
            if response.parameters["triton_final_response"].bool_param:
                return Streamed(sent, arrivals, counts, count)

    def close(self) -> None:
        self._client.stop_stream()
        self._client.close()


class HttpStreamer:
    """Triton's generate_stream (server-sent events) read with httpx, as bench_families reads llama-server's stream.

    On a machine whose cores the server uses, the client's own work per piece slows the
    server down, and tritonclient's gRPC stream costs about twice the CPU per piece of this
    (issue 13, session 7), so comparing two servers takes the same client for both.
    """

    def __init__(self, url: str, model: str) -> None:
        import httpx

        self.model = model
        self._url = f"http://{url}/v2/models/{model}/generate_stream"
        self._client = httpx.Client(timeout=120.0)

    def generate(self, prompt: str, tokens: int) -> Streamed:
        """Send one streaming request; read it to its final event."""
        body = {"text_input": prompt, "max_tokens": tokens, "stream": True, "ignore_eos": True}
        sent = time.perf_counter()
        arrivals, counts, count = [], [], 0
        with self._client.stream("POST", self._url, json=body) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                at, event = time.perf_counter(), json.loads(line[5:])
                if "error" in event:
                    raise SystemExit(f"{self.model} answered with an error: {event['error']}")
                if "finish_reason" in event:
                    count = int(event["tokens"])
                elif event.get("text_output"):
                    arrivals.append(at)
                    counts.append(event.get("tokens"))
        return Streamed(sent, arrivals, counts, count)

    def close(self) -> None:
        self._client.close()


def raw_generate(decoder: Decoder, prompt_ids: Sequence[int], tokens: int) -> tuple[float, list[float]]:
    """Run the greedy loop with nothing around it; return (start, time each token was chosen)."""
    start = time.perf_counter()
    logits, cache = decoder.prefill(prompt_ids)
    token = int(np.argmax(logits))
    times = [time.perf_counter()]
    while len(times) < tokens:
        step, caches = decoder.decode_batch([(token, cache)])
        cache = caches[0]
        token = int(np.argmax(step[0]))
        times.append(time.perf_counter())
    decoder.release(cache)
    return start, times


def model_settings(folder: Path) -> dict[str, str]:
    """Read the string parameters of the model's config.pbtxt."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    return {key: value.string_value for key, value in config.parameters.items()}


def run(url: str, model: str, folder: Path, requests: int, tokens: int, warmup: int) -> tuple[Timings, Timings, int]:
    settings = model_settings(folder)
    decoder = load_decoder(str(folder / "1" / settings.get("onnx_file", "model.onnx")),
                           threads=settings.get("intra_op_threads", "auto"),
                           providers=settings.get("execution_providers", "auto"))
    prompt_ids = TextTokenizer.from_file(str(folder / "1" / settings.get("tokenizer_file", "tokenizer.json"))).encode(
        PROMPT)
    streamer = GrpcStreamer(url, engine_name(model))  # streaming: the decoupled engine model
    served: list[tuple[float, list[float]]] = []
    raw: list[tuple[float, list[float]]] = []
    try:
        for index in range(warmup + requests):
            answer = streamer.generate(PROMPT, tokens)
            if answer.tokens != tokens:
                raise SystemExit(f"{model} made {answer.tokens} tokens, asked for {tokens}")
            start, times = raw_generate(decoder, prompt_ids, tokens)
            if index >= warmup:
                served.append((answer.sent, answer.arrivals))
                raw.append((start, times))
    finally:
        streamer.close()

    def timings(runs: list[tuple[float, list[float]]]) -> Timings:
        # inter-token latency as genai-perf defines it: (last - first arrival) / (tokens - 1),
        # per request; pieces that arrive together (a character spanning tokens, or text
        # the server coalesced while the client was busy) then count for every token
        return Timings(np.array([(times[-1] - times[0]) / (tokens - 1) for _, times in runs]),
                       np.array([times[0] - start for start, times in runs]))

    pieces = min(len(arrivals) for _, arrivals in served)
    return timings(served), timings(raw), pieces


def report(model: str, tokens: int, requests: int, served: Timings, raw: Timings, pieces: int) -> float:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 110)
    table = Table(title=f"{model}: per-token latency at concurrency 1, {requests} requests x {tokens} tokens")
    for column in ("path", "p50 ms/token", "mean ms/token", "p99 ms/token", "TTFT p50 ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, t in (("Triton gRPC stream", served), ("in-process onnxruntime loop", raw)):
        table.add_row(name, f"{t.ms(50):.3f}", f"{t.gaps.mean() * 1e3:.3f}", f"{t.ms(99):.3f}",
                      f"{np.median(t.ttft) * 1e3:.2f}")
    console.print(table)
    ratio = served.ms(50) / raw.ms(50)
    verdict = "[green]met[/]" if ratio <= TARGET else "[red]missed[/]"
    mean_ratio = served.gaps.mean() / raw.gaps.mean()
    console.print(f"ratio server / in-process, p50 per token: {ratio:.2f}x (mean {mean_ratio:.2f}x); "
                  f"target <= {TARGET}x: {verdict}")
    if pieces < tokens:
        console.print(f"note: a request streamed {pieces} pieces for {tokens} tokens (a character spanning tokens "
                      "arrives whole), so some gaps cover two tokens")
    return ratio


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_serving",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="gRPC host:port of a running server (default: start one on free ports)")
    parser.add_argument("--model", default="gpt2")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = args.model_repository.resolve() / engine_name(args.model)
    if not (folder / "1" / "model.onnx").exists():
        raise SystemExit(f"{folder / '1' / 'model.onnx'} is missing: run `make setup` first")
    if args.url:
        served, raw, pieces = run(args.url, args.model, folder, args.requests, args.tokens, args.warmup)
    else:
        from pointsman.launcher.tritonserver import ServerPorts, TritonServer

        with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
            # a repository of just this model: nothing else competes for the cores or can fail to load
            repository = Path(tmp) / "repository"
            repository.mkdir()
            (repository / engine_name(args.model)).symlink_to(folder, target_is_directory=True)
            server = TritonServer(repository, ports=ServerPorts.free(), log_file=Path(tmp) / "server.log")
            print(f"starting tritonserver with {args.model} on {server.grpc_url} ...", flush=True)  # noqa: T201
            with server:
                served, raw, pieces = run(server.grpc_url, args.model, folder, args.requests, args.tokens,
                                          args.warmup)
    report(args.model, args.tokens, args.requests, served, raw, pieces)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
