"""One request of Triton's gRPC protocol, built from arrays: the gateway's shared stream and the twins' loopback.

    request = request_proto("router_stream", "r1", {"text_input": ("BYTES", array)}, {"model": "gpt2"})

Raw input contents (no per-element protobuf fields) and typed request parameters, through
tritonclient's own generated protos.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def request_proto(model: str, request_id: str, arrays: Mapping[str, tuple[str, np.ndarray]],
                  parameters: Mapping[str, Any] | None = None):
    """A ModelInferRequest: each array with its Triton datatype as raw contents, parameters typed."""
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import serialize_byte_tensor

    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    for name, (datatype, array) in arrays.items():
        request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        raw = serialize_byte_tensor(array).item() if datatype == "BYTES" else np.ascontiguousarray(array).tobytes()
        request.raw_input_contents.append(raw)
    for key, value in (parameters or {}).items():
        slot = request.parameters[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            slot.int64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        else:
            slot.string_param = str(value)
    return request
