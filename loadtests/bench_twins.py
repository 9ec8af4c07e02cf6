"""Tokens/s through the non-decoupled `router` against the streaming `router_stream`, at c=1/4/16.

    .venv/bin/python -m pointsman.loadtests.bench_twins                       # starts its own server
    .venv/bin/python -m pointsman.loadtests.bench_twins --url 127.0.0.1:8001 --concurrency 1,4,16

Three ways to the same generation (manual model, ignore_eos, fixed max_tokens):
- `router`: the non-decoupled twin, one answer (unary ModelInfer through
  pointsman.client.PointsmanClient); it forwards over loopback gRPC to router_stream;
- `router_stream once`: the decoupled router over the gRPC stream with stream false, one
  answer (tritonclient directly): the baseline for the twin's extra hop;
- `router_stream`: the same with stream true, one response per piece (PointsmanClient.stream).
They alternate within every round at every concurrency, so a shared machine's drift hits
all alike. router / router_stream once is the twin's cost; were the twin's requests
serialised, it would collapse with concurrency, which is what this benchmark guards.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pointsman.client import PointsmanClient

PROMPT = "Write a short story about a lighthouse keeper and the sea."
TARGETS = ("router_stream", "router_stream once", "router")


@dataclass(frozen=True)
class Run:
    target: str
    concurrency: int
    round: int
    tokens: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


class StreamOnce:
    """router_stream with stream false over one open gRPC stream (tritonclient): one response each."""

    def __init__(self, url: str) -> None:
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        self._answers: queue.Queue = queue.Queue()
        self._client = grpcclient.InferenceServerClient(url)
        self._client.start_stream(callback=lambda result, error: self._answers.put((result, error)))

    def __call__(self, model: str, max_tokens: int) -> int:
        import numpy as np

        from pointsman.client.request import scalar

        inputs = []
        for name, value, dtype in (("text_input", PROMPT.encode(), "BYTES"), ("model", model.encode(), "BYTES"),
                                   ("max_tokens", max_tokens, "INT32"), ("ignore_eos", True, "BOOL")):
            tensor = self._grpc.InferInput(name, [1], dtype)
            tensor.set_data_from_numpy(np.array([value], dtype={"BYTES": np.object_, "INT32": np.int32,
                                                                 "BOOL": np.bool_}[dtype]))
            inputs.append(tensor)
        self._client.async_stream_infer("router_stream", inputs)
        result, error = self._answers.get(timeout=300)
        if error is not None:
            raise SystemExit(f"router_stream answered with an error: {error}")
        return int(scalar(result.as_numpy("tokens")))

    def close(self) -> None:
        self._client.stop_stream()
        self._client.close()


def _one(client: PointsmanClient | StreamOnce, target: str, model: str, max_tokens: int) -> tuple[int, float]:
    began = time.perf_counter()
    options = dict(model=model, max_tokens=max_tokens, ignore_eos=True)
    if isinstance(client, StreamOnce):
        tokens = client(model, max_tokens)
        if tokens != max_tokens:
            raise SystemExit(f"{target} made {tokens} tokens, asked for {max_tokens}")
        return tokens, (time.perf_counter() - began) * 1e3
    if target == "router_stream":
        stream = client.stream(PROMPT, **options)
        for _ in stream:
            pass
        response = stream.response
    else:
        response = client.generate(PROMPT, **options)
    if response.tokens != max_tokens:
        raise SystemExit(f"{target} made {response.tokens} tokens, asked for {max_tokens}")
    return max_tokens, (time.perf_counter() - began) * 1e3


def measure(url: str, target: str, model: str, concurrency: int, requests_per_worker: int, max_tokens: int,
            round_: int) -> Run:
    clients = [StreamOnce(url) if target == "router_stream once" else PointsmanClient(url, protocol="grpc")
               for _ in range(concurrency)]
    try:
        # at low concurrency each worker sends more, so every run has at least 16 requests
        per_worker = max(requests_per_worker, -(-16 // concurrency))

        def worker(index: int) -> list[tuple[int, float]]:
            return [_one(clients[index], target, model, max_tokens) for _ in range(per_worker)]

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = [r for batch in pool.map(worker, range(concurrency)) for r in batch]
        seconds = time.perf_counter() - began
    finally:
        for client in clients:
            client.close()
    return Run(target, concurrency, round_, sum(t for t, _ in results), seconds, tuple(ms for _, ms in results))


def run(url: str, model: str, concurrencies: Sequence[int], rounds: int, requests_per_worker: int,
        max_tokens: int) -> list[Run]:
    for target in TARGETS:  # warm both paths (first requests build clients and sessions)
        measure(url, target, model, 1, 2, max_tokens, -1)
    runs = []
    for concurrency in concurrencies:
        for round_ in range(rounds):
            order = TARGETS if round_ % 2 == 0 else tuple(reversed(TARGETS))
            for target in order:
                runs.append(measure(url, target, model, concurrency, requests_per_worker, max_tokens, round_))
                print(f"c={concurrency} round {round_} {target:18s} {runs[-1].tokens_per_s:7.1f} tok/s",  # noqa: T201
                      flush=True)
    return runs


def report(runs: Sequence[Run], model: str, max_tokens: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"router (non-decoupled twin) against router_stream, gRPC: manual {model}, "
                        f"{max_tokens} tokens per request, medians over rounds")
    for column in ("conc.", "router_stream (streamed) tok/s", "router_stream once tok/s", "router tok/s",
                   "router / once", "router / streamed", "once p50 ms", "router p50 ms"):
        table.add_column(column, justify="right")
    for concurrency in sorted({r.concurrency for r in runs}):
        def median_of(target: str, c: int = concurrency) -> tuple[float, float]:
            picked = [r for r in runs if r.target == target and r.concurrency == c]
            return (statistics.median(r.tokens_per_s for r in picked),
                    statistics.median(statistics.median(r.latencies_ms) for r in picked))

        (streamed, _), (once, once_p50), (twin, twin_p50) = (median_of(t) for t in TARGETS)
        table.add_row(str(concurrency), f"{streamed:.1f}", f"{once:.1f}", f"{twin:.1f}", f"{twin / once:.2f}",
                      f"{twin / streamed:.2f}", f"{once_p50:.0f}", f"{twin_p50:.0f}")
    console = Console()
    (console if console.is_terminal else Console(width=140)).print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_twins",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="Triton gRPC host:port (default: start a server on free ports)")
    parser.add_argument("--model", default="distilgpt2", help="the model both routers are told to use")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-per-worker", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    options = dict(model=args.model, concurrencies=concurrencies, rounds=args.rounds,
                   requests_per_worker=args.requests_per_worker, max_tokens=args.max_tokens)
    if args.url:
        runs = run(args.url, **options)
    else:
        from pointsman.launcher.tritonserver import ServerPorts, TritonServer

        with tempfile.TemporaryDirectory(prefix="bench-twins-") as tmp:
            server = TritonServer(args.model_repository.resolve(), ports=ServerPorts.free(),
                                  log_file=Path(tmp) / "server.log")
            print(f"starting tritonserver on {server.grpc_url} ...", flush=True)  # noqa: T201
            with server:
                runs = run(server.grpc_url, **options)
    report(runs, args.model, args.max_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
