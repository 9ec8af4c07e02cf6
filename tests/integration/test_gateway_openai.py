"""The official openai SDK, sync and async, streaming and not, against the gateway on a real tritonserver.

    .venv/bin/pytest tests/integration/test_gateway_openai.py -q

Requests use greedy decoding (the router's default), so a streamed answer must equal the
same request unstreamed, and manual requests name their model.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openai
import pytest

from pointsman.engine.chat_template import ChatTemplate
from pointsman.engine.tokenizer import TextTokenizer

DEMO_MODELS = ("gpt2", "distilgpt2", "codegen")

CODE = "def add(a, b):"
POEM = [{"role": "system", "content": "You write poems."}, {"role": "user", "content": "Write a poem about rain"}]


@pytest.fixture(scope="module")
def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def aclient(gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def test_models_list_names_auto_and_every_demo_model(client):
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "auto" and set(DEMO_MODELS) <= set(ids)


def test_completion_with_auto_names_the_chosen_model_in_body_and_headers(client):
    raw = client.completions.with_raw_response.create(model="auto", prompt=CODE, max_tokens=6,
                                                      extra_body={"ignore_eos": True})
    completion = raw.parse()
    assert raw.headers["x-pointsman-selection-mode"] == "auto"
    assert completion.model == raw.headers["x-pointsman-selected-model"] == "codegen"
    assert raw.headers["x-pointsman-fallback-used"] == "false" and raw.headers["x-pointsman-selection-reason"]
    assert raw.headers["x-pointsman-request-id"] in completion.id
    assert completion.usage.completion_tokens == 6 and completion.choices[0].finish_reason == "length"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6


def test_completion_naming_a_model_is_manual(client):
    raw = client.completions.with_raw_response.create(model="distilgpt2", prompt=CODE, max_tokens=3)
    assert raw.parse().model == "distilgpt2" and raw.headers["x-pointsman-selection-mode"] == "manual"


def test_preferred_model_as_extra_body_is_hybrid(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=POEM, max_completion_tokens=3,
        extra_body={"preferred_model": "codegen", "fallback_mode": "fastest"})
    assert raw.parse().model == "codegen" and raw.headers["x-pointsman-selection-mode"] == "hybrid"


def test_sync_streamed_chat_equals_the_unstreamed_answer_and_reports_usage(client):
    whole = client.chat.completions.create(model="gpt2", messages=POEM, max_tokens=8,
                                           extra_body={"ignore_eos": True})
    chunks = list(client.chat.completions.create(model="gpt2", messages=POEM, max_tokens=8, stream=True,
                                                 stream_options={"include_usage": True},
                                                 extra_body={"ignore_eos": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.model == "gpt2" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_chat_prompt_is_the_models_template_rendering(client, triton):
    """The demo models have no chat template: the plain one renders the chat, counted by the model's tokenizer."""
    answer = client.chat.completions.create(model="gpt2", messages=POEM, max_tokens=2)
    tokenizer = TextTokenizer.from_file(str(Path(triton.repository) / "gpt2_stream" / "1" / "tokenizer.json"))
    expected = len(tokenizer.encode(ChatTemplate.plain().render(POEM), add_special_tokens=False))
    assert answer.usage.prompt_tokens == expected


def test_async_completion_and_async_stream(aclient):
    async def run():
        async with aclient:
            whole = await aclient.completions.create(model="codegen", prompt=CODE, max_tokens=6,
                                                     extra_body={"ignore_eos": True})
            stream = await aclient.completions.create(model="codegen", prompt=CODE, max_tokens=6, stream=True,
                                                      extra_body={"ignore_eos": True})
            pieces = [chunk.choices[0].text async for chunk in stream if chunk.choices]
            return whole, pieces

    whole, pieces = asyncio.run(run())
    assert "".join(pieces) == whole.choices[0].text and whole.usage.completion_tokens == 6


def test_concurrent_requests_share_one_stream_and_each_gets_its_own_answer(aclient):
    """Unstreamed requests ride one gRPC stream: answers and errors must reach the request they belong to."""
    wanted = [DEMO_MODELS[i % 3] for i in range(9)]

    async def run():
        async with aclient:
            asks = [aclient.chat.completions.create(model=model, max_tokens=4,
                                                    messages=[{"role": "user", "content": f"Tell me about rain {i}"}])
                    for i, model in enumerate(wanted)]
            asks.append(aclient.completions.create(model="gpt2", prompt="word " * 600, max_tokens=4))  # too long
            return await asyncio.gather(*asks, return_exceptions=True)

    *answers, refused = asyncio.run(run())
    assert [a.model for a in answers] == wanted and len({a.id for a in answers}) == len(wanted)
    assert isinstance(refused, openai.BadRequestError) and refused.body["param"] == "prompt"


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"n": 2}, "n"),
    ({"logit_bias": {"50": 10}}, "logit_bias"),
    ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"temperature": "warm"}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"extra_body": {"fallback_mode": "sometimes"}}, "fallback_mode"),
])
def test_what_cannot_be_honoured_is_a_bad_request_naming_the_parameter(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="auto", messages=POEM, **kwargs)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param and param in caught.value.body["message"]


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="no-such-model", prompt=CODE)
    assert caught.value.body["param"] == "model"


def test_prompt_too_long_for_the_model_is_the_routers_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="gpt2", prompt="word " * 600, max_tokens=4)
    assert caught.value.body["param"] == "prompt" and "context length" in caught.value.body["message"]


def test_openai_generation_fields_reach_the_router(client):
    """stop, penalties and seed map onto the router's fields (declared by branch twins)."""
    answer = client.completions.create(model="gpt2", prompt=CODE, max_tokens=8, stop=["\n\n"], seed=7,
                                       temperature=0.7, top_p=0.9, presence_penalty=0.5, frequency_penalty=0.5)
    assert answer.model == "gpt2" and answer.usage.completion_tokens <= 8
    assert "\n\n" not in answer.choices[0].text


def test_raw_error_body_is_openai_shaped(gateway):
    import httpx

    reply = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{not json", timeout=30)
    assert reply.status_code == 400
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
    assert json.loads(reply.text)["error"]["param"] == "body"
