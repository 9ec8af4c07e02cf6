"""Server faults through the gateway are 503 with Retry-After: a model missing, then Triton stopped.

    .venv/bin/pytest tests/integration/test_gateway_faults.py -q

Uses a tritonserver of its own on an empty repository (it starts in seconds), so stopping it
disturbs no other test.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pointsman.gateway.server import GatewayProcess
from pointsman.launcher.tritonserver import ServerPorts, TritonServer

BODY = {"model": "auto", "prompt": "hello", "max_tokens": 2}


@pytest.fixture
def empty_triton(tmp_path) -> Iterator[TritonServer]:
    repository = tmp_path / "empty_repository"
    repository.mkdir()
    server = TritonServer(repository, ports=ServerPorts.free(), state_dir=tmp_path / "state",
                          log_file=tmp_path / "tritonserver.log")
    with server:
        yield server


def test_missing_router_then_stopped_triton_are_503_with_retry_after(empty_triton, tmp_path):
    with GatewayProcess(empty_triton.grpc_url, port=ServerPorts.free().http,
                        log_file=tmp_path / "gateway.log") as gateway, httpx.Client(base_url=gateway.url,
                                                                                    timeout=30) as http:
        assert http.get("/health/ready").status_code == 200

        missing = http.post("/v1/completions", json=BODY)  # Triton is up, the router is not loaded
        assert missing.status_code == 503 and missing.headers["retry-after"] == "1"
        assert missing.json()["error"]["type"] == "service_unavailable_error"

        empty_triton.stop()

        for path, body in (("/v1/completions", BODY), ("/inference", {"prompt": "hello"})):
            down = http.post(path, json=body)
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"] == "1" and "unreachable" in down.json()["error"]["message"]
        assert http.get("/v1/models").status_code == 503
        assert http.get("/health/ready").status_code == 503
        # a malformed request is still the caller's fault, whatever the server's state
        assert http.post("/v1/completions", json={**BODY, "n": 3}).status_code == 400
