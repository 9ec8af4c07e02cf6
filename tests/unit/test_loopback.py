"""The twin's loopback request: tensors and parameters as Triton's gRPC protocol carries them."""

from __future__ import annotations

import numpy as np
from tritonclient.utils import deserialize_bytes_tensor

from pointsman.triton_adapters.loopback import ASK_FOR_FINAL, loopback_request


def test_request_carries_tensors_raw_and_typed():
    text = np.array([b"hi", "d\u00e9j\u00e0".encode()], dtype=np.object_)
    request = loopback_request("gpt2_stream", "r1", {"stop": ("BYTES", text),
                                                  "max_tokens": ("INT32", np.array([7], dtype=np.int32))}, {})
    assert (request.model_name, request.id) == ("gpt2_stream", "r1")
    assert [(i.name, i.datatype, list(i.shape)) for i in request.inputs] == [("stop", "BYTES", [2]),
                                                                            ("max_tokens", "INT32", [1])]
    assert deserialize_bytes_tensor(request.raw_input_contents[0]).tolist() == text.tolist()
    assert np.frombuffer(request.raw_input_contents[1], dtype=np.int32).tolist() == [7]


def test_parameters_keep_their_types_and_ask_for_the_final_flag():
    request = loopback_request("router_stream", "r2", {}, {"model": "gpt2", "seed": 3, "temperature": 0.5,
                                                        "auto_select": True})
    params = request.parameters
    assert params["model"].string_param == "gpt2"
    assert params["seed"].int64_param == 3
    assert params["temperature"].double_param == 0.5
    assert params["auto_select"].bool_param is True
    assert params[ASK_FOR_FINAL].bool_param is True
