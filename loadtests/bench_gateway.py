"""What the HTTP gateway adds: /v1/completions through it vs a direct gRPC streaming call to the router.

    .venv/bin/python -m pointsman.loadtests.bench_gateway
    .venv/bin/python -m pointsman.loadtests.bench_gateway --triton-grpc 127.0.0.1:8001 --requests 400

Both paths send the same request (manual gpt2, --tokens new tokens, ignore_eos) to the
same router: direct, one tritonclient.grpc.aio streaming call per request, read to the
router's final response; through the gateway, httpx with keep-alive posting
/v1/completions (the gateway puts unstreamed requests on its one shared stream). With
--stream both ask for a streamed answer (the gateway then answers with server-sent
events, read to `[DONE]`, and opens a call per request as a direct client does). Each of the
c closed-loop workers alternates the two paths request by request, so both see the same
load at the same time, in the same run. Latency is request to last byte, on the client.
Printed: median and p99 of each path, their difference (the gateway's cost) and ratio,
at c=1 and c=16, and the gateway process's CPU time per request (from /proc: what the
hop costs on an idle machine, whatever the load on a shared one adds in waiting). Target
(issue 11): gateway - direct <= 1 ms median at c=1.

Without --triton-grpc it starts tritonserver on the project's model_repository/ on free
loopback ports; it always starts its own gateway (a child process, as `pointsman serve`
runs it), and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PROMPT = "Write a short story about a lighthouse keeper"
TARGET_MS = 1.0
ROOT = Path(__file__).resolve().parents[1]


def _router_inputs(tokens: int, stream: bool) -> list:
    from pointsman.gateway.triton_link import ROUTER_STREAM_MODEL as MODEL
    from pointsman.gateway.triton_link import build_inputs

    return build_inputs(MODEL, {"text_input": PROMPT, "max_tokens": tokens, "model": "gpt2", "ignore_eos": True,
                                "stream": stream})


async def direct_call(client, tokens: int, stream: bool) -> float:
    """One router request on its own gRPC stream, read to the final response; seconds."""
    from pointsman.gateway.triton_link import ROUTER_STREAM_MODEL

    began = time.perf_counter()
    inputs = _router_inputs(tokens, stream)

    async def one():
        yield {"model_name": ROUTER_STREAM_MODEL, "inputs": inputs}

    responses = client.stream_infer(one())
    try:
        async for result, error in responses:
            if error is not None:
                raise RuntimeError(f"direct call failed: {error}")
            if result.as_numpy("finish_reason") is not None:
                break
    finally:
        responses.cancel()
    return time.perf_counter() - began


async def gateway_call(http, tokens: int, stream: bool) -> float:
    body = {"model": "gpt2", "prompt": PROMPT, "max_tokens": tokens, "ignore_eos": True, "stream": stream}
    began = time.perf_counter()
    async with http.stream("POST", "/v1/completions", json=body) as reply:
        raw = b"".join([chunk async for chunk in reply.aiter_bytes()])
    if reply.status_code != 200 or (stream and not raw.rstrip().endswith(b"data: [DONE]")):
        raise RuntimeError(f"gateway call failed: {reply.status_code} {raw[-200:]!r}")
    return time.perf_counter() - began


async def measure(triton_grpc: str, gateway_url: str, concurrency: int, requests: int, tokens: int,
                  warmup: int, stream: bool) -> dict[str, np.ndarray]:
    """Closed-loop workers, each alternating direct and gateway calls; per-path latencies (s)."""
    import httpx
    import tritonclient.grpc.aio as aioclient

    client = aioclient.InferenceServerClient(triton_grpc)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=120, limits=limits) as http:
        for _ in range(warmup):
            await direct_call(client, tokens, stream)
            await gateway_call(http, tokens, stream)
        times: dict[str, list[float]] = {"direct": [], "gateway": []}
        per_worker = max(1, requests // concurrency)

        async def worker(index: int) -> None:
            for i in range(per_worker):
                if (i + index) % 2 == 0:  # alternate which path goes first
                    times["direct"].append(await direct_call(client, tokens, stream))
                    times["gateway"].append(await gateway_call(http, tokens, stream))
                else:
                    times["gateway"].append(await gateway_call(http, tokens, stream))
                    times["direct"].append(await direct_call(client, tokens, stream))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    await client.close()
    return {path: np.array(values) for path, values in times.items()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(rows: list[tuple[int, dict[str, np.ndarray], float]], tokens: int, stream: bool) -> str:
    kind = "streamed (SSE vs gRPC stream)" if stream else "unstreamed"
    lines = [f"gateway overhead: /v1/completions via the gateway vs direct gRPC streaming to the router "
             f"(manual gpt2, {tokens} new token(s), {kind})",
             "| c | requests/path | direct p50 ms | gateway p50 ms | p50 diff ms | p50 ratio "
             "| direct p99 ms | gateway p99 ms | p99 diff ms | p99 ratio | gateway CPU ms/request |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for concurrency, times, cpu in rows:
        d50, g50 = (float(np.percentile(times[p], 50) * 1e3) for p in ("direct", "gateway"))
        d99, g99 = (float(np.percentile(times[p], 99) * 1e3) for p in ("direct", "gateway"))
        lines.append(f"| {concurrency} | {len(times['direct'])} | {d50:.2f} | {g50:.2f} | {g50 - d50:+.2f} | "
                     f"{g50 / d50:.2f}x | {d99:.2f} | {g99:.2f} | {g99 - d99:+.2f} | {g99 / d99:.2f}x | "
                     f"{cpu * 1e3 / len(times['gateway']):.2f} |")
    c1 = {c: times for c, times, _ in rows}.get(1)
    if c1 is not None:
        diff = float(np.percentile(c1["gateway"], 50) - np.percentile(c1["direct"], 50)) * 1e3
        verdict = "met" if diff <= TARGET_MS else "missed"
        lines.append(f"target: median overhead at c=1 <= {TARGET_MS:.1f} ms: {diff:+.2f} ms ({verdict})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_gateway",
                                     description="what the HTTP gateway adds over a direct gRPC call to the router")
    parser.add_argument("--triton-grpc", help="a running Triton's gRPC host:port (default: start one)")
    parser.add_argument("--requests", type=int, default=300, help="requests per path and concurrency")
    parser.add_argument("--tokens", type=int, default=1, help="new tokens per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--stream", action="store_true", help="ask both paths for a streamed answer")
    return parser


def _run(args: argparse.Namespace, triton_grpc: str, tmp: Path) -> str:
    from pointsman.gateway.server import GatewayProcess
    from pointsman.launcher.tritonserver import ServerPorts

    gateway = GatewayProcess(triton_grpc, port=ServerPorts.free().http, log_file=tmp / "gateway.log")
    rows = []
    with gateway:
        for c in args.concurrency:
            before = cpu_seconds(gateway.process.pid)  # warm-up requests included: a slight overestimate
            times = asyncio.run(measure(triton_grpc, gateway.url, c, args.requests, args.tokens, args.warmup,
                                        args.stream))
            rows.append((c, times, cpu_seconds(gateway.process.pid) - before))
    return report(rows, args.tokens, args.stream)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as name:
        tmp = Path(name)
        if args.triton_grpc:
            table = _run(args, args.triton_grpc, tmp)
        else:
            from pointsman.launcher.tritonserver import ServerPorts, TritonServer

            server = TritonServer(ROOT / "model_repository", ports=ServerPorts.free(), state_dir=tmp / "state",
                                  log_file=tmp / "tritonserver.log")
            with server:
                table = _run(args, server.grpc_url, tmp)
    sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
