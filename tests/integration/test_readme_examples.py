"""Every generating example in the README gives readable text on the served demo models.

    .venv/bin/pytest -q -s tests/integration/test_readme_examples.py   # -s prints each answer

The requests are the README's own (curl to the router and to gpt2, the Python client, the
OpenAI SDK through the gateway). "Readable" is tests/readable.py's rule: visible, word-like,
not looping. The demo models reach it with the penalties their config.pbtxt sets as defaults
(export.demo_models.DEMO_SAMPLING_DEFAULTS); a request that names a penalty overrides them.
"""

from __future__ import annotations

import json

import pytest

from tests.readable import readability_problems

# (model to POST to, body) exactly as in README.md's curl and client examples
ROUTER_EXAMPLES = [
    ("router", {"text_input": "def add(a, b):", "model": "codegen", "max_tokens": 16}),
    ("router", {"text_input": "def fibonacci(n):", "auto_select": True}),
    ("router", {"text_input": "Write a poem about the autumn rain", "auto_select": True}),
    ("router", {"text_input": "Write a poem", "preferred_model": "gpt2", "fallback_mode": "auto"}),
    ("router", {"text_input": "def add(a, b):"}),  # the KServe /infer example's tensor, as JSON
    ("router", {"text_input": "def add(a, b):", "auto_select": True, "max_tokens": 16}),  # the Python client
    ("gpt2", {"text_input": "def add(a, b):", "max_tokens": 16}),
]


def _show(label: str, model: str, text: str) -> None:
    print(f"\n[readme] {label} -> {model}: {text!r}")  # noqa: T201 - the note quotes these (pytest -s)


@pytest.mark.parametrize(("target", "body"), ROUTER_EXAMPLES, ids=[json.dumps(b) for _, b in ROUTER_EXAMPLES])
def test_readme_generate_example_answers_readable_text(triton, target: str, body: dict) -> None:
    status, answer = triton.generate(target, body)
    assert status == 200 and "error" not in answer, answer
    _show(json.dumps(body), answer.get("selected_model", target), answer["text_output"])
    assert readability_problems(answer["text_output"]) == []


def test_readme_streaming_example_answers_readable_text(triton) -> None:
    body = {"text_input": "Tell me a story", "stream": True, "max_tokens": 32}
    events = triton.generate_stream("router_stream", body)
    assert events and not any("error" in e for e in events), events
    text = "".join(e.get("text_output", "") for e in events)
    _show(json.dumps(body), events[-1].get("selected_model", "?"), text)
    assert readability_problems(text) == []


def test_a_request_that_names_a_penalty_overrides_the_models_default(triton) -> None:
    """repetition_penalty 1 (and no presence/frequency) is the model's bare greedy output, loops and all."""
    body = {"text_input": "Write a poem", "max_tokens": 20}
    off = {**body, "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
    status, bare = triton.generate("gpt2", off)
    assert status == 200, bare
    status, default = triton.generate("gpt2", body)
    assert status == 200, default
    assert bare["text_output"] != default["text_output"]
    assert any("repeats" in p for p in readability_problems(bare["text_output"])), bare["text_output"]


def test_readme_openai_examples_answer_readable_text(gateway) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    answer = client.completions.create(model="auto", prompt="def fibonacci(n):", max_tokens=16)
    _show("completions auto 'def fibonacci(n):'", answer.model, answer.choices[0].text)
    assert readability_problems(answer.choices[0].text) == []
    chat = client.chat.completions.create(model="gpt2", messages=[{"role": "user", "content": "Hi"}], stream=True,
                                          stream_options={"include_usage": True},
                                          extra_body={"preferred_model": "gpt2", "fallback_mode": "fastest"})
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chat if chunk.choices)
    _show("chat gpt2 'Hi'", "gpt2", text)
    assert readability_problems(text) == []
