"""Soak: many locust users for a long time; errors, latency and every process's memory, minute by minute.

    .venv/bin/python -m pointsman.loadtests.soak                     # 64 users, 30 minutes (issue 12)
    .venv/bin/python -m pointsman.loadtests.soak --minutes 3         # the short check

Starts its own tritonserver on the project's model_repository/ (free loopback ports), runs
loadtests/locust_soak.py headless (manual, auto and hybrid over HTTP and gRPC), and samples
the resident memory of tritonserver and of every Python backend stub (and the router
stub's thread count) every --sample-s seconds. Prints one row per minute and, per process,
the growth over the first and the second half of the run: memory still growing in the
second half as fast as in the first does not level off, and is flagged as a leak.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locust_soak.py"
STUB = "triton_python_backend_stub"
LEAK_MIN_MB = 5.0  # second-half growth below this is noise (allocator, caches)
LEVEL_RATIO = 0.5  # second-half growth above this share of the first half's does not level off


@dataclass(frozen=True)
class Sample:
    minute: float  # since the load started
    rss_mb: dict[str, float]  # process name -> resident MB
    router_threads: int


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def thread_count(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


def stub_name(cmdline: str) -> str | None:
    """The model a stub serves, from its command line (.../<model>/1/model.py ...)."""
    if STUB not in cmdline:
        return None
    for part in cmdline.split("\0"):
        if part.endswith("/model.py"):
            return Path(part).parent.parent.name
    return None


def server_processes(server_pid: int) -> dict[str, int]:
    """The server and its stubs: name -> pid."""
    out = {"tritonserver": server_pid}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != server_pid:
                continue
            name = stub_name((entry / "cmdline").read_bytes().decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
        if name:
            out[name] = int(entry.name)
    return out


def sample(server_pid: int, minute: float) -> Sample:
    procs = server_processes(server_pid)
    sizes = {name: mb for name, pid in procs.items() if (mb := rss_mb(pid)) is not None}
    return Sample(minute, sizes, thread_count(procs["router_stream"]) if "router_stream" in procs else 0)


def minute_rows(record: dict, minutes: int) -> list[dict[str, float]]:
    """Per minute of load: requests, errors, p50/p95/p99 latency (ms) of the successful ones."""
    rows = []
    for minute in range(minutes):
        latencies = np.asarray(record["latency_ms"].get(str(minute), []), dtype=float)
        errors = int(record["errors"].get(str(minute), 0))
        p50, p95, p99 = (np.percentile(latencies, [50, 95, 99]) if latencies.size else (float("nan"),) * 3)
        rows.append({"minute": minute + 1, "requests": int(latencies.size) + errors, "errors": errors,
                     "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)})
    return rows


def growth(samples: Sequence[Sample], name: str) -> tuple[float, float, bool]:
    """(first-half growth MB, second-half growth MB, levels off) of one process, from the first sample on."""
    series = [s.rss_mb[name] for s in samples if name in s.rss_mb]
    if len(series) < 3:
        return 0.0, 0.0, True
    mid = len(series) // 2
    first, second = series[mid] - series[0], series[-1] - series[mid]
    leaking = second > LEAK_MIN_MB and second > LEVEL_RATIO * max(first, 0.0)
    return first, second, not leaking


def report(rows: list[dict[str, float]], samples: Sequence[Sample], record: dict) -> str:
    names = sorted({n for s in samples for n in s.rss_mb}, key=lambda n: (n != "tritonserver", n))
    lines = ["| minute | requests | errors | p50 ms | p95 ms | p99 ms | " + " | ".join(f"{n} MB" for n in names)
             + " | router threads |",
             "|---" * (7 + len(names)) + "|"]
    by_minute = {round(s.minute): s for s in samples}
    for row in rows:
        s = by_minute.get(row["minute"])
        rss = " | ".join(f"{s.rss_mb.get(n, float('nan')):.0f}" if s else "" for n in names)
        lines.append(f"| {row['minute']} | {row['requests']} | {row['errors']} | {row['p50_ms']:.0f} | "
                     f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {rss} | {s.router_threads if s else ''} |")
    total = sum(r["requests"] for r in rows)
    failed = sum(r["errors"] for r in rows)
    lines += ["", f"requests {total}, errors {failed} ({100.0 * failed / max(total, 1):.3f}%)"]
    for message, count in record.get("messages", {}).items():
        lines.append(f"  {count} x {message}")
    lines += ["", "| process | start MB | end MB | growth 1st half MB | growth 2nd half MB | levels off |",
              "|---|---|---|---|---|---|"]
    for name in names:
        series = [s.rss_mb[name] for s in samples if name in s.rss_mb]
        first, second, level = growth(samples, name)
        lines.append(f"| {name} | {series[0]:.0f} | {series[-1]:.0f} | {first:+.1f} | {second:+.1f} | "
                     f"{'yes' if level else 'NO: leak?'} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--spawn-rate", type=float, default=8.0)
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between memory samples")
    parser.add_argument("--mode-weights", default="manual=1,auto=1,hybrid=1,direct=0")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    parser.add_argument("--port", type=int, default=0,
                        help="HTTP port (gRPC +1, metrics +2); default: free ports")
    return parser


def _sample_until(server_pid: int, started: float, every: float, done: threading.Event, out: list[Sample]) -> None:
    while not done.wait(every):
        out.append(sample(server_pid, (time.monotonic() - started) / 60.0))


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds `with server`, which stops tritonserver and reaps its stubs


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from pointsman.launcher.tritonserver import ServerPorts, TritonServer

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        tmp_path = Path(tmp)
        ports = ServerPorts(args.port, args.port + 1, args.port + 2) if args.port else ServerPorts.free()
        server = TritonServer(ROOT / "model_repository", ports=ports, state_dir=tmp_path / "state",
                              log_file=tmp_path / "server.log")
        print(f"starting tritonserver on {server.http_url} ...", flush=True)  # noqa: T201
        with server:
            assert server.process is not None
            record_file = tmp_path / "record.json"
            env = {**os.environ, "POINTSMAN_SOAK_OUT": str(record_file), "PYTHONUNBUFFERED": "1"}
            command = [str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless",
                       "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.minutes}m",
                       "--host", f"http://{server.http_url}", "--grpc-url", server.grpc_url,
                       "--mode-weights", args.mode_weights, "--max-tokens", str(args.max_tokens),
                       "--stop-timeout", "30", "--only-summary"]
            samples = [sample(server.process.pid, 0.0)]
            done = threading.Event()
            started = time.monotonic()
            sampler = threading.Thread(target=_sample_until, args=(server.process.pid, started, args.sample_s,
                                                                  done, samples), daemon=True)
            sampler.start()
            print(f"{args.users} users for {args.minutes} min ...", flush=True)  # noqa: T201
            with open(tmp_path / "locust.log", "wb") as log:
                subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
            done.set()
            sampler.join()
            samples.append(sample(server.process.pid, (time.monotonic() - started) / 60.0))
            record = json.loads(record_file.read_text())
        text = report(minute_rows(record, args.minutes), samples, record)
    print(text)  # noqa: T201
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
