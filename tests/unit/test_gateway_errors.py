"""Router and Triton messages -> HTTP answers: the caller's fault is 4xx naming the field, a fault is 503."""

from __future__ import annotations

import pytest

from pointsman.errors import InvalidRequest
from pointsman.gateway.errors import ApiError, from_invalid_request, from_triton_message


@pytest.mark.parametrize(("message", "status", "param"), [
    ("invalid 'top_p': must be a number in (0, 1] (got 5.0)", 400, "top_p"),
    ("[request id: 7] invalid 'max_tokens': must be at most 12 for this 500-token prompt", 400, "max_tokens"),
    ("invalid 'model': must be one of the served language models: gpt2 (got 'nope')", 404, "model"),
    ("model 'gpt2' is not loaded or not ready; loaded models: codegen", 503, None),
    ("no language model is ready (loaded models: none)", 503, None),
    ("model 'gpt2' failed: generation failed: boom", 503, None),
    ("Request for unknown model: 'router' is not found", 503, None),
    ("something nobody expected", 500, None),
])
def test_triton_messages_map_to_statuses(message, status, param):
    error = from_triton_message(message)
    assert (error.status, error.param) == (status, param)
    assert ("Retry-After" in error.headers()) == (status == 503)


def test_router_field_names_become_the_callers_names():
    error = from_triton_message("invalid 'text_input': must encode to at least one token", {"text_input": "prompt"})
    assert error.param == "prompt" and error.message.startswith("invalid 'prompt'")


def test_contract_refusal_is_400_in_openai_shape():
    error = from_invalid_request(InvalidRequest("temperature", "must be a number", got="warm"))
    assert error.status == 400
    assert error.body() == {"error": {"message": "invalid 'temperature': must be a number (got 'warm')",
                                      "type": "invalid_request_error", "param": "temperature", "code": None}}


def test_unavailable_is_a_503_with_retry_after():
    error = ApiError.unavailable("Triton at x is unreachable")
    assert error.status == 503 and error.headers() == {"Retry-After": "1"}
    assert error.body()["error"]["type"] == "service_unavailable_error"
