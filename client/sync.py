"""Blocking client for Pointsman over tritonclient HTTP or gRPC.

    with PointsmanClient("127.0.0.1:8000") as client:
        print(client.generate("Write a poem about rain", auto=True).selected_model)

A generation that answers once goes to `router` (or a model's plain name): the generate
endpoint on HTTP, unary ModelInfer on gRPC. A streamed one goes to the decoupled twin,
`router_stream` (or `<model>_stream`): generate_stream (server-sent events) on HTTP, the
bidirectional stream on gRPC. `recommend` and `catalog` answer plain inference on both. Every error becomes a
PointsmanClientError with a one-line message.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

from typing_extensions import Unpack

from pointsman.client.request import (
    CATALOG_MODEL,
    DEFAULT_TIMEOUT_S,
    DEFAULT_URLS,
    EXPERIMENT_ACTIONS,
    EXPERIMENTS_MODEL,
    PROTOCOLS,
    RECOMMEND_MODEL,
    ROUTER_MODEL,
    USAGE_MODEL,
    GenerateOptions,
    GenerateRequest,
    InputSpec,
    as_request,
    build_inputs,
    input_specs,
    recommend_fields,
)
from pointsman.client.types import (
    GenerationResponse,
    ModelInfo,
    PointsmanClientError,
    Recommendation,
    ResponseAssembler,
    parse_catalog,
)
from pointsman.client.wire import checked_body, is_missing_model, outputs_of, split_url, transport_error
from pointsman.policy.admin import ADMIN_PARAMETER, STATE_CHANGING_ACTIONS, configured_key
from pointsman.policy.contract import stream_model


class _HttpTransport:
    """Generate endpoints over plain HTTP (urllib), everything else through tritonclient.http."""

    def __init__(self, url: str, timeout: float) -> None:
        import tritonclient.http as httpclient

        scheme, address = split_url(url, "http")
        self.where = f"{scheme}://{address}"
        self.timeout = timeout
        self._module = httpclient
        self.triton = httpclient.InferenceServerClient(address, ssl=scheme == "https", connection_timeout=timeout,
                                                       network_timeout=timeout)
        self._specs: dict[str, dict[str, InputSpec]] = {}

    def events(self, model: str, fields: Mapping[str, Any], stream: bool) -> Iterator[dict[str, Any]]:
        """One dict of outputs per response: one for generate, one per event for generate_stream."""
        endpoint = "generate_stream" if stream else "generate"
        request = urllib.request.Request(f"{self.where}/v2/models/{urllib.parse.quote(model)}/{endpoint}",
                                         data=json.dumps(dict(fields)).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if not stream:
                    yield checked_body(json.loads(response.read() or b"{}"), model)
                    return
                for raw in response:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if line.startswith("data:"):
                        yield checked_body(json.loads(line[len("data:"):]), model)
        except (OSError, ValueError) as exc:  # urllib's errors are OSErrors; ValueError: a body that is not JSON
            raise transport_error(exc, model=model, where=self.where) from None

    def infer(self, model: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        try:
            inputs, parameters = build_inputs(self._module.InferInput, self._input_specs(model), fields)
            result = self.triton.infer(model, inputs, parameters=parameters or None)
            return outputs_of(result, [o["name"] for o in result.get_response()["outputs"]])
        except Exception as exc:  # noqa: BLE001 - every failure leaves as one exception type
            raise transport_error(exc, model=model, where=self.where) from None

    def _input_specs(self, model: str) -> dict[str, InputSpec]:
        if model not in self._specs:
            self._specs[model] = input_specs(self.triton.get_model_metadata(model))
        return self._specs[model]

    def repository(self) -> tuple[list[dict], dict[str, dict]]:
        try:
            index = self.triton.get_model_repository_index()
            stats = self.triton.get_inference_statistics().get("model_stats", [])
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=None, where=self.where) from None
        return index, {s["name"]: s for s in stats}

    def is_ready(self) -> bool:
        try:
            return bool(self.triton.is_server_ready())
        except Exception:  # noqa: BLE001 - not ready is the answer
            return False

    def close(self) -> None:
        self.triton.close()


class _GrpcTransport:
    """tritonclient.grpc: the bidirectional stream for decoupled models, unary calls otherwise.

    tritonclient allows one open stream per client object, so each generation borrows a
    client from a small pool: one PointsmanClient can serve several threads at once.
    """

    def __init__(self, url: str, timeout: float) -> None:
        import tritonclient.grpc as grpcclient

        scheme, address = split_url(url, "grpc")
        self.where = f"grpc://{address}"
        self.timeout = timeout
        self._module = grpcclient
        self._address, self._ssl = address, scheme == "https"
        self.triton = self._new_client()
        self._idle: list = []
        self._lock = threading.Lock()
        self._specs: dict[str, dict[str, InputSpec]] = {}

    def _new_client(self):
        return self._module.InferenceServerClient(self._address, ssl=self._ssl)

    def events(self, model: str, fields: Mapping[str, Any], stream: bool) -> Iterator[dict[str, Any]]:
        if not stream:  # one answer: unary ModelInfer on the non-decoupled model
            yield self.infer(model, fields)
            return
        try:
            inputs, parameters = build_inputs(self._module.InferInput, self._input_specs(model), fields)
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=model, where=self.where) from None
        with self._lock:
            client = self._idle.pop() if self._idle else self._new_client()
        answers: queue.Queue = queue.Queue()
        finished = False
        try:
            client.start_stream(callback=lambda result, error: answers.put((result, error)),
                                stream_timeout=self.timeout)
            client.async_stream_infer(model, inputs, parameters=parameters or None, enable_empty_final_response=True)
            while not finished:
                try:
                    result, error = answers.get(timeout=self.timeout)
                except queue.Empty:
                    raise PointsmanClientError(f"no answer within {self.timeout:.0f}s", model=model) from None
                if error is not None:
                    finished = True  # an error response ends the request
                    raise transport_error(error, model=model, where=self.where)
                response = result.get_response()
                finished = response.parameters["triton_final_response"].bool_param
                if response.outputs:
                    yield outputs_of(result, [o.name for o in response.outputs])
        except PointsmanClientError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=model, where=self.where) from None
        finally:
            # a stream left early (the caller stopped reading) cancels its request on the server
            client.stop_stream(cancel_requests=not finished)
            with self._lock:
                self._idle.append(client)

    def infer(self, model: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        try:
            inputs, parameters = build_inputs(self._module.InferInput, self._input_specs(model), fields)
            result = self.triton.infer(model, inputs, parameters=parameters or None, client_timeout=self.timeout)
            return outputs_of(result, [o.name for o in result.get_response().outputs])
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=model, where=self.where) from None

    def _input_specs(self, model: str) -> dict[str, InputSpec]:
        if model not in self._specs:
            metadata = self.triton.get_model_metadata(model, as_json=True, client_timeout=self.timeout)
            self._specs[model] = input_specs(metadata)
        return self._specs[model]

    def repository(self) -> tuple[list[dict], dict[str, dict]]:
        try:
            index = self.triton.get_model_repository_index(as_json=True).get("models", [])
            stats = self.triton.get_inference_statistics(as_json=True).get("model_stats", [])
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=None, where=self.where) from None
        return index, {s["name"]: s for s in stats}

    def is_ready(self) -> bool:
        try:
            return bool(self.triton.is_server_ready(client_timeout=self.timeout))
        except Exception:  # noqa: BLE001
            return False

    def close(self) -> None:
        with self._lock:
            clients, self._idle = [self.triton, *self._idle], []
        for client in clients:
            client.close()


class GenerationStream:
    """The text of one generation as it arrives; `response` once it has all arrived.

        stream = client.stream("Once upon a time", auto=True)
        for piece in stream:
            print(piece, end="")
        stream.response.selected_model
    """

    def __init__(self, events: Iterator[dict[str, Any]], target: str) -> None:
        self._events = events
        self._assembler = ResponseAssembler(target)
        self._response: GenerationResponse | None = None

    def __iter__(self) -> Iterator[str]:
        start, first = time.perf_counter(), None
        for outputs in self._events:
            first = first if first is not None else (time.perf_counter() - start) * 1e3
            piece = self._assembler.add(outputs)
            if piece:
                yield piece
        self._response = self._assembler.finish((time.perf_counter() - start) * 1e3, first)

    @property
    def response(self) -> GenerationResponse:
        if self._response is None:
            raise RuntimeError("the stream has not been read to its end")
        return self._response

    def close(self) -> None:
        """Stop reading; over gRPC the request is cancelled on the server."""
        close = getattr(self._events, "close", None)
        if close:
            close()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PointsmanClient:
    """Pointsman over tritonclient: generate, stream, recommend, models.

    Args:
        url: host:port of Triton's HTTP (default 127.0.0.1:8000) or gRPC (127.0.0.1:8001) endpoint.
        protocol: "http" or "grpc".
        router: the name of the router model.
        timeout: seconds to wait for an answer.

    """

    def __init__(self, url: str | None = None, protocol: str = "http", *, router: str = ROUTER_MODEL,
                 timeout: float = DEFAULT_TIMEOUT_S, admin_key: str | None = None) -> None:
        # experiment changes need the server's admin key (default: $POINTSMAN_ADMIN_KEY)
        self.admin_key = admin_key if admin_key is not None else configured_key()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
        self.protocol = protocol
        self.router = router
        transport = _HttpTransport if protocol == "http" else _GrpcTransport
        self._transport = transport(url or DEFAULT_URLS[protocol], timeout)

    @property
    def url(self) -> str:
        return self._transport.where

    def generate(self, prompt: str | GenerateRequest, **options: Unpack[GenerateOptions]) -> GenerationResponse:
        """One full generation; selection and sampling options as in GenerateRequest (or a GenerateRequest)."""
        stream = self._open(as_request(prompt, options), stream=False)
        for _ in stream:
            pass
        return stream.response

    def stream(self, prompt: str | GenerateRequest, **options: Unpack[GenerateOptions]) -> GenerationStream:
        """A generation whose text arrives piece by piece (nothing is sent until it is read)."""
        return self._open(as_request(prompt, options), stream=True)

    def _open(self, request: GenerateRequest, *, stream: bool) -> GenerationStream:
        # streaming goes to the decoupled twin (router_stream, gpt2_stream); one answer to the plain name
        target = stream_model(request.target(self.router)) if stream else request.target(self.router)
        return GenerationStream(self._transport.events(target, request.fields(stream=stream), stream), target)

    def recommend(self, prompt: str, *, max_tokens: int | None = None, max_response_time: float | None = None,
                  min_quality: float | None = None, prefer_speed: bool = False) -> Recommendation:
        """Which model auto-selection would pick for this prompt and these requirements, and why."""
        fields = recommend_fields(prompt, max_tokens=max_tokens, max_response_time=max_response_time,
                                  min_quality=min_quality, prefer_speed=prefer_speed)
        return Recommendation.from_outputs(self._transport.infer(RECOMMEND_MODEL, fields))

    def models(self, name: str | None = None) -> list[ModelInfo]:
        """Every served model (or one) with metadata and live status, from the `catalog` model.

        Without a catalog model on the server, Triton's repository index and statistics
        stand in (ModelInfo.source == "repository").
        """
        fields = {"model": name} if name else {}
        try:
            return parse_catalog(self._transport.infer(CATALOG_MODEL, fields).get("models"))
        except PointsmanClientError as exc:
            if not is_missing_model(exc, CATALOG_MODEL):
                raise
        index, stats = self._transport.repository()
        return [ModelInfo.from_repository(entry, stats.get(entry["name"]))
                for entry in index if name is None or entry.get("name") == name]

    def experiments(self, action: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Manage A/B experiments: list, create, pause, resume, stop, report, feedback."""
        if action not in EXPERIMENT_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(EXPERIMENT_ACTIONS)} (got {action!r})")
        fields: dict[str, Any] = {"action": action}
        if payload is not None:
            fields["payload"] = json.dumps(payload)
        if self.admin_key and action in STATE_CHANGING_ACTIONS:
            # a request parameter: the experiments model reads it on every transport
            fields[ADMIN_PARAMETER] = self.admin_key
        return json.loads(self._transport.infer(EXPERIMENTS_MODEL, fields)["result"])

    def usage(self, window_s: float | None = None) -> dict[str, Any]:
        """Usage analytics over the last window_s seconds (all records when None)."""
        fields = {} if window_s is None else {"window_s": float(window_s)}
        return json.loads(self._transport.infer(USAGE_MODEL, fields)["summary"])

    def is_ready(self) -> bool:
        return self._transport.is_ready()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> PointsmanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

