"""asyncio client for Pointsman: tritonclient.grpc.aio, or aiohttp + tritonclient.http.aio.

    async with AsyncPointsmanClient("127.0.0.1:8001", protocol="grpc") as client:
        response = await client.generate("def add(a, b):", prefer="codegen")
        async for piece in client.stream("Once upon a time", auto=True):
            print(piece, end="")

Same requests, results and errors as PointsmanClient; many requests may run at once.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import Any

from typing_extensions import Unpack

from pointsman.client.request import (
    CATALOG_MODEL,
    DEFAULT_TIMEOUT_S,
    DEFAULT_URLS,
    PROTOCOLS,
    RECOMMEND_MODEL,
    ROUTER_MODEL,
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
from pointsman.client.wire import (
    checked_body,
    http_error_message,
    is_missing_model,
    outputs_of,
    split_url,
    transport_error,
)
from pointsman.policy.contract import stream_model


class _AioHttpTransport:
    def __init__(self, url: str, timeout: float) -> None:
        import tritonclient.http.aio as httpclient

        scheme, address = split_url(url, "http")
        self.where = f"{scheme}://{address}"
        self.timeout = timeout
        self._module = httpclient
        self.triton = httpclient.InferenceServerClient(address, ssl=scheme == "https", conn_timeout=timeout)
        self._session = None
        self._specs: dict[str, dict[str, InputSpec]] = {}

    def _http(self):
        import aiohttp

        if self._session is None:  # created inside the running loop, as aiohttp wants
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def events(self, model: str, fields: Mapping[str, Any], stream: bool) -> AsyncIterator[dict[str, Any]]:
        import aiohttp

        endpoint = "generate_stream" if stream else "generate"
        url = f"{self.where}/v2/models/{urllib.parse.quote(model)}/{endpoint}"
        try:
            async with self._http().post(url, json=dict(fields)) as response:
                if response.status >= 400:
                    raise PointsmanClientError(http_error_message(await response.read(), response.reason or ""),
                                                model=model, status=response.status)
                if not stream:
                    yield checked_body(json.loads(await response.read() or b"{}"), model)
                    return
                async for raw in response.content:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if line.startswith("data:"):
                        yield checked_body(json.loads(line[len("data:"):]), model)
        except PointsmanClientError:
            raise
        except (aiohttp.ClientError, OSError, ValueError, asyncio.TimeoutError) as exc:
            raise transport_error(exc, model=model, where=self.where) from None

    async def infer(self, model: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        try:
            if model not in self._specs:
                self._specs[model] = input_specs(await self.triton.get_model_metadata(model))
            inputs, parameters = build_inputs(self._module.InferInput, self._specs[model], fields)
            result = await self.triton.infer(model, inputs, parameters=parameters or None)
            return outputs_of(result, [o["name"] for o in result.get_response()["outputs"]])
        except Exception as exc:  # noqa: BLE001 - every failure leaves as one exception type
            raise transport_error(exc, model=model, where=self.where) from None

    async def repository(self) -> tuple[list[dict], dict[str, dict]]:
        try:
            index = await self.triton.get_model_repository_index()
            stats = (await self.triton.get_inference_statistics()).get("model_stats", [])
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=None, where=self.where) from None
        return index, {s["name"]: s for s in stats}

    async def is_ready(self) -> bool:
        try:
            return bool(await self.triton.is_server_ready())
        except Exception:  # noqa: BLE001 - not ready is the answer
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.triton.close()


class _AioGrpcTransport:
    """One bidirectional stream per generation: it ends when the request's last response is sent."""

    def __init__(self, url: str, timeout: float) -> None:
        import tritonclient.grpc as grpcclient
        import tritonclient.grpc.aio as aioclient

        scheme, address = split_url(url, "grpc")
        self.where = f"grpc://{address}"
        self.timeout = timeout
        self._infer_input = grpcclient.InferInput
        self.triton = aioclient.InferenceServerClient(address, ssl=scheme == "https")
        self._specs: dict[str, dict[str, InputSpec]] = {}

    async def _input_specs(self, model: str) -> dict[str, InputSpec]:
        if model not in self._specs:
            metadata = await self.triton.get_model_metadata(model, as_json=True, client_timeout=self.timeout)
            self._specs[model] = input_specs(metadata)
        return self._specs[model]

    async def events(self, model: str, fields: Mapping[str, Any], stream: bool) -> AsyncIterator[dict[str, Any]]:
        if not stream:  # one answer: unary ModelInfer on the non-decoupled model
            yield await self.infer(model, fields)
            return
        try:
            inputs, parameters = build_inputs(self._infer_input, await self._input_specs(model), fields)

            async def one_request():
                yield {"model_name": model, "inputs": inputs, "parameters": parameters or None}

            responses = self.triton.stream_infer(one_request(), stream_timeout=self.timeout)
            try:
                async for result, error in responses:
                    if error is not None:
                        raise transport_error(error, model=model, where=self.where)
                    outputs = result.get_response().outputs
                    if outputs:
                        yield outputs_of(result, [o.name for o in outputs])
            finally:
                responses.cancel()  # no-op once the stream ended; cancels the request if left early
        except PointsmanClientError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=model, where=self.where) from None

    async def infer(self, model: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        try:
            inputs, parameters = build_inputs(self._infer_input, await self._input_specs(model), fields)
            result = await self.triton.infer(model, inputs, parameters=parameters or None,
                                             client_timeout=self.timeout)
            return outputs_of(result, [o.name for o in result.get_response().outputs])
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=model, where=self.where) from None

    async def repository(self) -> tuple[list[dict], dict[str, dict]]:
        try:
            index = (await self.triton.get_model_repository_index(as_json=True)).get("models", [])
            stats = (await self.triton.get_inference_statistics(as_json=True)).get("model_stats", [])
        except Exception as exc:  # noqa: BLE001
            raise transport_error(exc, model=None, where=self.where) from None
        return index, {s["name"]: s for s in stats}

    async def is_ready(self) -> bool:
        try:
            return bool(await self.triton.is_server_ready(client_timeout=self.timeout))
        except Exception:  # noqa: BLE001
            return False

    async def close(self) -> None:
        await self.triton.close()


class AsyncGenerationStream:
    """The text of one generation as it arrives; `response` once it has all arrived."""

    def __init__(self, events: AsyncIterator[dict[str, Any]], target: str) -> None:
        self._events = events
        self._assembler = ResponseAssembler(target)
        self._response: GenerationResponse | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        start, first = time.perf_counter(), None
        async for outputs in self._events:
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

    async def aclose(self) -> None:
        await self._events.aclose()


class AsyncPointsmanClient:
    """The asyncio twin of PointsmanClient (same arguments, same results)."""

    def __init__(self, url: str | None = None, protocol: str = "http", *, router: str = ROUTER_MODEL,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
        self.protocol = protocol
        self.router = router
        transport = _AioHttpTransport if protocol == "http" else _AioGrpcTransport
        self._transport = transport(url or DEFAULT_URLS[protocol], timeout)

    async def generate(self, prompt: str | GenerateRequest, **options: Unpack[GenerateOptions]) -> GenerationResponse:
        stream = self._open(as_request(prompt, options), stream=False)
        async for _ in stream:
            pass
        return stream.response

    def stream(self, prompt: str | GenerateRequest, **options: Unpack[GenerateOptions]) -> AsyncGenerationStream:
        return self._open(as_request(prompt, options), stream=True)

    def _open(self, request: GenerateRequest, *, stream: bool) -> AsyncGenerationStream:
        # streaming goes to the decoupled twin (router_stream, gpt2_stream); one answer to the plain name
        target = stream_model(request.target(self.router)) if stream else request.target(self.router)
        return AsyncGenerationStream(self._transport.events(target, request.fields(stream=stream), stream), target)

    async def recommend(self, prompt: str, *, max_tokens: int | None = None, max_response_time: float | None = None,
                        min_quality: float | None = None, prefer_speed: bool = False) -> Recommendation:
        fields = recommend_fields(prompt, max_tokens=max_tokens, max_response_time=max_response_time,
                                  min_quality=min_quality, prefer_speed=prefer_speed)
        return Recommendation.from_outputs(await self._transport.infer(RECOMMEND_MODEL, fields))

    async def models(self, name: str | None = None) -> list[ModelInfo]:
        fields = {"model": name} if name else {}
        try:
            return parse_catalog((await self._transport.infer(CATALOG_MODEL, fields)).get("models"))
        except PointsmanClientError as exc:
            if not is_missing_model(exc, CATALOG_MODEL):
                raise
        index, stats = await self._transport.repository()
        return [ModelInfo.from_repository(entry, stats.get(entry["name"]))
                for entry in index if name is None or entry.get("name") == name]

    async def is_ready(self) -> bool:
        return await self._transport.is_ready()

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncPointsmanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
