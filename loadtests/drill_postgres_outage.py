"""Stop PostgreSQL under load and start it again; print what two replicas did, second by second.

    .venv/bin/python -m pointsman.loadtests.drill_postgres_outage --database-url "$(tests/postgres/start_postgres.sh)" \
        --stop "pg_ctlcluster --skip-systemctl-redirect 15 main stop" \
        --start "pg_ctlcluster --skip-systemctl-redirect 15 main start"

A drill, not a test: it stops a whole PostgreSQL server (only run it on one you own).
Two tritonservers (router + one small model, ports from --base-port) share a fresh
database; locust loads both (64 users) for --seconds; the server is stopped at --stop-at
and started at --start-at (seconds into the load). Every second it prints the requests the routers executed,
the records stored (so the moment the writers reconnect shows) and each replica's
pointsman_usage_records_lost_total; at the end, the requests, the
records stored, the lost-record counters, locust's failures, and the writer's log lines
(when it failed, gave up, and reached the database again).
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg

from pointsman.launcher.tritonserver import ServerPorts, TritonServer
from pointsman.loadtests.bench_replicas import (
    LOCUSTFILE,
    database_url,
    postgres_counter,
    router_requests,
    settled_count,
    trimmed_repository,
)
from pointsman.triton_adapters.router_metrics import PREFIX

LOST = PREFIX + "usage_records_lost_total"


def lost_records(server: TritonServer) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{server.host}:{server.ports.metrics}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == LOST)


def stored(count) -> str:
    """Records stored so far, or "-" while the database is away."""
    try:
        return str(count())
    except psycopg.OperationalError:
        return "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--stop", required=True, help="shell command that stops the PostgreSQL server")
    parser.add_argument("--start", required=True, help="shell command that starts it again")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--stop-at", type=float, default=15.0)
    parser.add_argument("--start-at", type=float, default=35.0)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--model", default="distilgpt2")
    args = parser.parse_args(argv)

    name = f"pointsman_drill_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    shared = database_url(args.database_url, name)
    run = f"drill-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="drill-") as tmp:
        root = Path(tmp)
        repository = trimmed_repository(root, args.model)
        servers = []
        for i in range(2):
            base = args.base_port + 10 * i
            servers.append(TritonServer(repository, ports=ServerPorts(base, base + 1, base + 2),
                                        state_dir=root / f"replica-{i}", log_file=root / f"replica-{i}.log",
                                        env={"POINTSMAN_DATABASE_URL": shared, "POINTSMAN_REPLICA": f"replica-{i}"}))
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready(timeout=300)
            before = router_requests(servers)
            env = dict(os.environ, POINTSMAN_REPLICA_URLS=",".join(f"http://{s.http_url}" for s in servers),
                       POINTSMAN_RUN=run, POINTSMAN_BENCH_MODEL=args.model)
            locust = subprocess.Popen(
                [str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless", "-u",
                 str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s", "--host",
                 f"http://{servers[0].http_url}", "--stop-timeout", "30", "--csv", str(root / run), "--only-summary"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            count = postgres_counter(shared, run)
            started, stopped, restarted = time.monotonic(), False, False
            while locust.poll() is None:
                t = time.monotonic() - started
                if not stopped and t >= args.stop_at:
                    subprocess.run(shlex.split(args.stop), check=True)
                    stopped = True
                    print(f"t={t:5.1f}s  PostgreSQL stopped", flush=True)  # noqa: T201
                if stopped and not restarted and t >= args.start_at:
                    subprocess.run(shlex.split(args.start), check=True)
                    restarted = True
                    print(f"t={t:5.1f}s  PostgreSQL started", flush=True)  # noqa: T201
                print(f"t={t:5.1f}s  requests {router_requests(servers) - before:6d}  stored "  # noqa: T201
                      f"{stored(count):>6}  lost {[lost_records(s) for s in servers]}", flush=True)
                time.sleep(1.0)  # a once-a-second report, not a synchronisation
            requests = router_requests(servers) - before
            records = settled_count(postgres_counter(shared, run), requests)
            lost = [lost_records(s) for s in servers]
            with open(root / f"{run}_stats.csv", newline="") as f:
                row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
            print(f"\nrequests executed by the routers {requests}, locust failures {row['Failure Count']}, "  # noqa: T201
                  f"records stored {records}, missing {requests - records}, lost metric {lost} "
                  f"(sum {sum(lost):.0f})")
        finally:
            for server in servers:
                server.stop()
            for i, server in enumerate(servers):
                lines = [line for line in Path(server.log_file).read_text(errors="replace").splitlines()
                         if "usage records" in line or "experiments from" in line or "PostgreSQL" in line]
                print(f"\n--- replica-{i} log ({len(lines)} lines about the store)")  # noqa: T201
                print("\n".join(lines[:12] + (["..."] + lines[-6:] if len(lines) > 18 else lines[12:])))  # noqa: T201
            subprocess.run(shlex.split(args.start), check=False, capture_output=True)
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
