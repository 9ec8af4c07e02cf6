"""Tokenizing a request and checking it fits the model's context."""

from __future__ import annotations

import pytest

from pointsman.engine.sampling import SamplingParams
from pointsman.engine.tokenizer import build_generation_request
from pointsman.errors import InvalidRequest
from pointsman.policy.contract import parse_generate

CONTEXT = 16  # the fake tokenizer makes one token per character


@pytest.mark.parametrize(("prompt", "max_tokens", "field", "says"), [
    ("a" * 16, 1, "text_input", "at most 15"),
    ("a" * 40, 1, "text_input", "prompt is 40 tokens"),
    ("a" * 10, 7, "max_tokens", "at most 6"),
    ("a" * 15, 2, "max_tokens", "at most 1"),
    ("a", 16, "max_tokens", "at most 15"),
])
def test_request_beyond_the_context_names_the_field(fake_tokenizer, prompt: str, max_tokens: int,
                                                    field: str, says: str) -> None:
    params = parse_generate({"text_input": prompt, "max_tokens": max_tokens})
    with pytest.raises(InvalidRequest) as caught:
        build_generation_request(params, fake_tokenizer, CONTEXT, model="gpt2")
    assert caught.value.field == field
    assert says in str(caught.value) and "context length 16" in str(caught.value)


@pytest.mark.parametrize(("prompt", "max_tokens"), [("a", 1), ("a" * 10, 6), ("a" * 15, 1), ("abc", 13)])
def test_request_that_fits_the_context_is_built(fake_tokenizer, prompt: str, max_tokens: int) -> None:
    params = parse_generate({"text_input": prompt, "max_tokens": max_tokens, "temperature": 0.7, "top_k": 5,
                             "top_p": 0.9, "seed": 3, "stream": True, "ignore_eos": True})
    request = build_generation_request(params, fake_tokenizer, CONTEXT)
    assert request.prompt_ids == tuple(fake_tokenizer.encode(prompt))
    assert request.max_new_tokens == max_tokens
    assert request.sampling == SamplingParams(temperature=0.7, top_k=5, top_p=0.9, seed=3)
    assert (request.stream, request.ignore_eos) == (True, True)


def test_prompt_that_encodes_to_nothing_is_rejected() -> None:
    class Silent:
        def encode(self, text: str) -> list[int]:
            return []

    with pytest.raises(InvalidRequest) as caught:
        build_generation_request(parse_generate({"text_input": "x"}), Silent(), CONTEXT)
    assert caught.value.field == "text_input"


DEFAULTS = {"repetition_penalty": 1.2, "presence_penalty": 0.5, "frequency_penalty": 0.5}


@pytest.mark.parametrize(("given", "expected"), [
    ({}, DEFAULTS),
    ({"repetition_penalty": 1.0}, {**DEFAULTS, "repetition_penalty": 1.0}),  # named: off, whatever the default
    ({"presence_penalty": 0.0, "frequency_penalty": -1.0}, {**DEFAULTS, "presence_penalty": 0.0,
                                                            "frequency_penalty": -1.0}),
])
def test_the_models_default_penalties_fill_only_what_the_request_leaves_out(fake_tokenizer, given: dict,
                                                                             expected: dict) -> None:
    params = parse_generate({"text_input": "abc", "max_tokens": 2, **given})
    sampling = build_generation_request(params, fake_tokenizer, CONTEXT, defaults=DEFAULTS).sampling
    assert {name: getattr(sampling, name) for name in DEFAULTS} == expected


def test_config_default_penalties_are_read_and_a_bad_one_names_the_parameter() -> None:
    from pointsman.engine.sampling import model_defaults

    assert model_defaults({"default_repetition_penalty": "1.2", "default_presence_penalty": "0.5",
                           "context_length": "256"}) == {"repetition_penalty": 1.2, "presence_penalty": 0.5}
    assert model_defaults({}) == {}
    for key, value in (("default_repetition_penalty", "0"), ("default_frequency_penalty", "3"),
                       ("default_presence_penalty", "lots")):
        with pytest.raises(ValueError, match=key):
            model_defaults({key: value})
