"""One real tritonserver for the whole integration session, on free loopback ports.

    def test_gpt2_answers(triton):
        status, body = triton.generate("gpt2", {"text_input": "def add(a, b):", "max_tokens": 4})

The `triton` fixture starts pointsman.launcher.tritonserver.TritonServer once per session on
the project's own model_repository/ (every model in it is loaded, whatever it holds),
waits until all of them are ready and stops the server at the end. Helpers speak plain
HTTP (urllib) for the generate endpoints and tritonclient gRPC for streaming. When a
test that uses the fixture fails, the tail of the server log is attached to its report.
Every test in this folder is marked `integration` (deselect with `-m "not integration"`).
POINTSMAN_TEST_REPOSITORY=DIR serves DIR instead (it must hold the demo models too).
"""

from __future__ import annotations

import json
import os
import queue
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pointsman.client.request import scalar
from pointsman.export.repository import engine_name
from pointsman.gateway.server import GatewayProcess
from pointsman.launcher.tritonserver import ServerError, ServerPorts, TritonServer
from pointsman.triton_adapters.model_keeper import TWIN_PROBE_S

ROOT = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = ROOT / "model_repository"
DEMO_MODELS = ("gpt2", "distilgpt2", "codegen")
REPOSITORY_VARIABLE = "POINTSMAN_TEST_REPOSITORY"  # serve another repository instead (debugging)
READY_TIMEOUT_S = 240.0  # every model loads at start; more models on 2 cores take longer
LOG_TAIL_LINES = 60


def classifier_probes_within(seconds: float) -> int:
    """How many of the router's liveness probes can reach prompt_classifier in `seconds`.

    Triton counts each probe in the classifier's statistics (the stub refuses its empty
    prompt, but the request ran), so a test that counts the classifier's requests allows for them.
    """
    return int(seconds // TWIN_PROBE_S) + 1


@dataclass(frozen=True)
class StreamOutcome:
    """What a gRPC stream answered to one request."""

    responses: list[dict[str, Any]]  # output name -> Python scalar, one dict per response
    final: bool  # the last response carried Triton's final flag
    error: str | None = None  # the error message, when the request failed

    @property
    def text(self) -> str:
        return "".join(r.get("text_output", "") for r in self.responses)

    @property
    def last(self) -> dict[str, Any]:
        return self.responses[-1] if self.responses else {}


def _response_dict(result) -> dict[str, Any]:
    return {out.name: scalar(result.as_numpy(out.name)) for out in result.get_response().outputs}


@dataclass
class TritonHandle:
    """The running server and helpers to call it; see the module docstring."""

    server: TritonServer
    log_file: Path
    repository: Path
    _metadata: dict[str, dict] = field(default_factory=dict)

    # -- addresses ----------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        """Base URL for plain HTTP, e.g. http://127.0.0.1:41234."""
        return f"http://{self.server.host}:{self.server.ports.http}"

    @property
    def http_address(self) -> str:
        """host:port, the form tritonclient.http.InferenceServerClient takes."""
        return f"{self.server.host}:{self.server.ports.http}"

    @property
    def grpc_url(self) -> str:
        """host:port, the form tritonclient.grpc.InferenceServerClient takes."""
        return f"{self.server.host}:{self.server.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.server.host}:{self.server.ports.metrics}/metrics"

    # -- plain HTTP ---------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> tuple[int, Any]:
        """(status, JSON body or text); HTTP errors are returned, not raised."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.http_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request("POST", path, body if body is not None else b"")

    def generate(self, model: str, body: Mapping[str, Any]) -> tuple[int, dict]:
        """POST /v2/models/MODEL/generate; (status, body).

        Triton 2.51 reports some errors with status 200: check body.get("error") too.
        """
        return self.post(f"/v2/models/{model}/generate", dict(body))

    def generate_stream(self, model: str, body: Mapping[str, Any], timeout: float = 120.0) -> list[dict]:
        """POST /v2/models/MODEL/generate_stream; one dict per server-sent event.

        An error arrives as an event {"error": "..."} (with HTTP 400, which is not raised).
        """
        req = urllib.request.Request(f"{self.http_url}/v2/models/{model}/generate_stream",
                                     data=json.dumps(dict(body)).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            resp = exc
        with resp:
            events = []
            for raw in resp:
                line = raw.decode("utf-8").strip()
                if line.startswith("data:"):
                    events.append(json.loads(line[len("data:"):]))
            return events

    def ready(self) -> bool:
        return self.get("/v2/health/ready")[0] == 200

    def repository_index(self) -> list[dict]:
        status, body = self.post("/v2/repository/index")
        assert status == 200, body
        return body

    def model_config(self, model: str) -> dict:
        status, body = self.get(f"/v2/models/{model}/config")
        assert status == 200, body
        return body

    # -- gRPC (tritonclient) ------------------------------------------------------------
    def grpc_client(self):
        """Return a new tritonclient gRPC client; the caller closes it."""
        import tritonclient.grpc as grpcclient

        return grpcclient.InferenceServerClient(self.grpc_url)

    def grpc_inputs(self, model: str, fields: Mapping[str, Any]) -> tuple[list, dict[str, Any]]:
        """Fields -> (InferInputs typed as the model declares them, request parameters).

        Fields that are not inputs of the model become request parameters, as the
        generate endpoint does with unknown JSON keys.
        """
        import tritonclient.grpc as grpcclient

        if model not in self._metadata:
            with self.grpc_client() as client:
                meta = client.get_model_metadata(model, as_json=True)
            self._metadata[model] = {i["name"]: i["datatype"] for i in meta["inputs"]}
        declared = self._metadata[model]
        inputs, parameters = [], {}
        for name, value in fields.items():
            if name not in declared:
                parameters[name] = value
                continue
            dtype = declared[name]
            values = list(value) if isinstance(value, list | tuple) else [value]  # a list: a dims [-1] input
            array = (np.array([str(v).encode("utf-8") for v in values], dtype=np.object_) if dtype == "BYTES"
                     else np.array(values, dtype=_NUMPY_TYPES[dtype]))
            tensor = grpcclient.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return inputs, parameters

    def grpc_stream(self, model: str, fields: Mapping[str, Any], timeout: float = 120.0) -> StreamOutcome:
        """One request over a gRPC bidirectional stream, read to its final response."""
        inputs, parameters = self.grpc_inputs(model, fields)
        answers: queue.Queue = queue.Queue()
        with self.grpc_client() as client:
            client.start_stream(callback=lambda result, error: answers.put((result, error)))
            try:
                client.async_stream_infer(model, inputs, parameters=parameters or None,
                                          enable_empty_final_response=True)
                responses: list[dict[str, Any]] = []
                while True:
                    result, error = answers.get(timeout=timeout)
                    if error is not None:
                        return StreamOutcome(responses, final=True, error=str(error))
                    if result.get_response().outputs:
                        responses.append(_response_dict(result))
                    if result.get_response().parameters["triton_final_response"].bool_param:
                        return StreamOutcome(responses, final=True)
            finally:
                client.stop_stream()

    # -- diagnostics --------------------------------------------------------------------
    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_file.exists():
            return "(no server log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


_NUMPY_TYPES = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "FP32": np.float32, "FP64": np.float64,
}


# Triton 2.51's own abort when a Python backend stub dies holding a shared-memory lock
# (docs/faults.md); `pointsman serve` starts tritonserver again after it, and so do the fixtures
TRITON_LOCK_ABORT = "boost::interprocess::lock_exception"


def start_until_ready(server: TritonServer, timeout: float = READY_TIMEOUT_S, attempts: int = 2) -> None:
    """Start `server` and wait until it is ready; after Triton's lock abort, start it again (once).

    Any other failure to start raises at once, with the log's tail.
    """
    for attempt in range(1, attempts + 1):
        if server.process is None or server.process.poll() is not None:
            server.start()
        try:
            server.wait_ready(timeout=timeout)
            return
        except ServerError as exc:
            server.stop()
            if attempt == attempts or TRITON_LOCK_ABORT not in str(exc):
                raise
            warnings.warn(f"tritonserver aborted while starting ({TRITON_LOCK_ABORT}); starting it again",
                          stacklevel=2)


def missing_demo_models(repository: Path) -> list[str]:
    return [name for name in DEMO_MODELS if not (repository / engine_name(name) / "1" / "model.onnx").exists()]


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonHandle]:
    """Start a real tritonserver on model_repository/ for the whole session."""
    repository = Path(os.environ.get(REPOSITORY_VARIABLE) or MODEL_REPOSITORY).resolve()
    missing = missing_demo_models(repository)
    if missing:
        pytest.fail(f"demo models {', '.join(missing)} are not exported in {repository}: "
                    f"run `make setup` first", pytrace=False)
    state = tmp_path_factory.mktemp("tritonserver")
    log_file = state / "tritonserver.log"
    # own backend folder: never races another developer's server over .pointsman/
    server = TritonServer(repository, ports=ServerPorts.free(), state_dir=state, log_file=log_file)
    handle = TritonHandle(server=server, log_file=log_file, repository=repository)
    try:
        failure = None
        try:
            start_until_ready(server)
        except ServerError as exc:  # its message carries the log's tail
            failure = f"tritonserver did not become ready: {exc}\n(full log: {log_file})"
        if failure:
            pytest.fail(failure, pytrace=False)
        yield handle
    finally:
        server.stop()  # also reaps the backend stubs of a server that crashed


@pytest.fixture(scope="session")
def gateway(triton: TritonHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The HTTP gateway (pointsman.gateway) on a free port, in front of the session's tritonserver."""
    log_file = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with GatewayProcess(triton.grpc_url, port=ServerPorts.free().http, log_file=log_file) as process:
        yield process


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    handle = getattr(item, "funcargs", {}).get("triton")
    if report.failed and isinstance(handle, TritonHandle):
        report.sections.append((f"tritonserver log, last {LOG_TAIL_LINES} lines ({handle.log_file})",
                                handle.log_tail()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
