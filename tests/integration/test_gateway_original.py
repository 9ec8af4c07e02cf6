"""The original plan's API on the gateway, called with plain httpx as its clients call it.

    .venv/bin/pytest tests/integration/test_gateway_original.py -q
"""

from __future__ import annotations

import httpx
import pytest

CODE = "Write a Python function that sorts a list"


@pytest.fixture(scope="module")
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        yield client


def test_inference_manual_names_the_model(http):
    reply = http.post("/inference", json={"prompt": "Once upon a time", "model": "gpt2", "max_length": 5})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "gpt2" and body["selection_mode"] == "manual" and body["tokens"] <= 5
    assert reply.headers["x-pointsman-selected-model"] == "gpt2" and body["request_id"]


def test_inference_auto_select_picks_the_code_model_for_code(http):
    body = http.post("/inference", json={"prompt": CODE, "auto_select": True, "max_length": 4}).json()
    assert body["model"] == "codegen" and body["selection_mode"] == "auto" and body["task"] == "coding"


def test_inference_hybrid_uses_the_preferred_model(http):
    body = http.post("/inference", json={"prompt": "Write code", "preferred_model": "distilgpt2",
                                         "fallback_mode": "auto", "max_length": 4}).json()
    assert body["model"] == "distilgpt2" and body["selection_mode"] == "hybrid" and body["fallback_used"] is False


def test_inference_wrong_type_is_400_naming_the_field_where_triton_says_500(http, triton):
    status, native = triton.generate("router", {"text_input": "x", "temperature": "warm"})
    assert status == 500  # Triton's own JSON parser, before any model runs
    reply = http.post("/inference", json={"prompt": "x", "temperature": "warm"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "temperature" and "warm" in reply.json()["error"]["message"]


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "x", "max_length": "ten"}, "max_length"),
    ({"prompt": "x", "auto_select": "perhaps"}, "auto_select"),
    ({"prompt": "x", "fallback_mode": "sometimes"}, "fallback_mode"),
    ({"prompt": "x", "max_response_time": -1}, "max_response_time"),
    ({"max_length": 4}, "text_input"),
])
def test_inference_refusals_name_the_field(http, body, param):
    reply = http.post("/inference", json=body)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param


def test_inference_unknown_model_is_404(http):
    reply = http.post("/inference", json={"prompt": "x", "model": "gpt5"})
    assert reply.status_code == 404 and reply.json()["error"]["param"] == "model"


def test_models_lists_metadata_and_live_status(http):
    models = http.get("/models").json()["models"]
    names = {m["model_name"] for m in models}
    assert {"gpt2", "distilgpt2", "codegen"} <= names
    for entry in models:
        assert entry["current_status"]["loaded"] is True
        assert {"capabilities", "specialization_score", "performance_metrics"} <= set(entry)


def test_recommend_by_query_parameters(http):
    # min_quality leaves codegen the only model good enough at code: with speed preferred, the
    # answer would otherwise follow the models' measured pace, which earlier tests' load moves
    reply = http.get("/models/recommend", params={"prompt": CODE, "prefer_speed": "true", "max_response_time": "30",
                                                  "min_quality": "0.5"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["recommended_model"] == "codegen" and 0 <= body["confidence"] <= 1
    assert all({"model", "score"} <= set(alt) for alt in body["alternatives"]) and body["reasoning"]
    # each query parameter reached the decision
    assert "speed preferred" in body["reasoning"] and "max_response_time 30s" in body["reasoning"]
    assert "meets min_quality 0.5" in body["reasoning"]
    assert [alt["eligible"] for alt in body["alternatives"]] == [False] * len(body["alternatives"])


def test_recommend_by_json_with_the_plans_requirements(http):
    body = http.post("/models/recommend", json={"prompt": CODE, "requirements": {
        "max_response_time": 5.0, "min_quality": 0.5, "prefer_speed": True}}).json()
    assert body["recommended_model"] == "codegen"


def test_recommend_bad_requirement_names_it(http):
    reply = http.get("/models/recommend", params={"prompt": CODE, "min_quality": "high"})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "min_quality"
