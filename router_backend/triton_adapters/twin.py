"""A non-decoupled twin: forwards each request to its decoupled model and answers once.

    twin = Twin("router", "router_stream", input_tensors(RouterParams), ROUTER_OUTPUTS, workers=64)
    twin.execute(requests)   # returns None; answers go out through each request's response sender

Triton 2.51 refuses decoupled models on HTTP /infer and unary gRPC ModelInfer. The twin
makes `router` and `gpt2` callable by every client while the decoupled `router_stream` and
`gpt2_stream` keep the one engine, usage writer, experiments and metrics: the twin holds
no state of its own. Requests run on worker threads and answer through the response
sender (python_backend allows this for non-decoupled models since 24.0x: exactly one
final response per request), so concurrent requests are forwarded concurrently, not one
at a time. The forwarding goes over gRPC to this same server (loopback.py), not BLS:
BLS from a non-decoupled model's threads crashed its stub under load in Triton 2.51.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.errors import InvalidRequest, ModelUnavailable
from pointsman.policy.contract import ROUTER_PROBE, TensorSpec
from pointsman.policy.selection.live import endpoints_from_env
from pointsman.triton_adapters.loopback import LoopbackStream, TargetError
from pointsman.triton_adapters.triton_io import FINAL, request_parameters, send_error

LOGGER = logging.getLogger(__name__)
TARGET_UNAVAILABLE = re.compile(r"unknown model|is not found|is not ready|is not healthy|unavailable", re.IGNORECASE)
TRITON_DATATYPES = {"TYPE_STRING": "BYTES", "TYPE_BOOL": "BOOL", "TYPE_INT32": "INT32", "TYPE_INT64": "INT64",
                    "TYPE_UINT64": "UINT64", "TYPE_FP32": "FP32", "TYPE_FP64": "FP64"}


@dataclass(frozen=True)
class ForwardedCall:
    """What a twin keeps of a request: its tensors (with Triton datatypes), parameters and id."""

    arrays: dict[str, tuple[str, np.ndarray]]
    parameters: dict
    request_id: str


class Twin:
    """Forwards to `target` with the caller's tensors and parameters; copies the one final answer back."""

    timeout_s = 600.0  # a generation that long is a fault, not a wait
    probe_timeout_s = 10.0  # TwinWatch's own bound: a probe unanswered that long is only logged

    def __init__(self, own_name: str, target: str, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec],
                 workers: int, grpc_url: str | None = None) -> None:
        self.own_name = own_name
        self.target = target
        self._types = {spec.name: TRITON_DATATYPES[spec.data_type] for spec in inputs}
        self._inputs = list(self._types)
        self._outputs = [spec.name for spec in outputs]
        # $POINTSMAN_GRPC_URL (set by `pointsman serve`), else Triton's default port
        self._link = LoopbackStream(grpc_url or endpoints_from_env().grpc_url)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{own_name}-twin")

    def execute(self, requests: list) -> None:
        # everything read from a request is copied here, before execute returns: a
        # non-decoupled model's requests are released when it does
        for request in requests:
            sender = request.get_response_sender()
            try:
                call = self._copy(request)
            except Exception as exc:  # noqa: BLE001 - the caller gets an error, never silence
                send_error(sender, exc)
                continue
            self._pool.submit(self._forward, sender, call)
        return None

    def probe(self, model: str) -> str | None:
        """Ask `model` whether its stub lives (policy.contract.ROUTER_PROBE): its error, or None.

        For TwinWatch: Triton's "Stub process '...' is not healthy" marks the model for reload.
        """
        try:
            self._link.call(model, {}, {ROUTER_PROBE: True}, self.probe_timeout_s)
        except (TargetError, ModelUnavailable) as exc:
            return str(exc)
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._link.close()

    def _copy(self, request) -> ForwardedCall:
        """The request's tensors (as numpy copies), parameters and id, checked for a streaming ask."""
        arrays = {}
        for name in self._inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                arrays[name] = (self._types[name], np.array(tensor.as_numpy(), copy=True))
        stream = arrays.get("stream")
        if stream is not None and bool(stream[1].reshape(-1)[0]):
            raise InvalidRequest("stream", f"must be false on '{self.own_name}', which answers once; "
                                           f"stream from '{self.target}' (generate_stream or gRPC streaming)")
        return ForwardedCall(arrays, _parameters(request), request.request_id())

    def _forward(self, sender, call: ForwardedCall) -> None:
        try:
            sender.send(self._answer(call), flags=FINAL)
        except Exception as exc:  # noqa: BLE001 - the caller gets an error, never silence
            send_error(sender, exc)

    def _answer(self, call: ForwardedCall):
        try:
            outputs = self._link.call(self.target, call.arrays, call.parameters, self.timeout_s, call.request_id)
        except TargetError as exc:
            if TARGET_UNAVAILABLE.search(str(exc)):  # Triton's own words for a model it cannot run now
                raise ModelUnavailable(f"model '{self.target}' behind '{self.own_name}' is unavailable: "
                                       f"{exc}") from None
            # the target's own message ("invalid 'max_tokens': ..."); the stream carries no code
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        except ModelUnavailable as exc:
            raise ModelUnavailable(f"model '{self.target}' behind '{self.own_name}' is unavailable: {exc}") from None
        if not outputs:
            raise ModelUnavailable(f"model '{self.target}' ended without an answer")
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(name, outputs[name]) for name in self._outputs if outputs.get(name) is not None])

def _parameters(request) -> dict:
    """The caller's request parameters as a request takes them (str, int, float, bool; others as JSON text)."""
    return {k: v if isinstance(v, str | int | float | bool) else json.dumps(v)
            for k, v in request_parameters(request).items()}
