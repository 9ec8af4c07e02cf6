"""The original API's bodies: /inference and /models/recommend (query and JSON), refusals naming the field."""

from __future__ import annotations

import pytest

from pointsman.gateway.errors import ApiError
from pointsman.gateway.original_api import inference_answer, inference_fields, recommend_fields, recommendation


def test_inference_takes_the_original_plan_body():
    body = {"prompt": "Write code", "max_length": 20, "preferred_model": "distilgpt2", "fallback_mode": "auto"}
    assert inference_fields(body) == {**body, "stream": False}


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "x", "max_length": "lots"}, "max_length"),
    ({"prompt": "x", "auto_select": "perhaps"}, "auto_select"),
    ({"prompt": "x", "temperature": "warm"}, "temperature"),
    ({"max_length": 3}, "text_input"),
    ({"prompt": "x", "stream": True}, "stream"),
    ({"prompt": "x", "colour": "red"}, "colour"),
    (["not", "an", "object"], "body"),
])
def test_inference_refusals_name_the_field(body, param):
    with pytest.raises(ApiError) as caught:
        inference_fields(body)
    assert caught.value.status == 400 and caught.value.param == param


def test_inference_answer_names_model_mode_and_fallback():
    final = {"selected_model": "gpt2", "selection_mode": "hybrid", "selection_reason": "r", "fallback_used": True,
             "task": "creative", "tokens": 4, "prompt_tokens": 2, "finish_reason": "length", "request_id": "1",
             "selection_ms": 0.5}
    answer = inference_answer(final, "text", 12.345)
    assert answer["model"] == "gpt2" and answer["fallback_used"] is True and answer["text"] == "text"
    assert answer["latency_ms"] == 12.35


def test_recommend_query_strings_are_typed_by_the_contract():
    fields = recommend_fields(query={"prompt": "def f():", "max_response_time": "5", "min_quality": "0.8",
                                     "prefer_speed": "true", "max_length": "16"})
    assert fields == {"prompt": "def f():", "max_response_time": 5.0, "min_quality": 0.8, "prefer_speed": True,
                      "max_length": 16}


def test_recommend_body_takes_the_plans_nested_requirements():
    fields = recommend_fields({"prompt": "x", "requirements": {"max_response_time": 5.0, "prefer_speed": True}})
    assert fields == {"prompt": "x", "max_response_time": 5.0, "prefer_speed": True}


@pytest.mark.parametrize(("query", "body", "param"), [
    ({"prompt": "x", "min_quality": "high"}, None, "min_quality"),
    ({"prompt": "x", "prefer_speed": "maybe"}, None, "prefer_speed"),
    ({"min_quality": "0.5"}, None, "text_input"),
    (None, {"prompt": "x", "requirements": {"colour": 1}}, "requirements.colour"),
    (None, {"prompt": "x", "model": "gpt2"}, "model"),
])
def test_recommend_refusals_name_the_field(query, body, param):
    with pytest.raises(ApiError) as caught:
        recommend_fields(body, query=query)
    assert caught.value.status == 400 and caught.value.param == param


def test_recommendation_decodes_alternatives():
    outputs = {"recommended_model": "codegen", "confidence": 0.9, "alternatives": '[{"model": "gpt2", "score": 0.5}]',
               "reasoning": "r", "task": "coding"}
    assert recommendation(outputs)["alternatives"] == [{"model": "gpt2", "score": 0.5}]
