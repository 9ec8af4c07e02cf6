"""A non-decoupled twin: forwards each request over BLS to its decoupled model and answers once.

    twin = Twin("router_stream", input_tensors(RouterParams), ROUTER_OUTPUTS, workers=64)
    twin.execute(requests)   # returns None; answers go out through each request's response sender

Triton 2.51 refuses decoupled models on HTTP /infer and unary gRPC ModelInfer. The twin
makes `router` and `gpt2` callable by every client while the decoupled `router_stream` and
`gpt2_stream` keep the one engine, usage writer, experiments and metrics: the twin holds
no state of its own. Requests run on worker threads and answer through the response
sender (python_backend allows this for non-decoupled models since 24.0x: exactly one
final response per request), so concurrent requests are forwarded concurrently, not one
at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.errors import InvalidRequest, ModelUnavailable
from pointsman.policy.contract import TensorSpec
from pointsman.triton_adapters.triton_io import FINAL, request_parameters, send_error

LOGGER = logging.getLogger(__name__)


class Twin:
    """Forwards to `target` with the caller's tensors and parameters; copies the one final answer back."""

    def __init__(self, own_name: str, target: str, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec],
                 workers: int) -> None:
        self.own_name = own_name
        self.target = target
        self._inputs = [spec.name for spec in inputs]
        self._outputs = [spec.name for spec in outputs]
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{own_name}-twin")

    def execute(self, requests: list) -> None:
        # everything read from a request is copied here, before execute returns: a
        # non-decoupled model's requests are released when it does, and a worker thread
        # reading one afterwards corrupted the stub's heap under load
        for request in requests:
            sender = request.get_response_sender()
            try:
                call = self._copy(request)
            except Exception as exc:  # noqa: BLE001 - the caller gets an error, never silence
                send_error(sender, exc)
                continue
            self._pool.submit(self._forward, sender, call)
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _copy(self, request) -> tuple[dict[str, np.ndarray], dict]:
        """The request's tensors (as numpy copies) and parameters, checked for a streaming ask."""
        arrays = {}
        for name in self._inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                arrays[name] = np.array(tensor.as_numpy(), copy=True)
        stream = arrays.get("stream")
        if stream is not None and bool(stream.reshape(-1)[0]):
            raise InvalidRequest("stream", f"must be false on '{self.own_name}', which answers once; "
                                           f"stream from '{self.target}' (generate_stream or gRPC streaming)")
        return arrays, _parameters(request)

    def _forward(self, sender, call: tuple[dict[str, np.ndarray], dict]) -> None:
        try:
            sender.send(self._answer(*call), flags=FINAL)
        except Exception as exc:  # noqa: BLE001 - the caller gets an error, never silence
            send_error(sender, exc)

    def _answer(self, arrays: dict[str, np.ndarray], parameters: dict):
        forwarded = pb_utils.InferenceRequest(
            model_name=self.target, inputs=[pb_utils.Tensor(name, value) for name, value in arrays.items()],
            requested_output_names=self._outputs,
            parameters=parameters,  # unknown JSON keys travel here: the target names them
        )
        try:
            responses = forwarded.exec(decoupled=True)
        except pb_utils.TritonModelException as exc:  # e.g. the target is unloaded
            raise ModelUnavailable(f"model '{self.target}' behind '{self.own_name}' is unavailable: {exc}") from None
        final = None
        for response in responses:
            if response.has_error():
                # the target's own message ("invalid 'max_tokens': ..."): Triton 2.51 keeps no code through BLS
                return pb_utils.InferenceResponse(error=pb_utils.TritonError(response.error().message()))
            if response.output_tensors():
                final = response
        if final is None:
            raise ModelUnavailable(f"model '{self.target}' ended without an answer")
        # fresh tensors: nothing of the BLS response outlives it
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(t.name(), np.array(t.as_numpy(), copy=True)) for t in final.output_tensors()])


def _parameters(request) -> dict:
    """The caller's request parameters as BLS takes them (str, int and bool values; others as JSON text)."""
    return {k: v if isinstance(v, str | int | bool) else json.dumps(v) for k, v in request_parameters(request).items()}
