"""Stopping `pointsman serve` ends every process it started, also in the middle of a generation.

tritonserver waits --exit-timeout-secs for in-flight requests, then exits without
finalizing the models that still had some: their Python backend stubs used to outlive
it, reparented to init. serve now reaps the server's whole process group once
tritonserver has exited.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pointsman.launcher.tritonserver import STOP_GRACE_S, ServerPorts
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
STUB = "triton_python_backend_stub"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def is_stub(pid: int) -> bool:
    try:
        return STUB in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def small_repository(tmp_path: Path) -> Path:
    """The smallest demo model (with its streaming sibling, where there is one) and usage."""
    repository = tmp_path / "repository"
    for folder in (ROOT / "model_repository").iterdir():
        if folder.name.startswith("distilgpt2") or folder.name == "usage":
            shutil.copytree(folder, repository / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    return repository


def start_endless_generation(grpc_port: int, model: str):
    """A gRPC stream generating far longer than the exit timeout; returns the client."""
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    client.start_stream(callback=lambda result, error: None)
    inputs = []
    for name, value in (("text_input", np.array([b"Tell me a story"], dtype=object)),
                        ("max_tokens", np.array([4000], dtype=np.int32)),
                        ("ignore_eos", np.array([True])), ("stream", np.array([True]))):
        tensor = grpcclient.InferInput(name, [1], np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    client.async_stream_infer(model, inputs)
    return client


def test_sigterm_to_serve_mid_generation_ends_every_process_it_started(small_repository, tmp_path):
    ports = ServerPorts.free()
    serve = subprocess.Popen(
        [sys.executable, "-m", "pointsman.launcher.cli", "serve", "--model-repository", str(small_repository),
         "--http-port", str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: ready(ports.http), timeout=120), "server never became ready"
        server = next(int(p) for p in subprocess.check_output(["pgrep", "-P", str(serve.pid)], text=True).split())
        assert [pid for pid in group_members(server) if is_stub(pid)], "stubs share the server's process group"
        engine = "distilgpt2_stream" if (small_repository / "distilgpt2_stream").exists() else "distilgpt2"
        client = start_endless_generation(ports.grpc, engine)

        serve.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=STOP_GRACE_S + 30)
        client.stop_stream(cancel_requests=True)

        assert code == 0
        assert not group_members(server), f"left behind: {group_members(server)}"
    finally:  # whatever the outcome, leave nothing running
        if serve.poll() is None:
            serve.kill()
        for group in (serve.pid, locals().get("server")):
            if group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)


def test_serve_starts_tritonserver_again_when_it_aborts(small_repository, tmp_path):
    """Triton 2.51 can abort when a stub dies holding a shared-memory lock: serve brings it back."""
    ports = ServerPorts.free()
    serve = subprocess.Popen(
        [sys.executable, "-m", "pointsman.launcher.cli", "serve", "--model-repository", str(small_repository),
         "--http-port", str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics),
         "--no-gateway"],
        cwd=tmp_path, stdout=(tmp_path / "serve.out").open("wb"), stderr=(tmp_path / "serve.log").open("wb"),
        start_new_session=True)
    servers: list[int] = []

    def current_server() -> int | None:
        children = subprocess.run(["pgrep", "-P", str(serve.pid)], capture_output=True, text=True).stdout.split()
        return int(children[0]) if children else None

    def serving() -> bool:  # serve has seen the server ready and now watches it (it says so)
        return "Pointsman is ready" in (tmp_path / "serve.out").read_text(errors="replace")

    try:
        assert wait_until(serving, timeout=120), "serve never said the server was ready"
        servers.append(current_server())
        os.kill(servers[0], signal.SIGABRT)  # what the upstream abort does to it

        assert wait_until(lambda: current_server() not in (None, servers[0]) and ready(ports.http), timeout=120)
        servers.append(current_server())
        assert not group_members(servers[0]), "the crashed server's stubs were reaped"
        body = b'{"text_input": "def add(a, b):", "max_tokens": 2}'
        request = urllib.request.Request(f"http://127.0.0.1:{ports.http}/v2/models/distilgpt2/generate", data=body)
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=STOP_GRACE_S + 30) == 0
        assert not group_members(servers[1]), f"left behind: {group_members(servers[1])}"
        said = (tmp_path / "serve.log").read_text(errors="replace")
        assert "pointsman serve: tritonserver died (" in said and "starting it again" in said, said[-2000:]
    finally:
        if serve.poll() is None:
            serve.kill()
        for group in (serve.pid, *servers):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.killpg(group, signal.SIGKILL)
