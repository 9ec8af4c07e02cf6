"""OpenAI bodies -> router fields: selection modes, refusals that name the parameter, response shapes."""

from __future__ import annotations

import json

import pytest

from pointsman.gateway.errors import ApiError
from pointsman.gateway.openai_api import (
    chat_request,
    chunk_object,
    completion_object,
    completion_request,
    models_list,
)


def refusal(build, body) -> ApiError:
    with pytest.raises(ApiError) as caught:
        build(body)
    return caught.value


def test_model_auto_is_auto_selection():
    request = completion_request({"model": "auto", "prompt": "def f():", "max_tokens": 4})
    assert request.fields == {"stream": False, "auto_select": True, "text_input": "def f():", "max_tokens": 4}


def test_a_model_name_is_manual_selection():
    assert completion_request({"model": "gpt2", "prompt": "x"}).fields["model"] == "gpt2"


def test_preferred_model_extra_field_makes_auto_a_hybrid_request():
    fields = completion_request({"model": "auto", "prompt": "x", "preferred_model": "codegen",
                                 "fallback_mode": "fastest", "prefer_speed": True, "user": "u1"}).fields
    assert "auto_select" not in fields and "model" not in fields
    assert fields["preferred_model"] == "codegen" and fields["fallback_mode"] == "fastest"
    assert fields["prefer_speed"] is True and fields["user"] == "u1"


def test_max_completion_tokens_maps_to_max_tokens():
    assert completion_request({"model": "auto", "prompt": "x", "max_completion_tokens": 7}).fields["max_tokens"] == 7


def test_chat_messages_go_to_the_model_as_json_with_developer_as_system():
    request = chat_request({"model": "auto", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]})
    assert json.loads(request.fields["messages"]) == [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "Hi there"}]
    assert "text_input" not in request.fields


def test_stream_options_include_usage_needs_stream():
    request = completion_request({"model": "auto", "prompt": "x", "stream": True,
                                  "stream_options": {"include_usage": True}})
    assert request.stream and request.include_usage
    assert refusal(completion_request, {"model": "auto", "prompt": "x",
                                        "stream_options": {"include_usage": True}}).param == "stream_options"


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"),
    ({"best_of": 3}, "best_of"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"logprobs": 2}, "logprobs"),
    ({"echo": True}, "echo"),
    ({"suffix": "end"}, "suffix"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"frobnicate": 1}, "frobnicate"),
])
def test_what_the_server_cannot_honour_is_a_400_naming_the_parameter(extra, param):
    error = refusal(completion_request, {"model": "auto", "prompt": "x", **extra})
    assert error.status == 400 and error.param == param
    assert error.body()["error"]["type"] == "invalid_request_error" and param in error.body()["error"]["message"]


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": "warm"}, "temperature"),
    ({"max_tokens": "ten"}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"top_p": 2}, "top_p"),
    ({"seed": -1}, "seed"),
    ({"stream": "yes"}, "stream"),
    ({"fallback_mode": "sometimes"}, "fallback_mode"),
    ({"min_quality": "high"}, "min_quality"),
])
def test_wrong_types_are_caught_before_triton_and_name_the_field(extra, param):
    error = refusal(completion_request, {"model": "auto", "prompt": "x", **extra})
    assert error.status == 400 and error.param == param
    assert f"invalid '{param}'" in error.message


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "auto"}, "prompt"),
    ({"model": "auto", "prompt": ""}, "prompt"),
    ({"model": "auto", "prompt": [1, 2, 3]}, "prompt"),
    ({"model": "auto", "prompt": ["a", "b"]}, "prompt"),
    ({"prompt": "x"}, "model"),
    ({"model": 5, "prompt": "x"}, "model"),
])
def test_completion_prompt_and_model_refusals(body, param):
    assert refusal(completion_request, body).param == param


@pytest.mark.parametrize(("messages", "param"), [
    (None, "messages"),
    ([], "messages"),
    (["hi"], "messages[0]"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages[0].content"),
    ([{"role": "assistant", "content": "x", "tool_calls": []}], "messages[0].tool_calls"),
])
def test_chat_message_refusals_name_the_message(messages, param):
    assert refusal(chat_request, {"model": "auto", "messages": messages}).param == param


def test_completion_object_names_the_answering_model_and_counts_tokens():
    final = {"finish_reason": "eos", "tokens": 3, "prompt_tokens": 5}
    body = completion_object("chatcmpl-1", "codegen", "hi", final, chat=True)
    assert body["model"] == "codegen" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_chunks_carry_the_role_first_then_deltas_then_usage_with_no_choices():
    first = chunk_object("c", "gpt2", 1, True, text="He", first=True)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "He"}
    last = chunk_object("c", "gpt2", 1, True, reason="length")
    assert last["choices"][0]["delta"] == {} and last["choices"][0]["finish_reason"] == "length"
    usage = chunk_object("c", "gpt2", 1, True, usage_of={"tokens": 2, "prompt_tokens": 1})
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 3


def test_models_list_puts_auto_first():
    assert [m["id"] for m in models_list(["gpt2", "codegen"])["data"]] == ["auto", "gpt2", "codegen"]
