"""Every BLS call goes through here: build the request, check each response's error, raise.

    for piece, final in generate_via_bls("gpt2", {"text_input": "hi", "max_tokens": 8, "stream": True}):
        ...
    call_model = ModelCaller(catalog)   # this project's engine, or a TensorRT-LLM / vLLM convention

The conventions' request and response shapes are pointsman.policy.conventions; this module
only turns them into tensors and back.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.errors import InvalidRequest
from pointsman.policy.catalog import Catalog, ModelEntry
from pointsman.policy.contract import LLM_OUTPUTS, ROUTED_CANCEL, ROUTED_ID_PREFIX, GenerateParams, input_tensors
from pointsman.policy.conventions import ResponseReader, TensorValue, request_tensors
from pointsman.policy.routing import ModelCallError, ModelOutput
from pointsman.triton_adapters.delayed_release import DelayedRelease
from pointsman.triton_adapters.model_config import NUMPY_TYPES, numpy_types

LOGGER = logging.getLogger(__name__)
# generation fields forwarded to a language model, typed as the contract declares them
LLM_FIELD_TYPES = numpy_types(input_tensors(GenerateParams))
LLM_OUTPUT_NAMES = [spec.name for spec in LLM_OUTPUTS]
RELEASE = DelayedRelease()  # each decoupled call's response iterator, once read (delayed_release.py says why)


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


def _held(responses) -> Iterator:
    """A decoupled call's responses; then its iterator waits in RELEASE, so that Python frees it, with the GIL."""
    try:
        yield from responses
    finally:
        RELEASE.keep(responses)


def _checked_until_cancelled(model: str, responses, is_cancelled,
                             stop: Callable[[], None] | None = None) -> Iterator:
    """Each response, checked for an error, until the caller cancels (the model is told to stop then).

    stop: how to tell the model where Triton's BLS cannot cancel (2.51's response iterator has no cancel).
    """
    for response in _held(responses):
        if is_cancelled():
            cancel = getattr(responses, "cancel", None) or stop
            if cancel is not None:
                cancel()
            return
        yield _checked(model, response)


def stop_routed(model: str, request_id: str) -> None:
    """Ask an engine model to stop a request the router started (policy.contract.ROUTED_CANCEL)."""
    request = pb_utils.InferenceRequest(model_name=model, inputs=[], requested_output_names=[],
                                        parameters={ROUTED_CANCEL: request_id})
    try:
        for response in _held(request.exec(decoupled=True)):
            if response.has_error():
                LOGGER.warning("%s did not stop request %s: %s", model, request_id, response.error().message())
    except pb_utils.TritonModelException as exc:  # e.g. the model is gone: nothing left to stop
        LOGGER.warning("could not ask %s to stop request %s: %s", model, request_id, exc)


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
    request_id = f"{ROUTED_ID_PREFIX}{uuid.uuid4().hex}"  # the name stop_routed stops it by
    request = pb_utils.InferenceRequest(model_name=model, inputs=inputs, requested_output_names=LLM_OUTPUT_NAMES,
                                        request_id=request_id)
    try:
        responses = request.exec(decoupled=True)
    except pb_utils.TritonModelException as exc:  # e.g. the model was unloaded a moment ago
        raise BlsError(model, str(exc)) from None
    for response in _checked_until_cancelled(model, responses, is_cancelled,
                                             stop=lambda: stop_routed(model, request_id)):
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


# what the router reads of a convention's answer, when the model declares it
CONVENTION_OUTPUTS = ("text_output", "finish_reason", "num_output_tokens", "num_input_tokens")


def _convention_tensor(value: TensorValue) -> pb_utils.Tensor:
    dtype = NUMPY_TYPES[value.data_type]
    if dtype is np.object_:
        array = np.array([str(v).encode("utf-8") for v in value.values], dtype=np.object_)
    else:
        array = np.array(value.values, dtype=dtype)
    return pb_utils.Tensor(value.name, array.reshape(value.shape))


def _first_values(response) -> dict[str, Any]:
    out = {}
    for tensor in response.output_tensors():
        array = tensor.as_numpy().reshape(-1)
        out[tensor.name()] = (array[0].item() if isinstance(array[0], np.generic) else array[0]) if array.size else None
    return out


def generate_via_convention(entry: ModelEntry, fields: Mapping[str, Any], is_cancelled=lambda: False
                            ) -> Iterator[tuple[str, ModelOutput | None]]:
    """Call a TensorRT-LLM or vLLM convention model; yield (text piece, None) then ("", ModelOutput)."""
    try:
        tensors = [_convention_tensor(t) for t in request_tensors(entry, fields)]
    except InvalidRequest as exc:  # a field the model cannot take: the caller's fault, never retried
        raise ModelCallError(str(exc), invalid_argument=True) from None
    declared = entry.signature.outputs if entry.signature else ("text_output",)
    request = pb_utils.InferenceRequest(model_name=entry.call_name, inputs=tensors,
                                        requested_output_names=[n for n in CONVENTION_OUTPUTS if n in declared])
    decoupled = entry.signature is None or entry.signature.decoupled
    try:
        responses = request.exec(decoupled=True) if decoupled else [request.exec()]
    except pb_utils.TritonModelException as exc:  # e.g. the model was unloaded a moment ago
        raise BlsError(entry.call_name, str(exc)) from None
    reader = ResponseReader(entry.interface)
    for response in _checked_until_cancelled(entry.call_name, responses, is_cancelled):
        piece = reader.read(_first_values(response))
        if piece:
            yield piece, None
    yield "", ModelOutput(text=reader.text, tokens=reader.tokens, finish_reason=reader.finish_reason,
                          prompt_tokens=reader.prompt_tokens)


class ModelCaller:
    """RoutingService's call_model: each model is called in the convention its catalog entry names."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def __call__(self, model: str, fields: Mapping[str, Any], is_cancelled=lambda: False
                 ) -> Iterator[tuple[str, ModelOutput | None]]:
        entry = next((e for e in self.catalog if e.call_name == model), None)
        if entry is None or entry.interface == "pointsman":
            return generate_via_bls(model, fields, is_cancelled)
        return generate_via_convention(entry, fields, is_cancelled)


def probe_via_bls(model: str) -> str | None:
    """Is the model's stub alive? Send a request it refuses on sight (max_tokens 0) and return the error.

    A live model answers "invalid 'max_tokens' ..." without generating; a dead stub answers
    Triton's "Stub process '...' is not healthy." (the caller tells them apart). None: no error at all.
    """
    request = pb_utils.InferenceRequest(model_name=model, inputs=[_tensor("text_input", "probe"),
                                                                  _tensor("max_tokens", 0)],
                                        requested_output_names=LLM_OUTPUT_NAMES)
    try:
        for response in _held(request.exec(decoupled=True)):
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
    return error_of(pb_utils.InferenceRequest(model_name=model, inputs=[_tensor("text_input", "probe"),
                                                                        _tensor("stream", True)],
                                              requested_output_names=[]))


def error_of(request: pb_utils.InferenceRequest) -> str | None:
    """Run a request to a non-decoupled model; its error message (or Triton's exception), else None."""
    try:
        response = request.exec()
    except pb_utils.TritonModelException as exc:
        return str(exc)
    return response.error().message() if response.has_error() else None
