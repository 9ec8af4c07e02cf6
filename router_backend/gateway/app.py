"""The gateway's HTTP surface (FastAPI): OpenAI's /v1 API and the original /inference API.

    app = create_app("127.0.0.1:8001")
    uvicorn.run(app, host="127.0.0.1", port=9000)

Thin on purpose: request mapping lives in openai_api.py and original_api.py, error mapping
in errors.py, the Triton connection in triton_link.py, the web console at /ui in
console/. Bodies are read as plain JSON (no FastAPI body models) so that every refusal is
ours: a 400 naming the field. Every generation leaves its decision in app.state.decisions,
which the console's Decisions view reads.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from pointsman.gateway import openai_api, original_api
from pointsman.gateway.console import DecisionLog, add_console, decision_from
from pointsman.gateway.errors import ApiError
from pointsman.gateway.triton_link import CATALOG_MODEL, RECOMMEND_MODEL, ROUTER_STREAM_MODEL, TritonLink

SELECTION_HEADERS = {"selection_mode": "x-pointsman-selection-mode", "selected_model": "x-pointsman-selected-model",
                     "fallback_used": "x-pointsman-fallback-used", "task": "x-pointsman-task"}


def _headers(request_id: str, outputs: Mapping[str, Any]) -> dict[str, str]:
    headers = {"x-pointsman-request-id": request_id}
    for name, header in SELECTION_HEADERS.items():
        if outputs.get(name) is not None:
            value = outputs[name]
            headers[header] = str(value).lower() if isinstance(value, bool) else str(value)
    if outputs.get("selection_reason"):
        # header values must be latin-1; a reason is ASCII, but a model name could be anything
        headers["x-pointsman-selection-reason"] = str(outputs["selection_reason"]).encode(
            "latin-1", errors="replace").decode("latin-1")
    return headers


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise ApiError.invalid("body", f"the request body is not valid JSON: {exc}") from None


def _sse(data: Mapping[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n".encode()


class Generation:
    """One router request in flight: its first response read (so errors are still HTTP statuses).

    Its decision goes to `decisions` once, when the final response arrives or the request fails.
    """

    def __init__(self, link: TritonLink, fields: Mapping[str, Any], decisions: DecisionLog | None = None,
                 endpoint: str = "") -> None:
        self.request_id = uuid.uuid4().hex
        self.fields, self.decisions, self.endpoint = fields, decisions, endpoint
        self.arrived, self._began = time.time(), time.perf_counter()
        self.events = link.generate(ROUTER_STREAM_MODEL, fields, request_id=self.request_id)
        self.first: dict[str, Any] = {}

    async def start(self) -> Generation:
        try:
            self.first = await self.events.__anext__()  # an ApiError here is the answer's status
        except ApiError as exc:
            self.finished({}, error=exc.message)
            raise
        return self

    async def collect(self) -> tuple[str, dict[str, Any]]:
        """All the text and the final response."""
        pieces, final = [self.first.get("text_output") or ""], self.first
        try:
            async for outputs in self.events:
                pieces.append(outputs.get("text_output") or "")
                final = outputs
        except ApiError as exc:
            self.finished(final, error=exc.message)
            raise
        self.finished(final)
        return "".join(pieces), final

    def finished(self, final: Mapping[str, Any], error: str | None = None) -> None:
        """Record the decision (the first response carries it, the final one the tokens); once."""
        if self.decisions is None:
            return
        outputs = {**self.first, **{k: v for k, v in final.items() if v is not None}}
        self.decisions.add(decision_from(self.request_id, self.fields, outputs, arrived=self.arrived,
                                         latency_ms=(time.perf_counter() - self._began) * 1e3,
                                         endpoint=self.endpoint, error=error))
        self.decisions = None

    @property
    def model(self) -> str:
        return str(self.first.get("selected_model") or "")


async def _openai_stream(generation: Generation, request: openai_api.OpenAIRequest, chat: bool
                         ) -> AsyncIterator[bytes]:
    created, model = int(time.time()), generation.model
    rid = ("chatcmpl-" if chat else "cmpl-") + generation.request_id
    outputs, first = generation.first, True
    try:
        while True:
            text = outputs.get("text_output") or ""
            if text or first:
                yield _sse(openai_api.chunk_object(rid, model, created, chat, text=text, first=first))
                first = False
            if "finish_reason" in outputs:
                generation.finished(outputs)
                yield _sse(openai_api.chunk_object(rid, model, created, chat, reason=outputs["finish_reason"]))
                if request.include_usage:
                    yield _sse(openai_api.chunk_object(rid, model, created, chat, usage_of=outputs))
                break
            try:
                outputs = await generation.events.__anext__()
            except StopAsyncIteration:
                raise ApiError.unavailable("the router ended the stream without a final response") from None
    except ApiError as exc:  # too late for a status: the SDK raises on an error event
        generation.finished(outputs, error=exc.message)
        yield _sse(exc.body())
    finally:
        generation.finished(outputs, error="the client left before the end")  # no-op once recorded
        # the client may have left mid-stream: cancel the gRPC call now, so the router stops generating
        await generation.events.aclose()
    yield _sse("[DONE]")


async def _openai(app: FastAPI, request: Request, chat: bool) -> Response:
    body = await _json_body(request)
    parsed = openai_api.chat_request(body) if chat else openai_api.completion_request(body)
    try:
        generation = await Generation(app.state.link, parsed.fields, app.state.decisions,
                                      request.url.path).start()
    except ApiError as exc:
        raise _renamed(exc, parsed.names) from None
    headers = _headers(generation.request_id, generation.first)
    if parsed.stream:
        return StreamingResponse(_openai_stream(generation, parsed, chat), media_type="text/event-stream",
                                 headers=headers)
    text, final = await generation.collect()
    rid = ("chatcmpl-" if chat else "cmpl-") + generation.request_id
    return JSONResponse(openai_api.completion_object(rid, generation.model or str(final.get("selected_model")),
                                                     text, final, chat), headers={**headers, **_headers(
                                                         generation.request_id, final)})


def _renamed(exc: ApiError, names: Mapping[str, str]) -> ApiError:
    """The router named its field; the caller knows it by the OpenAI name."""
    if exc.param and exc.param in names and names[exc.param] != exc.param:
        exc.message = exc.message.replace(f"invalid '{exc.param}'", f"invalid '{names[exc.param]}'", 1)
        exc.param = names[exc.param]
    return exc


async def _catalog(app: FastAPI, model: str | None = None) -> list[dict[str, Any]]:
    outputs = await app.state.link.infer(CATALOG_MODEL, {"model": model} if model else {})
    return json.loads(outputs.get("models") or "[]")


def create_app(triton_url: str, timeout: float = 300.0, decisions: DecisionLog | None = None) -> FastAPI:
    """The gateway for the Triton whose gRPC endpoint is `triton_url` (host:port)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.link = TritonLink(triton_url, timeout)  # created in the server's event loop, as grpc.aio wants
        try:
            yield
        finally:
            await app.state.link.close()

    app = FastAPI(title="Pointsman gateway", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.decisions = decisions or DecisionLog()

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    _health_routes(app, triton_url)
    _openai_routes(app)
    _original_routes(app)
    add_console(app)
    return app


def _health_routes(app: FastAPI, triton_url: str) -> None:
    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        if await app.state.link.is_ready():
            return JSONResponse({"status": "ready", "triton": triton_url})
        raise ApiError.unavailable(f"Triton at {triton_url} is not ready")


def _openai_routes(app: FastAPI) -> None:
    @app.get("/v1/models")
    async def v1_models() -> dict[str, Any]:
        return openai_api.models_list([entry["model_name"] for entry in await _catalog(app)])

    @app.post("/v1/completions")
    async def v1_completions(request: Request) -> Response:
        return await _openai(app, request, chat=False)

    @app.post("/v1/chat/completions")
    async def v1_chat_completions(request: Request) -> Response:
        return await _openai(app, request, chat=True)


def _original_routes(app: FastAPI) -> None:
    @app.post("/inference")
    async def inference(request: Request) -> JSONResponse:
        began = time.perf_counter()
        fields = original_api.inference_fields(await _json_body(request))
        generation = await Generation(app.state.link, fields, app.state.decisions, "/inference").start()
        text, final = await generation.collect()
        answer = original_api.inference_answer(final, text, (time.perf_counter() - began) * 1e3)
        return JSONResponse(answer, headers=_headers(generation.request_id, final))

    @app.get("/models")
    async def models() -> dict[str, Any]:
        return {"models": await _catalog(app)}

    @app.get("/models/recommend")
    async def recommend_get(request: Request) -> dict[str, Any]:
        fields = original_api.recommend_fields(query=dict(request.query_params))
        return original_api.recommendation(await app.state.link.infer(RECOMMEND_MODEL, fields))

    @app.post("/models/recommend")
    async def recommend_post(request: Request) -> dict[str, Any]:
        fields = original_api.recommend_fields(await _json_body(request))
        return original_api.recommendation(await app.state.link.infer(RECOMMEND_MODEL, fields))
