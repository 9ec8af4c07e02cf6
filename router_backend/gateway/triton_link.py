"""The gateway's one long-lived connection to Triton: tritonclient's asyncio gRPC client.

    link = TritonLink("127.0.0.1:8001")
    async for outputs in link.stream(ROUTER_STREAM_MODEL, {"text_input": "Hi", "stream": True}):
        ...
    await link.close()

Tensor types come from the contract (pointsman.policy.contract), not from a metadata
round trip per request: the gateway has already validated the fields against it.
Failures leave as ApiError (errors.py), so the app has one thing to catch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np

from pointsman.gateway.errors import ApiError, from_triton_message
from pointsman.gateway.shared_stream import SharedStream
from pointsman.policy.contract import RecommendParams, RouterParams, aliases, input_tensors, stream_model

# the decoupled router: the gateway streams from it, and its twin `router` would add a gRPC hop
ROUTER_STREAM_MODEL = stream_model("router")
RECOMMEND_MODEL = "recommend"
CATALOG_MODEL = "catalog"

_TRITON_TYPES = {"TYPE_STRING": ("BYTES", np.object_), "TYPE_BOOL": ("BOOL", np.bool_),
                 "TYPE_INT32": ("INT32", np.int32), "TYPE_INT64": ("INT64", np.int64),
                 "TYPE_UINT64": ("UINT64", np.uint64), "TYPE_FP32": ("FP32", np.float32),
                 "TYPE_FP64": ("FP64", np.float64)}
_INPUT_TYPES = {
    ROUTER_STREAM_MODEL: {spec.name: spec.data_type for spec in input_tensors(RouterParams)},
    RECOMMEND_MODEL: {spec.name: spec.data_type for spec in input_tensors(RecommendParams)},
    CATALOG_MODEL: {"model": "TYPE_STRING"},
}
_ALIASES = {**aliases(RouterParams), **aliases(RecommendParams)}  # prompt -> text_input, max_length -> max_tokens


def typed_arrays(model: str, fields: Mapping[str, Any]) -> dict[str, tuple[str, np.ndarray]]:
    """Validated fields -> name: (Triton datatype, array), typed as the contract declares them.

    Aliases become canonical names; a list becomes a 1-D tensor; None is left out.
    """
    types = _INPUT_TYPES[model]
    arrays = {}
    for given, value in fields.items():
        if value is None:
            continue
        name = _ALIASES.get(given, given)
        triton_type, dtype = _TRITON_TYPES[types[name]]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if dtype is np.object_:
            arrays[name] = (triton_type, np.array([str(v).encode("utf-8") for v in values], dtype=np.object_))
        else:
            arrays[name] = (triton_type, np.array(values, dtype=dtype))
    return arrays


def build_inputs(model: str, fields: Mapping[str, Any]) -> list:
    """Validated fields -> tritonclient InferInputs (see typed_arrays)."""
    import tritonclient.grpc as grpcclient

    inputs = []
    for name, (triton_type, array) in typed_arrays(model, fields).items():
        tensor = grpcclient.InferInput(name, list(array.shape), triton_type)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def outputs_of(result) -> dict[str, Any]:
    """An InferResult's outputs as plain Python values (first element, bytes decoded)."""
    out: dict[str, Any] = {}
    for tensor in result.get_response().outputs:
        array = result.as_numpy(tensor.name)
        value = array.reshape(-1)[0] if array is not None and array.size else None
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        out[tensor.name] = value.item() if isinstance(value, np.generic) else value
    return out


def _error(exc: BaseException, where: str) -> ApiError:
    # tritonclient's InferenceServerException has message()/status(), grpc's AioRpcError details()/code()
    message_of = getattr(exc, "message", None) or getattr(exc, "details", None)
    message = (message_of() if callable(message_of) else None) or str(exc)
    status_of = getattr(exc, "status", None) or getattr(exc, "code", None)
    status = str(status_of() if callable(status_of) else "")
    if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status:
        return ApiError.unavailable(f"Triton at {where} is unreachable: {message}")
    return from_triton_message(message)


class TritonLink:
    """The gateway's connection to Triton: tritonclient's asyncio client, and one shared stream.

    A streamed answer gets a gRPC call of its own (cancelled when its client leaves); every
    other generation rides the long-lived SharedStream.
    """

    def __init__(self, url: str, timeout: float = 300.0) -> None:
        import tritonclient.grpc.aio as aioclient

        self.url = url
        self.timeout = timeout
        self._client = aioclient.InferenceServerClient(url)
        self._shared = SharedStream(url)

    def generate(self, model: str, fields: Mapping[str, Any], request_id: str) -> AsyncIterator[dict[str, Any]]:
        """A generation's responses: on its own call when streamed, else on the shared stream."""
        if fields.get("stream"):
            return self.stream(model, fields, request_id)
        return self._shared.request(model, typed_arrays(model, fields), request_id, self.timeout)

    async def stream(self, model: str, fields: Mapping[str, Any], request_id: str = ""
                     ) -> AsyncIterator[dict[str, Any]]:
        """One request on a bidirectional stream: each response's outputs, until the final one.

        `request_id` becomes Triton's request id, which the router reports and records.
        """
        inputs = build_inputs(model, fields)

        async def one_request():
            yield {"model_name": model, "inputs": inputs, "request_id": request_id}

        try:
            responses = self._client.stream_infer(one_request(), stream_timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - every transport failure becomes an ApiError
            raise _error(exc, self.url) from None
        try:
            async for result, error in responses:
                if error is not None:
                    raise _error(error, self.url)
                if result.get_response().outputs:
                    outputs = outputs_of(result)
                    yield outputs
                    if "finish_reason" in outputs:  # the router's last response: no need to wait for the close
                        return
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, self.url) from None
        finally:
            responses.cancel()  # no-op once the stream ended; cancels the request if the caller left

    async def infer(self, model: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A unary call to a non-decoupled model (catalog, recommend)."""
        try:
            result = await self._client.infer(model, build_inputs(model, fields), client_timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, self.url) from None
        return outputs_of(result)

    async def is_ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready(client_timeout=5))
        except Exception:  # noqa: BLE001 - not ready is the answer
            return False

    async def close(self) -> None:
        await self._shared.close()
        await self._client.close()
