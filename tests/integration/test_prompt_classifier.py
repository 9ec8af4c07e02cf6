"""prompt_classifier served by a real tritonserver: outputs, batching, errors.

    .venv/bin/pytest tests/integration/test_prompt_classifier.py -q

Needs the generated graph and tokenizer (`pointsman build-classifier`, run by `make setup`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pointsman.policy.analysis import TASKS
from tests.integration.conftest import classifier_probes_within

pytestmark = pytest.mark.integration

MODEL = "prompt_classifier"


def infer(triton, texts: list[str]) -> tuple[int, dict]:
    body = {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [len(texts), 1], "data": texts}]}
    return triton.post(f"/v2/models/{MODEL}/infer", body)


def outputs(body: dict) -> dict[str, list]:
    return {o["name"]: o["data"] for o in body["outputs"]}


@pytest.mark.parametrize("prompt, task", [
    ("def add(a, b):\n    return a + b", "coding"),
    ("my script crashes with KeyError: 'id'", "coding"),
    ("Write a haiku about recursion", "creative"),
    ("What is the capital of Kenya?", "qa"),
    ("A bat and a ball cost $1.10 together; the bat costs $1 more. What does the ball cost?", "reasoning"),
])
def test_classifier_answers_task_probabilities_and_complexity(triton, prompt, task):
    status, body = infer(triton, [prompt])

    assert status == 200, body
    out = outputs(body)
    assert out["task"] == [task]
    assert len(out["probabilities"]) == len(TASKS)
    assert sum(out["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert TASKS[int(np.argmax(out["probabilities"]))] == task
    assert 0.0 <= out["complexity"][0] <= 1.0


def test_one_request_may_carry_several_prompts(triton):
    status, body = infer(triton, ["import numpy as np\nx = np.zeros(3)", "Write a sonnet about spring",
                                  "Who painted the Mona Lisa?"])

    assert status == 200, body
    assert outputs(body)["task"] == ["coding", "creative", "qa"]
    shapes = {o["name"]: o["shape"] for o in body["outputs"]}
    assert shapes == {"probabilities": [3, 4], "complexity": [3, 1], "task": [3, 1]}


def test_served_outputs_match_the_in_process_classifier(triton):
    from pointsman.policy.analysis.classifier import OnnxPromptClassifier

    prompt = "How do I sort a dictionary by value in Python?"
    local_probs, local_complexity = OnnxPromptClassifier.from_folder(triton.repository / MODEL / "1").predict([prompt])
    status, body = infer(triton, [prompt])

    assert status == 200, body
    np.testing.assert_allclose(outputs(body)["probabilities"], local_probs[0], atol=1e-4)
    assert outputs(body)["complexity"][0] == pytest.approx(float(local_complexity[0]), abs=1e-4)


def test_concurrent_requests_are_batched_by_triton(triton):
    def stats() -> tuple[int, int]:
        status, body = triton.get(f"/v2/models/{MODEL}/stats")
        assert status == 200, body
        model = body["model_stats"][0]
        return int(model["inference_count"]), int(model["execution_count"])

    prompts = [f"Write a poem about the number {i}" for i in range(48)]
    before, began = stats(), time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda p: infer(triton, [p]), prompts))
    after, probes = stats(), classifier_probes_within(time.monotonic() - began)

    assert all(status == 200 and outputs(body)["task"] == ["creative"] for status, body in answers)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert len(prompts) <= inferences <= len(prompts) + probes  # the router's probes are counted too
    assert executions < inferences, "the dynamic batcher never grouped two requests"


@pytest.mark.parametrize("body", [
    {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1, 1], "data": ["   "]}]},
    {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1, 1], "data": [""]}]},
])
def test_empty_prompt_is_an_error_naming_text_input(triton, body):
    status, answer = triton.post(f"/v2/models/{MODEL}/infer", body)

    assert status == 400
    assert "'text_input'" in answer["error"]


def test_missing_input_is_refused_by_triton(triton):
    status, answer = triton.post(f"/v2/models/{MODEL}/infer", {"inputs": []})

    assert status == 400 and "text_input" in answer["error"]


def test_config_has_dynamic_batching_on(triton):
    config = triton.model_config(MODEL)

    assert config["max_batch_size"] > 0
    assert "dynamic_batching" in config
