"""Benchmark report: Pointsman under concurrency 1, 4, 16 against a FastAPI + transformers peer.

    python -m pointsman.loadtests.bench_report                 # full run (~5 minutes on 2 cores)
    python -m pointsman.loadtests.bench_report --quick         # ~1 minute: shorter cells, concurrency 1 and 4

In one run on this machine it starts its own tritonserver (free loopback ports) on the
project's model_repository/ and the peer (loadtests/peer_server.py) on the same demo
checkpoint, then drives each target with N closed-loop clients for a fixed time:

    gpt2 direct     POST /v2/models/gpt2_stream/generate             (the zero-overhead path)
    router manual   POST /v2/models/router_stream/generate  model=gpt2
    router auto     POST /v2/models/router_stream/generate  auto_select=true
    router hybrid   POST /v2/models/router_stream/generate  preferred_model=gpt2
    (the _stream models, which hold the router and the engine: their non-decoupled twins
    router and gpt2 add one loopback gRPC hop, measured by loadtests.bench_twins)
    peer            POST /generate on the FastAPI server      (model.generate())

Every request generates exactly --max-tokens new tokens (ignore_eos for Pointsman,
min_new_tokens = max_new_tokens for the peer), so tokens/s compare like with like.
It writes reports/benchmark.md, reports/benchmark.json and PNG plots, and prints the
ratios. Router rows degrade to a note when the router model is not loaded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOGGER = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]

# one prompt per task the router tells apart, rotated over requests (same for every target)
PROMPTS = (
    "def fibonacci(n):\n    # return the n-th Fibonacci number",
    "Write a short poem about the rain over the harbour",
    "What is the capital of France and why is it famous?",
    "If all bloops are razzies and all razzies are lazzies, are all bloops lazzies? Explain step by step",
)


@dataclass(frozen=True)
class Target:
    """One thing to load: a server endpoint plus the fields that select the path."""

    name: str
    server: str  # "pointsman" | "peer"
    path: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_router(self) -> bool:
        return self.path.startswith("/v2/models/router_stream/")


TARGETS = (
    Target("gpt2 direct", "pointsman", "/v2/models/gpt2_stream/generate"),
    Target("router manual", "pointsman", "/v2/models/router_stream/generate", {"model": "gpt2"}),
    Target("router auto", "pointsman", "/v2/models/router_stream/generate", {"auto_select": True}),
    Target("router hybrid", "pointsman", "/v2/models/router_stream/generate",
           {"preferred_model": "gpt2", "fallback_mode": "auto"}),
    Target("peer", "peer", "/generate"),
)


def request_body(target: Target, prompt: str, max_tokens: int) -> dict[str, Any]:
    if target.server == "peer":
        return {"prompt": prompt, "max_new_tokens": max_tokens, "min_new_tokens": max_tokens}
    return {"text_input": prompt, "max_tokens": max_tokens, "ignore_eos": True, **target.fields}


@dataclass(frozen=True)
class Sample:
    """One finished request."""

    start: float
    end: float
    tokens: int
    error: str | None = None
    selected_model: str | None = None
    selection_ms: float | None = None

    @property
    def latency_ms(self) -> float:
        return (self.end - self.start) * 1000.0


def parse_answer(status: int, raw: bytes) -> tuple[int, str | None, dict[str, Any]]:
    """(tokens, error, body) from either server; Triton 2.51 may send an error with status 200."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return 0, f"HTTP {status}: {raw[:200]!r}", {}
    if not isinstance(body, dict):
        return 0, f"HTTP {status}: unexpected body {str(body)[:200]}", {}
    if status != 200 or "error" in body or "detail" in body:
        return 0, f"HTTP {status}: {body.get('error') or body.get('detail')}", body
    return int(body.get("tokens", 0)), None, body


class Client:
    """One keep-alive HTTP connection.

    http.client is the lightest client, so the load generator takes as little of the
    shared CPU as it can.
    """

    def __init__(self, host: str, port: int, timeout: float = 300.0) -> None:
        self._host, self._port, self._timeout = host, port, timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: Mapping[str, Any]) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        for attempt in (0, 1):  # one reconnect when the server closed an idle keep-alive connection
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = self._conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def call(client: Client, target: Target, prompt: str, max_tokens: int) -> Sample:
    start = time.perf_counter()
    try:
        status, raw = client.post(target.path, request_body(target, prompt, max_tokens))
    except (OSError, http.client.HTTPException) as exc:
        return Sample(start, time.perf_counter(), 0, error=f"{type(exc).__name__}: {exc}")
    end = time.perf_counter()
    tokens, error, body = parse_answer(status, raw)
    if error is None and tokens != max_tokens:
        error = f"generated {tokens} tokens, expected {max_tokens}"
    selection = body.get("selection_ms")
    return Sample(start, end, tokens, error, body.get("selected_model"),
                  float(selection) if selection is not None else None)


def run_cell(host: str, port: int, target: Target, concurrency: int, duration: float, max_tokens: int) -> list[Sample]:
    """`concurrency` closed-loop clients for `duration` seconds; requests in flight at the end finish."""
    samples: list[Sample] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker(index: int) -> None:
        client = Client(host, port)
        n = index
        try:
            while time.perf_counter() < deadline:
                sample = call(client, target, PROMPTS[n % len(PROMPTS)], max_tokens)
                n += concurrency
                with lock:
                    samples.append(sample)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}") for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


@dataclass
class CellResult:
    """Figures of one (target, concurrency) cell."""

    target: str
    concurrency: int
    requests: int = 0
    errors: int = 0
    tokens_per_s: float | None = None
    requests_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    selection_p50_ms: float | None = None
    selected: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None
    note: str | None = None


def summarize(target: Target, concurrency: int, samples: Sequence[Sample]) -> CellResult:
    cell = CellResult(target.name, concurrency, requests=len(samples))
    good = [s for s in samples if s.error is None]
    bad = [s for s in samples if s.error is not None]
    cell.errors = len(bad)
    cell.first_error = bad[0].error if bad else None
    if not good:
        return cell
    wall = max(s.end for s in samples) - min(s.start for s in samples)
    latencies = np.array([s.latency_ms for s in good])
    cell.tokens_per_s = sum(s.tokens for s in good) / wall
    cell.requests_per_s = len(good) / wall
    cell.p50_ms = float(np.percentile(latencies, 50))
    cell.p99_ms = float(np.percentile(latencies, 99))
    selections = [s.selection_ms for s in good if s.selection_ms is not None]
    cell.selection_p50_ms = float(np.median(selections)) if selections else None
    cell.selected = dict(Counter(s.selected_model for s in good if s.selected_model))
    return cell


# -- the two servers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


class PeerProcess:
    """loadtests/peer_server.py as a child process on a free loopback port."""

    def __init__(self, checkpoint: Path, log_file: Path, threads: int = 0) -> None:
        self.port = free_port()
        self.checkpoint = checkpoint
        self.log_file = log_file
        self.threads = threads
        self.process: subprocess.Popen | None = None

    def start(self) -> PeerProcess:
        cmd = [sys.executable, "-m", "loadtests.peer_server", "--checkpoint", str(self.checkpoint),
               "--port", str(self.port), "--threads", str(self.threads)]
        with open(self.log_file, "ab") as out:
            self.process = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"peer exited with code {self.process.returncode}; see {self.log_file}")
            if http_ok(f"http://127.0.0.1:{self.port}/health"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"peer not ready after {timeout:.0f}s; see {self.log_file}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def router_loaded(http_port: int) -> bool:
    return http_ok(f"http://127.0.0.1:{http_port}/v2/models/router_stream/ready")


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    concurrency: tuple[int, ...]
    duration: float
    warmup: float
    max_tokens: int
    checkpoint: Path
    repository: Path
    reports: Path
    peer_threads: int
    targets: tuple[str, ...]
    hop_pairs: int = 60


def run_benchmark(settings: Settings) -> dict[str, Any]:
    from pointsman.launcher.tritonserver import ServerPorts, TritonServer

    settings.reports.mkdir(parents=True, exist_ok=True)
    targets = [t for t in TARGETS if t.name in settings.targets]
    meta: dict[str, Any] = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
                            "machine": machine_info(), "notes": []}
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-") as state:
        logs = (settings.reports / "bench-tritonserver.log", settings.reports / "bench-peer.log")
        for log in logs:
            log.unlink(missing_ok=True)  # both servers append: start each run clean
        server = TritonServer(settings.repository, ports=ServerPorts.free(), state_dir=Path(state), log_file=logs[0])
        peer = PeerProcess(settings.checkpoint, logs[1], settings.peer_threads)
        needs_peer = any(t.server == "peer" for t in targets)
        try:
            server.start()
            if needs_peer:
                peer.start()  # loads torch while tritonserver loads its models
            server.wait_ready(timeout=300)
            if needs_peer:
                peer.wait_ready()
            meta["triton_version"] = get_json(f"http://{server.http_url}/v2").get("version")
            have_router = router_loaded(server.ports.http)
            if not have_router:
                meta["notes"].append("the router model is not loaded on this server: router rows are empty")
            ports = {"pointsman": server.ports.http, "peer": peer.port}
            cells = []
            for target in targets:
                if target.is_router and not have_router:
                    cells += [CellResult(target.name, c, note="router not loaded") for c in settings.concurrency]
                    continue
                cells += measure_target(target, ports[target.server], settings)
            # last, when both paths are warm
            if have_router and settings.hop_pairs and wait_until_answers(server.ports.http, TARGETS[1]) is None:
                meta["router_hop"] = [measure_router_hop(server.ports.http, settings.hop_pairs, n)
                                      for n in sorted({1, settings.max_tokens})]
                for hop in meta["router_hop"]:
                    LOGGER.info("router hop at %d tokens: %+.2f ms p50 over %d pairs", hop["max_tokens"],
                                hop.get("hop_p50_ms", float("nan")), hop["pairs"])
        finally:
            peer.stop()
            server.stop()
    meta["cells"] = [asdict(c) for c in cells]
    meta["loadavg"] = {"start": meta["machine"]["loadavg_1m"], "end": round(os.getloadavg()[0], 2)}
    return meta


def wait_until_answers(port: int, target: Target, timeout: float = 30.0) -> str | None:
    """Return None once one request succeeds, else the last error after `timeout` seconds."""
    client = Client("127.0.0.1", port)
    deadline = time.monotonic() + timeout
    try:
        while True:
            sample = call(client, target, PROMPTS[0], 1 if target.server == "pointsman" else 2)
            if sample.error is None or "expected" in sample.error:
                return None
            if time.monotonic() > deadline:
                return sample.error
            time.sleep(0.25)
    finally:
        client.close()


def measure_target(target: Target, port: int, settings: Settings) -> list[CellResult]:
    error = wait_until_answers(port, target)
    if error is not None:
        LOGGER.warning("%s does not answer: %s", target.name, error)
        return [CellResult(target.name, c, first_error=error, note="not answering") for c in settings.concurrency]
    # warm-up: first calls pay for lazy initialisation (torch kernels, BLS stubs, sockets)
    run_cell("127.0.0.1", port, target, 2, settings.warmup, settings.max_tokens)
    results = []
    for concurrency in settings.concurrency:
        samples = run_cell("127.0.0.1", port, target, concurrency, settings.duration, settings.max_tokens)
        cell = summarize(target, concurrency, samples)
        LOGGER.info("%-14s c=%-3d %4d req %3d err  %7.1f tok/s  p50 %7.1f ms  p99 %7.1f ms", target.name,
                    concurrency, cell.requests, cell.errors, cell.tokens_per_s or 0, cell.p50_ms or 0, cell.p99_ms or 0)
        if cell.first_error:
            LOGGER.warning("%s c=%d: first error: %s", target.name, concurrency, cell.first_error)
        results.append(cell)
    return results


def measure_router_hop(port: int, pairs: int, max_tokens: int) -> dict[str, Any]:
    """Measure router manual against direct gpt2 with one client.

    Requests alternate so that both see the same background load; the hop is the median
    of the paired latency differences.
    """
    direct, routed = TARGETS[0], TARGETS[1]
    client = Client("127.0.0.1", port)
    diffs, direct_ms, routed_ms, errors = [], [], [], 0
    try:
        for n in range(pairs):
            prompt = PROMPTS[n % len(PROMPTS)]
            first, second = (direct, routed) if n % 2 == 0 else (routed, direct)  # alternate the order too
            a, b = call(client, first, prompt, max_tokens), call(client, second, prompt, max_tokens)
            if a.error or b.error:
                errors += 1
                continue
            d, r = (a, b) if first is direct else (b, a)
            direct_ms.append(d.latency_ms)
            routed_ms.append(r.latency_ms)
            diffs.append(r.latency_ms - d.latency_ms)
    finally:
        client.close()
    if not diffs:
        return {"max_tokens": max_tokens, "pairs": 0, "errors": errors}
    return {"max_tokens": max_tokens, "pairs": len(diffs), "errors": errors,
            "hop_p50_ms": float(np.median(diffs)),
            "hop_iqr_ms": [float(np.percentile(diffs, 25)), float(np.percentile(diffs, 75))],
            "direct_p50_ms": float(np.median(direct_ms)), "router_p50_ms": float(np.median(routed_ms))}


def machine_info() -> dict[str, Any]:
    import onnxruntime
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "onnxruntime": onnxruntime.__version__, "loadavg_1m": round(os.getloadavg()[0], 2)}
    try:
        import torch
        import transformers
        info.update(torch=torch.__version__, transformers=transformers.__version__)
    except ImportError:
        pass
    return info


# -- the report ---------------------------------------------------------------------------------


def _cell(cells: Sequence[Mapping[str, Any]], target: str, concurrency: int) -> Mapping[str, Any] | None:
    for c in cells:
        if c["target"] == target and c["concurrency"] == concurrency and c.get("tokens_per_s"):
            return c
    return None


def ratios(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per concurrency: Pointsman against the peer, and the router hop."""
    cells = result["cells"]
    out = []
    for concurrency in sorted({c["concurrency"] for c in cells}):
        direct, peer = _cell(cells, "gpt2 direct", concurrency), _cell(cells, "peer", concurrency)
        manual = _cell(cells, "router manual", concurrency)
        row: dict[str, Any] = {"concurrency": concurrency}
        if direct and peer:
            row["throughput_vs_peer"] = direct["tokens_per_s"] / peer["tokens_per_s"]
            row["p50_peer_over_direct"] = peer["p50_ms"] / direct["p50_ms"]
            row["p99_peer_over_direct"] = peer["p99_ms"] / direct["p99_ms"]
        if manual and peer:
            row["router_manual_throughput_vs_peer"] = manual["tokens_per_s"] / peer["tokens_per_s"]
        if direct and manual:
            row["router_hop_p50_ms"] = manual["p50_ms"] - direct["p50_ms"]
            row["router_throughput_vs_direct"] = manual["tokens_per_s"] / direct["tokens_per_s"]
        out.append(row)
    return out


def _fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def render_markdown(result: Mapping[str, Any], plots: Sequence[str]) -> str:
    s, m = result["settings"], result["machine"]
    lines = [
        "# Pointsman benchmark",
        "",
        f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}; tritonserver "
        f"{result.get('triton_version', '?')}, onnxruntime {m['onnxruntime']}"
        + (f"; peer on torch {m['torch']}, transformers {m['transformers']}" if "torch" in m else "") + ".",
        "",
        f"Workload: {s['max_tokens']} new tokens per request, exactly (ignore_eos / min_new_tokens), greedy; "
        f"{len(PROMPTS)} prompts (coding, creative, qa, reasoning) in rotation; closed-loop clients at "
        f"concurrency {', '.join(map(str, s['concurrency']))}, {s['duration']:g} s per cell after a "
        f"{s['warmup']:g} s warm-up; checkpoint `{s['checkpoint']}` (the demo gpt2) in both servers; "
        "client, servers and peer share the same CPUs.",
        "",
        "| target | concurrency | requests | errors | tokens/s | req/s | p50 ms | p99 ms | selection p50 ms "
        "| selected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in result["cells"]:
        selected = ", ".join(f"{k} {v}" for k, v in sorted(c["selected"].items())) or (c.get("note") or "")
        lines.append(
            f"| {c['target']} | {c['concurrency']} | {c['requests']} | {c['errors']} | {_fmt(c['tokens_per_s'])} | "
            f"{_fmt(c['requests_per_s'], 2)} | {_fmt(c['p50_ms'])} | {_fmt(c['p99_ms'])} | "
            f"{_fmt(c['selection_p50_ms'], 3)} | {selected} |")
    lines += ["", "## Ratios", "",
              "| concurrency | tokens/s gpt2 direct ÷ peer | p50 peer ÷ direct | p99 peer ÷ direct | "
              "tokens/s router manual ÷ peer | router hop (p50 manual − direct) ms | tokens/s router ÷ direct |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ratios(result):
        lines.append(
            f"| {r['concurrency']} | {_fmt(r.get('throughput_vs_peer'), 2, '×')} | "
            f"{_fmt(r.get('p50_peer_over_direct'), 2, '×')} | {_fmt(r.get('p99_peer_over_direct'), 2, '×')} | "
            f"{_fmt(r.get('router_manual_throughput_vs_peer'), 2, '×')} | {_fmt(r.get('router_hop_p50_ms'), 2)} | "
            f"{_fmt(r.get('router_throughput_vs_direct'), 2, '×')} |")
    hops = [h for h in result.get("router_hop", []) if h.get("pairs")]
    if hops:
        lines += ["", "## Router hop", "",
                  "One client alternating direct gpt2 and router manual (model=gpt2) requests, same prompt per "
                  "pair; the hop is the median of the paired differences.", "",
                  "| new tokens | pairs | direct p50 ms | router p50 ms | hop p50 ms | hop IQR ms |",
                  "|---:|---:|---:|---:|---:|---|"]
        for h in hops:
            lines.append(f"| {h['max_tokens']} | {h['pairs']} | {h['direct_p50_ms']:.1f} | {h['router_p50_ms']:.1f} | "
                         f"{h['hop_p50_ms']:+.2f} | {h['hop_iqr_ms'][0]:+.2f} … {h['hop_iqr_ms'][1]:+.2f} |")
    errors = [c for c in result["cells"] if c.get("first_error")]
    notes = list(result.get("notes", []))
    notes += [f"{c['target']} at concurrency {c['concurrency']}: {c['errors']} errors, first: {c['first_error']}"
              for c in errors]
    if "loadavg" in result:
        notes.append(f"1-minute load average of the machine {result['loadavg']['start']} at the start, "
                     f"{result['loadavg']['end']} at the end: other work shared these CPUs, so figures move "
                     "between runs; compare rows of the same run.")
    counts = [c["requests"] - c["errors"] for c in result["cells"] if c.get("p99_ms") is not None]
    if counts:
        notes.append(f"p99 is taken over each cell's requests ({min(counts)} to {max(counts)} here); over fewer "
                     "than a hundred it is close to the cell's maximum.")
    notes.append("router auto may pick a model other than gpt2 (see 'selected'): its rows measure the routed "
                 "service, not the same model.")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def render_plots(result: Mapping[str, Any], reports: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    cells = [c for c in result["cells"] if c.get("tokens_per_s")]
    names = list(dict.fromkeys(c["target"] for c in cells))
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in names:
        rows = sorted((c for c in cells if c["target"] == name), key=lambda c: c["concurrency"])
        ax.plot([c["concurrency"] for c in rows], [c["tokens_per_s"] for c in rows], marker="o", label=name)
    ax.set(xscale="log", xlabel="concurrent clients", ylabel="generated tokens/s", title="Throughput")
    _concurrency_ticks(ax, cells)
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(str(reports / "benchmark_throughput.png"))
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, name in enumerate(names):
        rows = sorted((c for c in cells if c["target"] == name), key=lambda c: c["concurrency"])
        color = f"C{index}"
        xs = [c["concurrency"] for c in rows]
        ax.plot(xs, [c["p50_ms"] for c in rows], marker="o", color=color, label=f"{name} p50")
        ax.plot(xs, [c["p99_ms"] for c in rows], marker="x", linestyle="--", color=color, label=f"{name} p99")
    ax.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="request latency (ms)",
           title="Latency (p50 solid, p99 dashed)")
    _concurrency_ticks(ax, cells)
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    paths.append(str(reports / "benchmark_latency.png"))
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _concurrency_ticks(ax, cells: Sequence[Mapping[str, Any]]) -> None:
    from matplotlib import ticker

    levels = sorted({c["concurrency"] for c in cells})
    ax.set_xticks(levels, labels=[str(x) for x in levels])
    ax.xaxis.set_minor_locator(ticker.NullLocator())


def print_ratios(result: Mapping[str, Any]) -> None:
    for h in result.get("router_hop", []):
        if h.get("pairs"):
            print(f"router hop ({h['max_tokens']} new tokens, {h['pairs']} paired requests): "  # noqa: T201
                  f"{h['hop_p50_ms']:+.2f} ms p50 (direct {h['direct_p50_ms']:.1f} ms, "
                  f"router {h['router_p50_ms']:.1f} ms)")
    for r in ratios(result):
        parts = [f"concurrency {r['concurrency']:>2}:"]
        if "throughput_vs_peer" in r:
            parts.append(f"tokens/s Pointsman gpt2 ÷ peer {r['throughput_vs_peer']:.2f}x, "
                         f"p50 peer ÷ Pointsman {r['p50_peer_over_direct']:.2f}x")
        if "router_hop_p50_ms" in r:
            parts.append(f"router hop {r['router_hop_p50_ms']:+.1f} ms p50, "
                         f"router ÷ direct tokens/s {r['router_throughput_vs_direct']:.2f}x")
        print("  ".join(parts))  # noqa: T201


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_report", description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per (target, concurrency) cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    parser.add_argument("--max-tokens", type=int, default=32, help="new tokens per request, exactly")
    parser.add_argument("--targets", default=",".join(t.name for t in TARGETS),
                        help="comma-separated subset of: " + ", ".join(t.name for t in TARGETS))
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "build" / "checkpoints" / "gpt2")
    parser.add_argument("--model-repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument("--peer-threads", type=int, default=0, help="torch threads in the peer (0: torch's default)")
    parser.add_argument("--hop-pairs", type=int, default=60,
                        help="alternating direct/router request pairs for the router hop (0: skip)")
    parser.add_argument("--quick", action="store_true", help="4 s cells at concurrency 1 and 4 (about a minute)")
    parser.add_argument("--render-only", type=Path, metavar="JSON",
                        help="re-render the report from a benchmark.json without measuring")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    concurrency = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
    duration, warmup, hop_pairs = args.duration, args.warmup, args.hop_pairs
    if args.quick:
        concurrency, duration, warmup = tuple(c for c in concurrency if c <= 4) or (1,), 4.0, 1.0
        hop_pairs = min(hop_pairs, 20)
    names = tuple(n.strip() for n in args.targets.split(",") if n.strip())
    unknown = set(names) - {t.name for t in TARGETS}
    if unknown:
        known = ", ".join(t.name for t in TARGETS)
        raise ValueError(f"--targets: unknown {', '.join(sorted(unknown))}; known: {known}")
    if any(c < 1 for c in concurrency) or duration <= 0 or args.max_tokens < 1:
        raise ValueError("--concurrency, --duration and --max-tokens must be positive")
    return Settings(concurrency, duration, warmup, args.max_tokens, args.checkpoint, args.model_repository,
                    args.reports, args.peer_threads, names, max(0, hop_pairs))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"bench_report: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.render_only:
        result = json.loads(args.render_only.read_text())
    else:
        if "peer" in settings.targets and not (settings.checkpoint / "config.json").exists():
            print(f"bench_report: no checkpoint at {settings.checkpoint}: run `pointsman demo-models`",  # noqa: T201
                  file=sys.stderr)
            return 2
        started = time.monotonic()
        result = run_benchmark(settings)
        result["wall_s"] = round(time.monotonic() - started, 1)
    settings.reports.mkdir(parents=True, exist_ok=True)
    (settings.reports / "benchmark.json").write_text(json.dumps(result, indent=2))
    plots = render_plots(result, settings.reports)
    (settings.reports / "benchmark.md").write_text(render_markdown(result, plots))
    print_ratios(result)
    print(f"wrote {settings.reports / 'benchmark.md'} and {len(plots)} plots"  # noqa: T201
          + (f" in {result['wall_s']} s" if "wall_s" in result else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
