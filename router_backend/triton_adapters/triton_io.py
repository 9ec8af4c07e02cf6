"""Shared Triton plumbing for the adapters: read a request, map errors, send responses.

    fields = request_fields(request, ["text_input", "max_tokens"])
    send_error(sender, exc)

With bls, classifier_bls, engine_io, twin, status_gauges and router_metrics, one of the modules that
import triton_python_backend_utils (besides the model.py files).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.errors import DeadlineExceeded, Forbidden, InvalidRequest, ModelUnavailable, Overloaded, PointsmanError
from pointsman.policy.admin import ADMIN_HEADER, ADMIN_PARAMETER
from pointsman.policy.contract import TensorSpec
from pointsman.triton_adapters.model_config import OUTPUT_TYPES

LOGGER = logging.getLogger(__name__)
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _scalar(array: np.ndarray) -> Any:
    value = array.reshape(-1)[0] if array.size else None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value.item() if isinstance(value, np.generic) else value


def _values(array: np.ndarray) -> list[Any]:
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else
            (v.item() if isinstance(v, np.generic) else v) for v in array.reshape(-1)]


def request_parameters(request) -> dict[str, Any]:
    """The request's parameters (unknown JSON keys and forwarded headers land there), decoded."""
    raw = request.parameters()
    if not raw:
        return {}
    return dict(json.loads(raw) if isinstance(raw, str) else raw)


def _is_admin_key(name: str) -> bool:
    # a forwarded header keeps the client's spelling (Pointsman-Admin-Key); HTTP ignores case
    return name.lower() in (ADMIN_HEADER, ADMIN_PARAMETER)


def admin_key_of(request) -> str | None:
    """The admin key the caller sent: a forwarded header (infer, gRPC) or a body field (generate).

    Triton 2.51 forwards headers to models on /infer and gRPC, not on the generate
    endpoints: there the key travels as the `admin_key` JSON field.
    """
    values = [value for name, value in request_parameters(request).items() if _is_admin_key(name)]
    return str(values[0]) if values else None


def request_fields(request, inputs: Iterable[str | TensorSpec]) -> dict[str, Any]:
    """Inputs present as tensors plus request parameters (unknown JSON keys land there).

    A tensor declared with dims [-1] (a TensorSpec) is read as a list, any other as a scalar.
    The admin key is not a field: admin_key_of reads it.
    """
    fields = {name: value for name, value in request_parameters(request).items() if not _is_admin_key(name)}
    for item in inputs:
        name, listed = (item.name, -1 in item.dims) if isinstance(item, TensorSpec) else (item, False)
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is not None:
            fields[name] = _values(tensor.as_numpy()) if listed else _scalar(tensor.as_numpy())
    return fields


def model_parameters(model_config: Mapping[str, Any]) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}


def require_decoupled(model_config: Mapping[str, Any], name: str) -> None:
    if not model_config.get("model_transaction_policy", {}).get("decoupled"):
        raise pb_utils.TritonModelException(
            f"{name} must be decoupled (model_transaction_policy {{ decoupled: true }})")


def to_triton_error(exc: BaseException) -> pb_utils.TritonError:
    """The one mapping from package errors to Triton errors; messages stay short."""
    codes = pb_utils.TritonError
    # Forbidden: a Python model cannot answer 403 through Triton 2.51; INVALID_ARG (400) says
    # "your request", where UNAVAILABLE (503 on /infer) would invite a retry
    if isinstance(exc, (InvalidRequest, Forbidden)):
        code = codes.INVALID_ARG
    elif isinstance(exc, (ModelUnavailable, Overloaded, DeadlineExceeded)):
        # a server fault that clears: UNAVAILABLE is gRPC's "retry" (HTTP /infer: 503)
        code = codes.UNAVAILABLE
    elif isinstance(exc, PointsmanError):
        code = codes.INTERNAL
    else:
        LOGGER.exception("unexpected error", exc_info=exc)
        return pb_utils.TritonError(f"internal error: {type(exc).__name__}", codes.INTERNAL)
    return pb_utils.TritonError(str(exc), code)


def error_response(exc: BaseException) -> pb_utils.InferenceResponse:
    """A response carrying the mapped error; non-decoupled models return it from execute."""
    return pb_utils.InferenceResponse(error=to_triton_error(exc))


def send_error(sender, exc: BaseException) -> None:
    sender.send(error_response(exc), flags=FINAL)


def check_known_fields(fields: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Reject a field the model does not take (a misspelling must not pass silently)."""
    accepted = list(accepted)
    for name in fields:
        if name not in accepted:
            raise InvalidRequest(name, f"unknown field; accepted fields: {', '.join(accepted)}")


def tensor(name: str, value: Any, dtype=None) -> pb_utils.Tensor:
    if isinstance(value, str):
        return pb_utils.Tensor(name, np.array([value.encode("utf-8")], dtype=np.object_))
    return pb_utils.Tensor(name, np.array([value], dtype=dtype))


def response(**outputs: Any) -> pb_utils.InferenceResponse:
    """A response from keyword outputs, typed as the contract declares them.

    Outputs the contract does not declare (the control models') are typed from the value:
    str -> BYTES, bool -> BOOL, int -> INT32, float -> FP32.
    """
    tensors = []
    for name, value in outputs.items():
        declared = OUTPUT_TYPES.get(name)
        if declared is not None:
            tensors.append(tensor(name, value, None if declared is np.object_ else declared))
        elif isinstance(value, bool):
            tensors.append(tensor(name, value, np.bool_))
        elif isinstance(value, int):
            tensors.append(tensor(name, value, np.int32))
        elif isinstance(value, float):
            tensors.append(tensor(name, value, np.float32))
        else:
            tensors.append(tensor(name, value))
    return pb_utils.InferenceResponse(output_tensors=tensors)
