"""Locust load test of Pointsman: manual, auto and hybrid requests over HTTP and gRPC.

    .venv/bin/locust -f loadtests/locustfile.py --headless -u 4 -r 2 -t 20s --host http://127.0.0.1:8000
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 4 -r 2 -t 20s --host http://127.0.0.1:8000 \
        --mode-weights manual=1,auto=2,hybrid=1,direct=1 --max-tokens 16 RouterHttpUser

Every request is named by how its model is chosen ("router manual", "router auto",
"router hybrid", "direct" for a model called without the router), so locust's stats
give per-mode latency; `direct` against `router manual` is the router hop. The HTTP
user posts to the generate endpoint of `router` or a model (the non-decoupled twins); the
gRPC user goes through client.PointsmanClient (unary ModelInfer on the twins, the
bidirectional stream on `router_stream` / `<model>_stream` when streaming) and reports
to locust's request events. Each answer is checked: text, tokens, and for
the router the mode and model it reports.

Options (locust arguments, or the environment variables in brackets):
    --mode-weights  manual=1,auto=1,hybrid=1[,direct=0]    [POINTSMAN_MODE_WEIGHTS]
    --models        models for manual, hybrid and direct     [POINTSMAN_MODELS]
    --max-tokens    new tokens per request (default 16)      [POINTSMAN_MAX_TOKENS]
    --fallback      hybrid fallback_mode (default auto)      [POINTSMAN_FALLBACK]
    --grpc-url      host:port of gRPC (default: the --host port + 1, Triton's 8000/8001 layout)
                                                             [POINTSMAN_GRPC_URL]
Pick one user class by naming it last (RouterHttpUser or RouterGrpcUser); both run by default.
"""

from __future__ import annotations

import gc
import logging
import random
import time

from locust import FastHttpUser, User, between, events, task

# locust puts this file's folder on sys.path; workload.py holds everything testable without gevent
from workload import DEFAULT_MODELS, DEFAULT_WEIGHTS, MODES, Workload, check_answer, default_grpc_url, request_name

LOGGER = logging.getLogger(__name__)

_WORKLOAD: Workload | None = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    group = parser.add_argument_group("pointsman")
    group.add_argument("--mode-weights", default=DEFAULT_WEIGHTS, env_var="POINTSMAN_MODE_WEIGHTS",
                       help=f"request mix, MODE=WEIGHT pairs (modes: {', '.join(MODES)})")
    group.add_argument("--models", default=DEFAULT_MODELS, env_var="POINTSMAN_MODELS",
                       help="comma-separated models for manual, hybrid and direct requests")
    group.add_argument("--max-tokens", type=int, default=16, env_var="POINTSMAN_MAX_TOKENS")
    group.add_argument("--fallback", default="auto", env_var="POINTSMAN_FALLBACK", help="hybrid fallback_mode")
    group.add_argument("--grpc-url", default="", env_var="POINTSMAN_GRPC_URL",
                       help="gRPC host:port (default: the --host port + 1)")


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    global _WORKLOAD
    if environment.parsed_options is None:  # imported by a tool, not run by locust
        return
    try:
        _WORKLOAD = Workload.from_options(environment.parsed_options)
    except ValueError as exc:
        LOGGER.error("%s", exc)
        raise SystemExit(2) from None
    # grpcio blocks the whole gevent loop unless told to cooperate, before any channel exists
    import grpc.experimental.gevent as grpc_gevent

    grpc_gevent.init_gevent()


@events.quit.add_listener
def _on_quit(**_kwargs) -> None:
    # Finalize the gRPC streams' objects now, while gevent still runs: left to the
    # interpreter's exit, a grpcio finalizer can deadlock on its own lock.
    gc.collect()


def _workload() -> Workload:
    if _WORKLOAD is None:
        raise RuntimeError("the workload is set up by locust's init event")
    return _WORKLOAD


class RouterHttpUser(FastHttpUser):
    """POST /v2/models/{router|model}/generate, one JSON request and answer each."""

    weight = 3
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def generate(self) -> None:
        request = _workload().next_request(self.rng)
        path = f"/v2/models/{request.target()}/generate"
        with self.client.post(path, json=request.fields(stream=False), name=request_name(request),
                              catch_response=True) as response:
            try:
                outputs = response.json()
            except ValueError:
                outputs = {"error": f"HTTP {response.status_code}: not JSON: {(response.text or '')[:200]!r}"}
            problem = check_answer(request, outputs) if response.status_code == 200 else (
                f"HTTP {response.status_code}: {outputs.get('error', '')}")
            if problem:
                response.failure(problem)
            else:
                response.success()


class RouterGrpcUser(User):
    """The same workload over gRPC through the Pointsman client, reported as request type grpc."""

    weight = 1
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        from pointsman.client.sync import PointsmanClient

        self.rng = random.Random()
        url = self.environment.parsed_options.grpc_url or default_grpc_url(self.host or "127.0.0.1:8000")
        self.client = PointsmanClient(url, protocol="grpc", timeout=60.0)

    def on_stop(self) -> None:
        self.client.close()

    @task
    def generate(self) -> None:
        from pointsman.client.types import PointsmanClientError

        request = _workload().next_request(self.rng)
        start = time.perf_counter()
        exception: Exception | None = None
        length = 0
        try:
            answer = self.client.generate(request)
            length = len(answer.text.encode())
            outputs = {"text_output": answer.text, "tokens": answer.tokens,
                       "selection_mode": answer.selection_mode, "selected_model": answer.selected_model}
            problem = check_answer(request, outputs)
            if problem:
                exception = AssertionError(problem)
        except PointsmanClientError as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type="grpc", name=request_name(request), response_time=(time.perf_counter() - start) * 1e3,
            response_length=length, exception=exception, context={})
