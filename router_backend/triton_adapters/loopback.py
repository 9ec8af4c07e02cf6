"""A twin's way to its decoupled model: one long-lived gRPC stream to this same Triton.

    stream = LoopbackStream("127.0.0.1:8001")
    final = stream.call("gpt2_stream", {"text_input": ("BYTES", array)}, {"max_tokens": 16}, timeout=600)

Why not BLS: under sustained concurrent load, a non-decoupled Python model whose worker
threads ran BLS `exec(decoupled=True)` crashed its stub in Triton 2.51 (heap corruption
in numpy's object-array code; docs/twins.md). Over gRPC the twin's stub touches no BLS
memory: a request is a protobuf on a stream that stays open, and Triton answers each
request on it with the request's id, errors included, so many requests share one stream.
Each request asks for Triton's empty final response, so the end of a request is known
whatever the target's outputs.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from pointsman.errors import ModelUnavailable
from pointsman.grpc_request import request_proto

UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
FINAL_FLAG = "triton_final_response"
ASK_FOR_FINAL = "triton_enable_empty_final_response"


class TargetError(Exception):
    """The target model's own error message, passed on to the twin's caller as it is."""


def loopback_request(model: str, request_id: str, arrays: Mapping[str, tuple[str, np.ndarray]],
                     parameters: Mapping[str, Any]):
    """The caller's request, asking for Triton's empty final response (its end, whatever its outputs)."""
    return request_proto(model, request_id, arrays, {**parameters, ASK_FOR_FINAL: True})


class LoopbackStream:
    """One ModelStreamInfer call, opened on first use and again after it fails; thread-safe."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._outbox: queue.SimpleQueue | None = None
        self._waiters: dict[str, queue.SimpleQueue] = {}
        self._channel = None

    def call(self, model: str, arrays: Mapping[str, tuple[str, np.ndarray]], parameters: Mapping[str, Any],
             timeout: float, request_id: str = "") -> dict[str, np.ndarray] | None:
        """Send one request; the outputs of its last response that had any (None if none had).

        The caller's `request_id` travels on (the router reports it), unless a request with
        the same id is already in flight here: then the request gets an id of its own, a
        random one, since replicas sharing a database key records and feedback by it.
        """
        from tritonclient.grpc import InferResult

        box: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            if not request_id or request_id in self._waiters:
                request_id = uuid.uuid4().hex
            self._waiters[request_id] = box
        try:
            self._open().put(loopback_request(model, request_id, arrays, parameters))
            last = None
            while True:
                try:
                    item = box.get(timeout=timeout)
                except queue.Empty:
                    raise ModelUnavailable(f"no answer from '{model}' in {timeout:.0f}s") from None
                if isinstance(item, Exception):
                    raise item
                if item.error_message:
                    raise TargetError(item.error_message)
                response = item.infer_response
                if response.outputs:
                    result = InferResult(response)
                    last = {out.name: result.as_numpy(out.name) for out in response.outputs}
                if response.parameters[FINAL_FLAG].bool_param:
                    return last
        finally:
            self._waiters.pop(request_id, None)

    def close(self) -> None:
        with self._lock:
            if self._outbox is not None:
                self._outbox.put(None)
            if self._channel is not None:
                self._channel.close()

    def _open(self) -> queue.SimpleQueue:
        with self._lock:
            if self._outbox is not None:
                return self._outbox
            import grpc
            from tritonclient.grpc import service_pb2_grpc

            if self._channel is None:
                self._channel = grpc.insecure_channel(self.url, options=UNLIMITED)
            outbox: queue.SimpleQueue = queue.SimpleQueue()
            responses = service_pb2_grpc.GRPCInferenceServiceStub(self._channel).ModelStreamInfer(_drain(outbox))
            threading.Thread(target=self._read, args=(responses, outbox), daemon=True,
                             name="twin-loopback-reader").start()
            self._outbox = outbox
            return outbox

    def _read(self, responses, outbox: queue.SimpleQueue) -> None:
        failure: Exception = ModelUnavailable(f"Triton at {self.url} closed the stream")
        try:
            for response in responses:
                waiter = self._waiters.get(response.infer_response.id)
                if waiter is not None:
                    waiter.put(response)
        except Exception as exc:  # noqa: BLE001 - a broken stream fails its requests; the next one reopens it
            details = getattr(exc, "details", None)
            reason = details() if callable(details) else exc
            failure = ModelUnavailable(f"Triton at {self.url} is unreachable: {reason}")
        finally:
            with self._lock:
                if self._outbox is outbox:
                    self._outbox = None
                    # a new channel, not this one: after a failed connect gRPC waits before it tries
                    # again, and fails every call at once until then (a probe sent while Triton is
                    # still starting would keep the twin's first requests from reaching it)
                    if self._channel is not None:
                        self._channel.close()
                        self._channel = None
            for waiter in list(self._waiters.values()):
                waiter.put(failure)


def _drain(outbox: queue.SimpleQueue) -> Iterator:
    while (item := outbox.get()) is not None:
        yield item
