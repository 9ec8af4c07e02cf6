"""Usage records from two replicas under locust load: PostgreSQL (shared) against SQLite (one file each).

    .venv/bin/python -m pointsman.loadtests.bench_replicas --database-url "$(tests/postgres/start_postgres.sh)"
    .venv/bin/python -m pointsman.loadtests.bench_replicas --database-url ... --users 64 --seconds 20

Four tritonservers on free loopback ports, each serving the router and one small model
(a trimmed repository): two replicas on their own SQLite files (the baseline) and two on
one fresh PostgreSQL database (created on the URL's server and dropped at the end). Then
locust (64 users, headless, bounded time) loads one pair at a time, in the order SQLite,
PostgreSQL, PostgreSQL, SQLite, so a machine whose load drifts hurts both alike. Each
phase tags its requests (user "<phase>-<n>"); after it, the records so tagged are counted
in the stores once they stop growing, against the requests the routers executed
(Triton's own nv_inference_request_success + _failure of the router, summed over the
pair: locust leaves out requests still in flight when it stops). Printed per store:
requests, failures, records, records lost (requests - records), records/s stored per
second of load, client latency p50/p95 (locust), and the ratios PostgreSQL / SQLite. Last, with no load, how long an
experiment created (then stopped) through one PostgreSQL replica takes to be applied by
the other: from the create call's answer to the first request the other router puts in
the experiment (requests sent back to back, so the figure includes up to one request). Writes are off the request path,
so the latency ratio measures what the shared database costs a request.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from pointsman.launcher.tritonserver import ServerPorts, TritonServer
from pointsman.policy.contract import stream_model

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locust_replicas.py"
SERVED = ("router", "router_stream", "experiments")
SETTLE_S = 3.0  # records stopped growing for this long: the writers are done


@dataclass
class Phase:
    store: str
    requests: int
    failures: int
    records: int
    seconds: float
    p50_ms: float
    p95_ms: float

    @property
    def lost(self) -> int:
        return self.requests - self.records

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def trimmed_repository(root: Path, model: str) -> Path:
    repository = root / "repository"
    repository.mkdir()
    for name in (*SERVED, model, stream_model(model)):
        (repository / name).symlink_to(ROOT / "model_repository" / name, target_is_directory=True)
    return repository


def router_requests(servers: Sequence[TritonServer]) -> int:
    """Requests the router models of these servers executed so far (Triton's counters)."""
    total = 0.0
    for server in servers:
        url = f"http://{server.host}:{server.ports.metrics}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name in ("nv_inference_request_success", "nv_inference_request_failure"):
                # every request reaches the one router that records usage, whichever twin it came in by
                total += sum(s.value for s in family.samples if s.labels.get("model") == "router_stream")
    return int(total)


def post(server: TritonServer, model: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://{server.http_url}/v2/models/{model}/generate",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def in_experiment(server: TritonServer, name: str) -> bool:
    answer = post(server, "router", {"text_input": "Write a poem", "max_tokens": 1, "auto_select": True})
    return answer["selection_reason"].startswith(f"experiment {name},")


def propagation_ms(admin: TritonServer, other: TritonServer, rounds: int, timeout_s: float = 30.0) -> list[float]:
    """Per round: ms from an experiment's creation on admin until other applies it; then from its stop."""
    times = []
    for _ in range(rounds):
        name = f"propagation-{uuid.uuid4().hex[:6]}"
        arms = [{"name": "lexical", "policy": "lexical"}, {"name": "classifier", "policy": "classifier"}]
        for action, applied in (("create", True), ("stop", False)):
            # detection happens right after the other's poll: start at a random phase of its 1 s interval
            time.sleep(random.uniform(0.0, 1.0))
            payload = {"name": name, "arms": arms} if action == "create" else {"name": name}
            post(admin, "experiments", {"action": action, "payload": json.dumps(payload)})
            changed = time.perf_counter()
            while in_experiment(other, name) != applied:
                if time.perf_counter() - changed > timeout_s:
                    raise SystemExit(f"{other.http_url} did not apply {action} of {name} within {timeout_s} s")
            times.append((time.perf_counter() - changed) * 1e3)
    return times


def run_locust(urls: Sequence[str], run: str, users: int, seconds: int, model: str, out: Path) -> tuple[int, int,
                                                                                                        float, float]:
    """Run locust headless; (requests, failures, p50 ms, p95 ms) of its aggregated stats."""
    env = dict(os.environ, POINTSMAN_REPLICA_URLS=",".join(urls), POINTSMAN_RUN=run, POINTSMAN_BENCH_MODEL=model)
    prefix = out / run
    subprocess.run([str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless",
                    "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", urls[0],
                    "--stop-timeout", "30", "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
                   env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(f"{prefix}_stats.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return int(row["Request Count"]), int(row["Failure Count"]), float(row["50%"]), float(row["95%"])


def settled_count(count: Callable[[], int], expected: int, timeout: float = 60.0) -> int:
    """The count once it reaches expected, or once it has not moved for SETTLE_S."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline and last < expected:
        time.sleep(0.2)  # polling the stores; the writers flush every 0.1 s
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= SETTLE_S:
            break
    return last


def sqlite_counter(paths: Sequence[Path], run: str) -> Callable[[], int]:
    def count() -> int:
        total = 0
        for path in paths:
            with sqlite3.connect(path) as conn:
                total += conn.execute("SELECT COUNT(*) FROM requests WHERE user LIKE ?", (f"{run}-%",)).fetchone()[0]
        return total
    return count


def postgres_counter(url: str, run: str) -> Callable[[], int]:
    def count() -> int:
        with psycopg.connect(url) as conn:
            return conn.execute('SELECT COUNT(*) FROM requests WHERE "user" LIKE %s', (f"{run}-%",)).fetchone()[0]
    return count


def database_url(server_url: str, name: str) -> str:
    head, _, rest = server_url.partition("://")
    netloc, _, path_query = rest.partition("/")
    query = path_query.partition("?")[2]
    return f"{head}://{netloc}/{name}" + (f"?{query}" if query else "")


def table(phases: Sequence[Phase]) -> str:
    lines = [f"{'store':<10} {'requests':>9} {'failures':>8} {'records':>8} {'lost':>5} {'records/s':>10} "
             f"{'p50 ms':>8} {'p95 ms':>8}"]
    for p in phases:
        lines.append(f"{p.store:<10} {p.requests:>9} {p.failures:>8} {p.records:>8} {p.lost:>5} "
                     f"{p.records_per_s:>10.1f} {p.p50_ms:>8.0f} {p.p95_ms:>8.0f}")
    return "\n".join(lines)


def summarise(phases: Sequence[Phase]) -> str:
    by = {store: [p for p in phases if p.store == store] for store in ("sqlite", "postgres")}

    def total(store: str, attr: str) -> float:
        return sum(getattr(p, attr) for p in by[store])

    def mean(store: str, attr: str) -> float:
        return total(store, attr) / len(by[store])

    rate = {s: total(s, "records") / total(s, "seconds") for s in by}
    return "\n".join([
        f"records/s     sqlite {rate['sqlite']:.1f}  postgres {rate['postgres']:.1f}  "
        f"ratio {rate['postgres'] / rate['sqlite']:.2f}",
        f"records lost  sqlite {int(total('sqlite', 'lost'))}  postgres {int(total('postgres', 'lost'))}",
        f"latency p50   sqlite {mean('sqlite', 'p50_ms'):.0f} ms  postgres {mean('postgres', 'p50_ms'):.0f} ms  "
        f"ratio {mean('postgres', 'p50_ms') / mean('sqlite', 'p50_ms'):.2f}",
        f"latency p95   sqlite {mean('sqlite', 'p95_ms'):.0f} ms  postgres {mean('postgres', 'p95_ms'):.0f} ms  "
        f"ratio {mean('postgres', 'p95_ms') / mean('sqlite', 'p95_ms'):.2f}",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("POINTSMAN_DATABASE_URL", ""),
                        help="postgresql:// URL of a server where this role may create a database")
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=20, help="load per phase (four phases)")
    parser.add_argument("--model", default="distilgpt2")
    parser.add_argument("--propagation-rounds", type=int, default=10, help="experiments created and stopped")
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgresql://", "postgres://")):
        parser.error("--database-url (or POINTSMAN_DATABASE_URL) must be a postgresql:// URL")

    name = f"pointsman_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    shared = database_url(args.database_url, name)
    servers: dict[str, list[TritonServer]] = {"sqlite": [], "postgres": []}
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        root = Path(tmp)
        repository = trimmed_repository(root, args.model)
        try:
            for store in servers:
                for i in range(2):
                    state = root / f"{store}-{i}"
                    env = {"POINTSMAN_REPLICA": f"{store}-{i}", "POINTSMAN_DATABASE_URL": ""}
                    if store == "postgres":
                        env["POINTSMAN_DATABASE_URL"] = shared
                    servers[store].append(TritonServer(repository, ports=ServerPorts.free(), state_dir=state,
                                                       log_file=root / f"{store}-{i}.log", env=env).start())
            for group in servers.values():
                for server in group:
                    server.wait_ready(timeout=300)
            counters = {"sqlite": lambda run: sqlite_counter([s.state_dir / "pointsman.db"
                                                              for s in servers["sqlite"]], run),
                        "postgres": lambda run: postgres_counter(shared, run)}
            phases = []
            for index, store in enumerate(("sqlite", "postgres", "postgres", "sqlite")):
                run = f"{store}{index}-{uuid.uuid4().hex[:6]}"
                urls = [f"http://{s.http_url}" for s in servers[store]]
                before = router_requests(servers[store])
                started = time.monotonic()
                _, failures, p50, p95 = run_locust(urls, run, args.users, args.seconds, args.model, root)
                seconds = time.monotonic() - started
                requests = router_requests(servers[store]) - before
                records = settled_count(counters[store](run), requests)
                phases.append(Phase(store, requests, failures, records, seconds, p50, p95))
                print(f"phase {index + 1}/4 {store}: {requests} requests, {records} records", flush=True)  # noqa: T201
            propagation = propagation_ms(*servers["postgres"], rounds=args.propagation_rounds)
        finally:
            for group in servers.values():
                for server in group:
                    server.stop()
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\n{args.users} locust users, {args.seconds} s per phase, 2 replicas per store, model "  # noqa: T201
          f"{args.model}, max_tokens 1\n{table(phases)}\n\n{summarise(phases)}\n"
          f"experiment change applied by the other replica: p50 {np.percentile(propagation, 50):.0f} ms, "
          f"max {max(propagation):.0f} ms over {len(propagation)} changes (poll interval 1000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
