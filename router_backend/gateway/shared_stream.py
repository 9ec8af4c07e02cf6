"""Every unstreamed gateway request on one long-lived bidirectional gRPC stream to Triton.

    shared = SharedStream("127.0.0.1:8001")
    async for outputs in shared.request("router", fields, request_id="a1b2"):
        ...

Why: opening a gRPC call costs the gateway about as much CPU as all its HTTP work
(grpc.aio's call setup, write, half-close and cancel: ~0.5 ms of ~1.3 ms per request,
measured with bench_gateway). One stream that stays open carries many requests at once.
Triton answers each request on it with the request's id, errors included, so the
responses are sorted by id. tritonclient's asyncio client drops the id of an error
response, so this module speaks Triton's protocol through tritonclient's own generated
stub and protos (tritonclient.grpc.service_pb2*), and decodes outputs with its InferResult.
A request on a shared stream cannot be cancelled alone: streamed answers keep their own
call (TritonLink.stream), so a client that leaves mid-stream stops the generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pointsman.gateway.errors import ApiError, from_triton_message
from pointsman.grpc_request import request_proto

LOGGER = logging.getLogger(__name__)
UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


class SharedStream:
    """One ModelStreamInfer call, opened on first use and again after it fails."""

    def __init__(self, url: str) -> None:
        import grpc
        from tritonclient.grpc import service_pb2_grpc

        self.url = url
        self._channel = grpc.aio.insecure_channel(url, options=UNLIMITED)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._outbox: asyncio.Queue | None = None
        self._reader: asyncio.Task | None = None
        self._waiters: dict[str, asyncio.Queue] = {}

    def _open(self) -> asyncio.Queue:
        if self._reader is not None and not self._reader.done() and self._outbox is not None:
            return self._outbox
        outbox: asyncio.Queue = asyncio.Queue()

        async def requests():
            while (item := await outbox.get()) is not None:
                yield item

        self._outbox = outbox
        self._reader = asyncio.create_task(self._read(self._stub.ModelStreamInfer(requests()), outbox))
        return outbox

    async def _read(self, call, outbox: asyncio.Queue) -> None:
        failure: ApiError = ApiError.unavailable(f"Triton at {self.url} closed the stream")
        try:
            async for response in call:
                waiter = self._waiters.get(response.infer_response.id)
                if waiter is not None:
                    waiter.put_nowait(response)
        except asyncio.CancelledError:
            failure = ApiError.unavailable("the gateway is shutting down")
            raise
        except Exception as exc:  # noqa: BLE001 - a broken stream fails its requests, the next one reopens it
            details = getattr(exc, "details", None)
            failure = ApiError.unavailable(f"Triton at {self.url} is unreachable: "
                                           f"{details() if callable(details) else exc}")
        finally:
            if self._outbox is outbox:
                self._outbox = None
            for waiter in list(self._waiters.values()):
                waiter.put_nowait(failure)

    async def request(self, model: str, arrays: Mapping[str, tuple[str, Any]], request_id: str,
                      timeout: float) -> AsyncIterator[dict[str, Any]]:
        """Send one request; each response's outputs until the router's final one."""
        from tritonclient.grpc import InferResult

        from pointsman.gateway.triton_link import outputs_of

        box: asyncio.Queue = asyncio.Queue()
        self._waiters[request_id] = box
        try:
            self._open().put_nowait(request_proto(model, request_id, arrays))
            while True:
                try:
                    item = await asyncio.wait_for(box.get(), timeout)
                except asyncio.TimeoutError:
                    raise ApiError.unavailable(f"no answer from Triton at {self.url} in {timeout:.0f}s") from None
                if isinstance(item, ApiError):
                    raise item
                if item.error_message:
                    raise from_triton_message(item.error_message)
                outputs = outputs_of(InferResult(item.infer_response))
                if outputs:
                    yield outputs
                    if "finish_reason" in outputs:
                        return
        finally:
            self._waiters.pop(request_id, None)

    async def close(self) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(None)
        if self._reader is not None:
            self._reader.cancel()
        await self._channel.close()
