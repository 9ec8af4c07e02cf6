"""`pointsman serve` starts the gateway beside tritonserver and stops it; `--no-gateway` leaves it out.

    .venv/bin/pytest tests/integration/test_gateway_serve.py -q

Runs the real command on an empty repository (tritonserver starts in seconds), on free ports.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from pointsman.launcher.tritonserver import ServerPorts
from tests.waiting import wait_for

START_TIMEOUT_S = 120.0


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, ServerPorts, int]:
    repository = tmp_path / "repository"
    repository.mkdir(exist_ok=True)
    ports, gateway_port = ServerPorts.free(), ServerPorts.free().http
    command = [sys.executable, "-m", "pointsman.launcher.cli", "serve", "--model-repository", str(repository),
               "--http-port", str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics),
               "--gateway-port", str(gateway_port), *extra]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    return process, ports, gateway_port


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def test_serve_runs_the_gateway_and_stopping_serve_stops_it(tmp_path):
    process, ports, gateway_port = serve(tmp_path)
    try:
        gateway = f"http://127.0.0.1:{gateway_port}"
        wait_for(lambda: answers(f"{gateway}/health/ready"), START_TIMEOUT_S, "the gateway to report Triton ready")
        assert answers(f"http://127.0.0.1:{ports.http}/v2/health/ready")
    finally:
        code = stop(process)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert not answers(f"{gateway}/health/live")


def test_serve_without_gateway_leaves_the_port_free(tmp_path):
    process, ports, gateway_port = serve(tmp_path, "--no-gateway")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{ports.http}/v2/health/ready"), START_TIMEOUT_S, "tritonserver")
        wait_for(lambda: b"Pointsman is ready" in (tmp_path / "serve.log").read_bytes(), START_TIMEOUT_S,
                 "serve to announce it is ready")
        assert not answers(f"http://127.0.0.1:{gateway_port}/health/live")
    finally:
        stop(process)
