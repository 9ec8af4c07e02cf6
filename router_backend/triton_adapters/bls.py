"""Every BLS call goes through here: build the request, check each response's error, raise.

    for piece, final in generate_via_bls("gpt2", {"text_input": "hi", "max_tokens": 8, "stream": True}):
        ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.policy.contract import LLM_OUTPUTS, GenerateParams, input_tensors
from pointsman.policy.routing import ModelCallError, ModelOutput
from pointsman.triton_adapters.model_config import numpy_types

# generation fields forwarded to a language model, typed as the contract declares them
LLM_FIELD_TYPES = numpy_types(input_tensors(GenerateParams))
LLM_OUTPUT_NAMES = [spec.name for spec in LLM_OUTPUTS]


class BlsError(ModelCallError):
    """A BLS call answered with an error; INVALID_ARG means the request, not the model, is at fault."""

    def __init__(self, model: str, message: str, code: int | None = None) -> None:
        # Triton 2.51 does not carry a Python model's error code through BLS: our models'
        # own "invalid '<field>': ..." messages mark the caller's fault
        invalid = code == pb_utils.TritonError.INVALID_ARG or message.startswith("invalid '")
        super().__init__(message, invalid_argument=invalid)
        self.model = model
        self.code = code


def _tensor(name: str, value: Any) -> pb_utils.Tensor:
    dtype = LLM_FIELD_TYPES[name]
    if isinstance(value, list | tuple):  # a dims [-1] input such as stop
        return pb_utils.Tensor(name, np.array([str(v).encode("utf-8") for v in value], dtype=np.object_))
    if dtype is np.object_:
        return pb_utils.Tensor(name, np.array([str(value).encode("utf-8")], dtype=np.object_))
    return pb_utils.Tensor(name, np.array([value], dtype=dtype))


def _checked(model: str, response) -> Any:
    if response.has_error():
        error = response.error()
        code = error.code() if hasattr(error, "code") else None
        raise BlsError(model, error.message(), code)
    return response


def _output(response, name: str) -> Any:
    tensor = pb_utils.get_output_tensor_by_name(response, name)
    if tensor is None:
        return None
    value = tensor.as_numpy().reshape(-1)[0]
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value.item()


def generate_via_bls(model: str, fields: Mapping[str, Any], is_cancelled=lambda: False
                     ) -> Iterator[tuple[str, ModelOutput | None]]:
    """Call a decoupled language model; yield (text piece, None) then ("", ModelOutput)."""
    inputs = [_tensor(name, value) for name, value in fields.items() if value is not None]
    request = pb_utils.InferenceRequest(model_name=model, inputs=inputs, requested_output_names=LLM_OUTPUT_NAMES)
    try:
        responses = request.exec(decoupled=True)
    except pb_utils.TritonModelException as exc:  # e.g. the model was unloaded a moment ago
        raise BlsError(model, str(exc)) from None
    for response in responses:
        if is_cancelled():
            cancel = getattr(responses, "cancel", None)
            if cancel is not None:
                cancel()
            return
        _checked(model, response)
        if not response.output_tensors():
            continue  # a bare final flag
        reason = _output(response, "finish_reason")
        text = _output(response, "text_output") or ""
        if reason is None:
            yield text, None
        else:
            logprob = _output(response, "mean_logprob")
            yield "", ModelOutput(text=text, tokens=int(_output(response, "tokens") or 0), finish_reason=reason,
                                   mean_logprob=None if logprob is None or math.isnan(logprob) else float(logprob),
                                   prompt_tokens=int(_output(response, "prompt_tokens") or 0))


def probe_via_bls(model: str) -> str | None:
    """Is the model's stub alive? Send a request it refuses on sight (max_tokens 0) and return the error.

    A live model answers "invalid 'max_tokens' ..." without generating; a dead stub answers
    Triton's "Stub process '...' is not healthy." (the caller tells them apart). None: no error at all.
    """
    request = pb_utils.InferenceRequest(model_name=model, inputs=[_tensor("text_input", "probe"),
                                                                  _tensor("max_tokens", 0)],
                                        requested_output_names=LLM_OUTPUT_NAMES)
    try:
        for response in request.exec(decoupled=True):
            if response.has_error():
                return response.error().message()
    except pb_utils.TritonModelException as exc:
        return str(exc)
    return None


def probe_twin_via_bls(model: str) -> str | None:
    """probe_via_bls for a non-decoupled model (a twin): one response, its error or None.

    The twin refuses `stream: true` itself, without forwarding: a probe of `router` never
    reaches router_stream, so it is neither routed nor recorded in the usage analytics.
    No output is named: the router's twin has other outputs than a language model's, and
    Triton refuses an unknown output name before the stub is even asked.
    """
    request = pb_utils.InferenceRequest(model_name=model, inputs=[_tensor("text_input", "probe"),
                                                                  _tensor("stream", True)],
                                        requested_output_names=[])
    try:
        response = request.exec()
    except pb_utils.TritonModelException as exc:
        return str(exc)
    return response.error().message() if response.has_error() else None
