"""The router against a real tritonserver: the original plan's test plan.

Manual selection and the not-loaded error; auto for coding versus creative prompts;
load balancing under concurrency; hybrid with the preferred model available, unloaded
through the repository API, and each fallback strategy; concurrent mixed modes;
malformed requests; catalog and recommend.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from pointsman.policy.selection.scoring import Weights
from tests.integration.conftest import classifier_probes_within
from tests.waiting import wait_until

CODE_PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n"
POEM_PROMPT = "Write a short poem about the autumn rain falling on the old city"
QA_PROMPT = "What is the capital of France?"
REASONING_PROMPT = "A train travels 120 km in 2 hours. What is its average speed? Solve it step by step."


def leaders(task: str, margin: float = 0.1) -> set[str]:
    """Models scoring within `margin` of the best measured specialization for `task`.

    Speed and load decide among them; a clear specialist is the only leader.
    """
    from pointsman.export.demo_models import demo_catalog

    catalog = demo_catalog()  # what demo-models wrote into the served configs
    best = max(catalog[name].specialization_score[task] for name in catalog.names)
    return {name for name in catalog.names if catalog[name].specialization_score[task] >= best - margin}


def route(triton, **body):
    status, answer = triton.generate("router", {"max_tokens": 8, **body})
    return status, answer


def routed(triton, **body) -> dict:
    status, answer = route(triton, **body)
    assert status == 200 and "error" not in answer, answer
    return answer


def test_manual_selection_uses_exactly_the_named_model(triton):
    answer = routed(triton, text_input=CODE_PROMPT, model="gpt2", max_tokens=16, ignore_eos=True)
    assert answer["selected_model"] == "gpt2" and answer["selection_mode"] == "manual"
    assert answer["fallback_used"] is False and answer["tokens"] == 16 and answer["text_output"]
    assert "manual" in answer["selection_reason"] and answer["selection_ms"] >= 0


def test_language_models_report_their_mean_log_likelihood(triton):
    status, answer = triton.generate("gpt2", {"text_input": POEM_PROMPT, "max_tokens": 8, "ignore_eos": True})
    assert status == 200, answer
    assert answer["mean_logprob"] < 0.0


def test_auto_selection_sends_code_and_poems_to_different_models(triton):
    code = routed(triton, text_input=CODE_PROMPT, auto_select=True)
    poem = routed(triton, text_input=POEM_PROMPT, auto_select=True)
    assert code["task"] == "coding" and poem["task"] == "creative"
    assert leaders("coding") == {code["selected_model"]} == {"codegen"}
    assert poem["selected_model"] in leaders("creative")  # scores measured by export.specialization
    for answer in (code, poem):
        assert answer["selection_mode"] == "auto" and answer["analyzer"]
        assert answer["selected_model"] in answer["selection_reason"]


def test_no_selection_field_means_auto(triton):
    status, answer = triton.generate("router", {"prompt": QA_PROMPT, "max_length": 4})
    assert status == 200, answer
    assert answer["selection_mode"] == "auto" and answer["task"] == "qa" and answer["tokens"] <= 4


def test_auto_asks_the_classifier_in_the_routers_own_process_not_the_served_model(triton):
    def served_requests() -> int:
        status, body = triton.get("/v2/models/prompt_classifier/stats")
        assert status == 200, body
        return int(body["model_stats"][0]["inference_stats"]["success"]["count"])

    before, began = served_requests(), time.monotonic()
    answers = [routed(triton, text_input=f"hello there, number {i}", auto_select=True) for i in range(5)]
    probes = classifier_probes_within(time.monotonic() - began)

    assert {a["analyzer"] for a in answers} <= {"classifier", "lexical>classifier"}, answers
    assert probes < len(answers), "too slow to tell probes from classifications"
    # only the router's own liveness probes, which Triton counts too; classifying through
    # the served model would add one request per prompt
    assert served_requests() - before <= probes


def test_preferred_model_is_used_when_ready(triton):
    answer = routed(triton, text_input=POEM_PROMPT, preferred_model="codegen")
    assert answer["selected_model"] == "codegen" and answer["selection_mode"] == "hybrid"
    assert answer["fallback_used"] is False


def test_streaming_through_the_router_sends_pieces_then_the_decision(triton):
    events = triton.generate_stream("router_stream", {"text_input": POEM_PROMPT, "max_tokens": 12, "ignore_eos": True,
                                               "stream": True, "model": "distilgpt2"})
    assert "error" not in events[-1], events[-1]
    assert len(events) >= 3
    final = events[-1]
    assert final["selected_model"] == "distilgpt2" and final["tokens"] == 12
    streamed = "".join(e.get("text_output", "") for e in events)
    whole = routed(triton, text_input=POEM_PROMPT, max_tokens=12, ignore_eos=True, model="distilgpt2")
    assert streamed == whole["text_output"]


def test_grpc_streaming_through_the_router(triton):
    outcome = triton.grpc_stream("router_stream", {"text_input": CODE_PROMPT, "max_tokens": 6, "ignore_eos": True,
                                            "stream": True, "auto_select": True})
    assert outcome.error is None and outcome.final
    assert len(outcome.responses) >= 2
    assert outcome.last["selected_model"] == "codegen" and outcome.last["tokens"] == 6


def test_busy_model_is_penalised_and_no_model_starves(triton):
    answers: list[dict] = []

    def quiet() -> bool:
        answers.append(routed(triton, text_input=POEM_PROMPT, auto_select=True))
        return "load 0" in answers[-1]["selection_reason"]

    # earlier tests' requests may still show in the engines' gauges for a moment: wait for quiet
    assert wait_until(quiet, timeout=10, interval=0.3), answers[-1]["selection_reason"]
    idle = answers[-1]
    favourite = idle["selected_model"]  # the best creative model while nothing runs
    with ThreadPoolExecutor(max_workers=8) as pool:
        # keep the favourite busy with long manual generations, then ask again
        hogs = [pool.submit(routed, triton, text_input=POEM_PROMPT, model=favourite, max_tokens=400,
                            ignore_eos=True) for _ in range(8)]
        assert wait_until(lambda: _catalog_entry(triton, favourite)["current_status"]["in_flight"] >= 6, timeout=10)
        busy = [routed(triton, text_input=POEM_PROMPT, auto_select=True) for _ in range(3)]
        for hog in hogs:
            assert hog.result()["tokens"] == 400
    chosen = Counter(a["selected_model"] for a in busy)
    assert favourite not in chosen, f"the busy {favourite} still got creative traffic: {busy[0]['selection_reason']}"
    # every model serves the prompts it is best at: coding, qa and reasoning each have their specialist
    mixed = [routed(triton, text_input=p, auto_select=True) for p in (CODE_PROMPT, QA_PROMPT, REASONING_PROMPT)]
    assert [a["selected_model"] for a in mixed[::2]] == ["codegen", "distilgpt2"]  # the clear specialists
    assert leaders("reasoning") == {"distilgpt2"} and mixed[1]["selected_model"] in leaders("qa")
    assert {a["selected_model"] for a in [idle, *mixed, *busy]} == {"gpt2", "distilgpt2", "codegen"}


def test_concurrent_mixed_modes_each_get_their_own_mode(triton):
    bodies = [
        {"text_input": POEM_PROMPT, "model": "gpt2"},
        {"text_input": CODE_PROMPT, "auto_select": True},
        {"text_input": QA_PROMPT, "preferred_model": "distilgpt2"},
    ] * 4
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda b: routed(triton, **b), bodies))
    for body, answer in zip(bodies, answers, strict=True):
        expected = "manual" if "model" in body else "auto" if "auto_select" in body else "hybrid"
        assert answer["selection_mode"] == expected
        if expected == "manual":
            assert answer["selected_model"] == "gpt2"


@pytest.mark.parametrize("body, field", [
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_length": 5}, "max_length"),  # alias and canonical name together
    ({"text_input": ""}, "text_input"),
    ({"modle": "gpt2"}, "modle"),
    ({"model": "gpt-9"}, "model"),
    ({"fallback_mode": "sometimes", "preferred_model": "gpt2"}, "fallback_mode"),
    ({"model": "gpt2", "preferred_model": "codegen"}, "preferred_model"),
    ({"auto_select": False}, "auto_select"),
    ({"min_quality": 3}, "min_quality"),
    ({"max_response_time": -1}, "max_response_time"),
])
def test_malformed_requests_name_the_field(triton, body, field):
    status, answer = route(triton, **{"text_input": POEM_PROMPT, **body})
    assert status == 400, answer
    assert f"'{field}'" in answer["error"]


def test_missing_prompt_is_rejected_and_the_server_keeps_serving(triton):
    status, answer = triton.generate("router", {"max_tokens": 3})
    assert status == 400 and "'text_input'" in answer["error"]
    status, answer = route(triton, text_input="a" * 20000)
    assert status == 400 and "text_input" in answer["error"] and "context" in answer["error"]
    assert routed(triton, text_input=QA_PROMPT)["tokens"] >= 1
    assert triton.ready()


def _catalog(triton, **body) -> list[dict]:
    status, answer = triton.generate("catalog", body)
    assert status == 200, answer
    return json.loads(answer["models"])


def _catalog_entry(triton, model: str) -> dict:
    return _catalog(triton, model=model)[0]


def test_catalog_reports_metadata_and_live_status(triton):
    routed(triton, text_input=POEM_PROMPT, model="gpt2", max_tokens=8, ignore_eos=True)
    # the router publishes its measurements every 0.25 s; the catalog model reads them back
    assert wait_until(lambda: (_catalog_entry(triton, "gpt2")["performance_metrics"]["measured_tokens_per_second"]
                               or 0) > 0, timeout=10)
    models = {m["model_name"]: m for m in _catalog(triton)}
    assert set(models) == {"gpt2", "distilgpt2", "codegen"}
    gpt2 = models["gpt2"]
    assert set(gpt2["specialization_score"]) == {"coding", "creative", "qa", "reasoning"}
    assert gpt2["current_status"]["loaded"] is True and gpt2["current_status"]["last_used"]
    measured = gpt2["performance_metrics"]["measured_tokens_per_second"]
    assert measured > 0 and gpt2["performance_metrics"]["avg_tokens_per_second"] >= measured  # raw beside modelled
    assert gpt2["performance_metrics"]["avg_tokens_per_second_basis"].startswith("modelled")
    assert gpt2["performance_metrics"]["avg_load_time"] > 0
    assert gpt2["performance_metrics"]["requests_served"] >= 1
    assert [m["model_name"] for m in _catalog(triton, model="codegen")] == ["codegen"]
    status, answer = triton.generate("catalog", {"model": "gpt-9"})
    assert status == 400 and "'model'" in answer["error"]


def test_recommend_answers_model_confidence_alternatives_and_reasoning(triton):
    status, answer = triton.generate("recommend", {"text_input": "Write a Python function that sorts a list",
                                                   "max_response_time": 5.0, "min_quality": 0.8,
                                                   "prefer_speed": True})
    assert status == 200, answer
    assert answer["recommended_model"] == "codegen" and answer["task"] == "coding"
    assert 0.0 <= answer["confidence"] <= 1.0
    alternatives = json.loads(answer["alternatives"])
    assert {a["model"] for a in alternatives} == {"gpt2", "distilgpt2"}
    # the scoring formula's own bounds: a busy, unspecialised model may score below 0
    weights = Weights()
    highest = weights.specialization + weights.capability + weights.speed_preferred
    assert all(-weights.load <= a["score"] <= highest for a in alternatives)
    assert answer["reasoning"].startswith("codegen")
    status, answer = triton.generate("recommend", {"text_input": "x", "min_quality": 7})
    assert status == 400 and "'min_quality'" in answer["error"]


def test_fallback_when_preferred_model_is_unloaded_through_the_repository_api(triton):
    status, body = triton.post("/v2/repository/models/gpt2_stream/unload")  # the engine: the router follows it
    assert status == 200, body
    try:
        assert wait_until(lambda: not _catalog_entry(triton, "gpt2")["current_status"]["loaded"], timeout=3.0)
        # the router follows too (its poller runs every second): its hybrid fallback says why
        assert wait_until(lambda: "gpt2 is not loaded" in routed(triton, text_input=POEM_PROMPT,
                                                                 preferred_model="gpt2")["selection_reason"])
        answer = routed(triton, text_input=POEM_PROMPT, preferred_model="gpt2")
        assert answer["selected_model"] != "gpt2" and answer["fallback_used"] is True

        # which model is fastest comes from live measurements (tests/unit/test_selection.py pins the rule)
        fastest = routed(triton, text_input=POEM_PROMPT, preferred_model="gpt2", fallback_mode="fastest")
        assert fastest["fallback_used"] is True and fastest["selected_model"] != "gpt2"
        assert f"fallback fastest: {fastest['selected_model']} (~" in fastest["selection_reason"]

        status, error = route(triton, text_input=POEM_PROMPT, preferred_model="gpt2", fallback_mode="none")
        assert status == 400 and "'gpt2'" in error["error"]

        status, error = route(triton, text_input=POEM_PROMPT, model="gpt2")
        assert status == 400 and "'gpt2' is not loaded" in error["error"]
        assert "distilgpt2" in error["error"] and "codegen" in error["error"]

        # the twin gpt2 is still loaded, but its engine is not: a server fault, not the caller's.
        # Triton 2.51's HTTP endpoints answer every model error 400; gRPC keeps the code
        status, error = triton.generate("gpt2", {"text_input": POEM_PROMPT, "max_tokens": 4})
        assert "model 'gpt2_stream' behind 'gpt2' is unavailable" in error["error"], error
        text = grpcclient.InferInput("text_input", [1], "BYTES")
        text.set_data_from_numpy(np.array([POEM_PROMPT.encode()], dtype=np.object_))
        with pytest.raises(InferenceServerException, match="behind 'gpt2' is unavailable") as raised:
            grpcclient.InferenceServerClient(triton.grpc_url).infer("gpt2", [text])
        assert raised.value.status() == "StatusCode.UNAVAILABLE"
    finally:
        status, body = triton.post("/v2/repository/models/gpt2_stream/load")
        assert status == 200, body
    assert wait_until(lambda: route(triton, text_input=POEM_PROMPT, model="gpt2")[0] == 200, timeout=5.0)
