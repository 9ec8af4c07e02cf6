"""A server started with an admin key: each restricted API is refused without it and works with it.

One tritonserver for the module, on a trimmed repository (the router, experiments and the
smallest demo model), started by the launcher with `admin_key`, as `pointsman serve
--admin-key` does.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pointsman.launcher.tritonserver import ServerPorts, TritonServer
from pointsman.policy.admin import ADMIN_GRPC_HEADER, ADMIN_HEADER, ADMIN_PARAMETER
from tests.integration.conftest import start_until_ready

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-admin-key"
# (method, path, body): one call of each API Triton restricts to the key
RESTRICTED = {
    "model-repository": ("POST", "/v2/repository/index", {}),
    "model-config": ("GET", "/v2/models/experiments/config", None),
    "logging": ("GET", "/v2/logging", None),
    "trace": ("GET", "/v2/trace/setting", None),
    "shared-memory": ("GET", "/v2/systemsharedmemory/status", None),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    base = tmp_path_factory.mktemp("admin")
    repository = base / "repository"
    for folder in (ROOT / "model_repository").iterdir():
        if folder.name.startswith(("router", "distilgpt2")) or folder.name == "experiments":
            shutil.copytree(folder, repository / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    running = TritonServer(repository, ports=ServerPorts.free(), state_dir=base / "state", log_file=base / "server.log",
                           admin_key=KEY)
    try:
        start_until_ready(running)
        yield running
    finally:
        running.stop()


def call(server: TritonServer, method: str, path: str, body=None, key: str | None = None) -> tuple[int, object]:
    headers = {ADMIN_HEADER: key} if key else {}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server.http_url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.mark.parametrize("api", list(RESTRICTED))
def test_a_restricted_http_api_is_403_without_the_key_and_200_with_it(server, api):
    method, path, body = RESTRICTED[api]

    assert call(server, method, path, body)[0] == 403
    assert call(server, method, path, body, key="wrong")[0] == 403
    assert call(server, method, path, body, key=KEY)[0] == 200


def test_unload_needs_the_key(server):
    assert call(server, "POST", "/v2/repository/models/experiments/unload", {})[0] == 403


def test_a_restricted_grpc_protocol_is_unavailable_without_the_key(server):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
            client.get_model_repository_index()
        index = client.get_model_repository_index(headers={ADMIN_GRPC_HEADER: KEY}, as_json=True)
    assert {"experiments"} <= {m["name"] for m in index["models"]}


def experiments(server: TritonServer, action: str, payload: dict | None = None, key: str | None = None):
    """The generate endpoint: Triton forwards no header there, so the key is the admin_key field."""
    body = {"action": action, **({"payload": json.dumps(payload)} if payload is not None else {}),
            **({ADMIN_PARAMETER: key} if key else {})}
    return call(server, "POST", "/v2/models/experiments/generate", body)


def test_the_key_also_arrives_as_a_forwarded_header_on_infer(server):
    body = {"inputs": [{"name": "action", "shape": [1], "datatype": "BYTES", "data": ["resume"]},
                       {"name": "payload", "shape": [1], "datatype": "BYTES", "data": [json.dumps({"name": "none"})]}]}

    status, answer = call(server, "POST", "/v2/models/experiments/infer", body)
    assert status == 400 and "send the admin key" in answer["error"]
    status, answer = call(server, "POST", "/v2/models/experiments/infer", body, key=KEY)
    assert status == 400 and "unknown experiment 'none'" in answer["error"]  # past the key check


def test_changing_experiments_needs_the_key_and_reading_them_does_not(server):
    spec = {"name": "keyed", "arms": [{"name": "a", "model": "distilgpt2", "weight": 1},
                                      {"name": "b", "model": "distilgpt2", "weight": 1}]}

    status, body = experiments(server, "create", spec)
    assert status == 400 and f"send the admin key in the '{ADMIN_HEADER}' header" in body["error"]
    status, body = experiments(server, "create", spec, key=KEY)
    assert status == 200, body
    assert experiments(server, "pause", {"name": "keyed"})[0] == 400
    assert experiments(server, "pause", {"name": "keyed"}, key=KEY)[0] == 200
    status, body = experiments(server, "list")
    assert status == 200 and "keyed" in body["text_output" if "text_output" in body else "result"]


def test_inference_stays_open_and_the_router_sees_readiness_through_the_key(server):
    status, body = call(server, "POST", "/v2/models/router/generate",
                        {"text_input": "Write a poem about rain", "auto_select": True, "max_tokens": 4})

    assert status == 200, body
    assert body["selected_model"] == "distilgpt2"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_python_client_sends_its_admin_key_with_experiment_changes(server, protocol, monkeypatch):
    from pointsman.client import PointsmanClient, PointsmanClientError

    monkeypatch.delenv("POINTSMAN_ADMIN_KEY", raising=False)
    url = server.http_url if protocol == "http" else server.grpc_url
    spec = {"name": f"client-{protocol}", "arms": [{"name": "a", "model": "distilgpt2", "weight": 1},
                                                   {"name": "b", "model": "distilgpt2", "weight": 1}]}
    with PointsmanClient(url, protocol=protocol) as keyless:
        with pytest.raises(PointsmanClientError, match="send the admin key"):
            keyless.experiments("create", spec)
        assert spec["name"] not in {e["name"] for e in keyless.experiments("list")["experiments"]}
    with PointsmanClient(url, protocol=protocol, admin_key=KEY) as keyed:
        keyed.experiments("create", spec)
        keyed.experiments("stop", {"name": spec["name"]})
        listed = {e["name"]: e["status"] for e in keyed.experiments("list")["experiments"]}
    assert listed[spec["name"]] == "stopped"


def test_the_router_reloads_a_dead_model_through_the_restricted_repository_api(server):
    """The router's own unload and load (over gRPC) carry the key: without it Triton would refuse them."""
    import os
    import signal

    from tests.integration.test_serve_shutdown import group_members
    from tests.waiting import wait_until

    def stub() -> int | None:
        assert server.process is not None
        for pid in group_members(server.process.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "triton_python_backend_stub" in cmdline and "/distilgpt2_stream/1/model.py" in cmdline:
                return pid
        return None

    manual = {"text_input": "Tell me a story", "model": "distilgpt2", "max_tokens": 4}
    victim = stub()
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    status, body = call(server, "POST", "/v2/models/router/generate", manual)
    assert status != 200 and "not healthy" in body["error"], body  # the death, seen by the router
    assert wait_until(lambda: stub() not in (None, victim), timeout=60)  # a new stub: reloaded
    assert wait_until(lambda: call(server, "POST", "/v2/models/router/generate", manual)[0] == 200, timeout=60)
    log = Path(server.log_file).read_text()
    assert "reloaded distilgpt2_stream" in log and "reload of distilgpt2_stream failed" not in log
