"""The request contract: every bad input names its field and what is accepted."""

from __future__ import annotations

import pytest

from pointsman.errors import InvalidRequest
from pointsman.policy.contract import MAX_TOKENS_CAP, parse_generate, parse_router

PARSERS = [parse_generate, parse_router]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(("fields", "field", "says"), [
    ({"text_input": "x", "max_tokens": 0}, "max_tokens", "from 1 to 4096"),
    ({"text_input": "x", "max_tokens": -1}, "max_tokens", "from 1 to 4096"),
    ({"text_input": "x", "max_tokens": 5000}, "max_tokens", "from 1 to 4096"),
    ({"text_input": "x", "max_tokens": "abc"}, "max_tokens", "an integer"),
    ({"text_input": "x", "max_tokens": 2.5}, "max_tokens", "an integer"),
    ({"text_input": "x", "max_length": 0}, "max_tokens", "alias: max_length"),
    ({}, "text_input", "is required"),
    ({"max_tokens": 4}, "text_input", "is required"),
    ({"text_input": ""}, "text_input", "not blank"),
    ({"text_input": "   "}, "text_input", "not blank"),
    ({"text_input": " \n\t "}, "text_input", "not blank"),
    ({"prompt": "  "}, "text_input", "alias: prompt"),
    ({"prompt": ""}, "text_input", "alias: prompt"),
    ({"text_input": 5}, "text_input", "string"),
    ({"text_input": None}, "text_input", "string"),
    ({"text_input": "x", "top_p": 0}, "top_p", "(0, 1]"),
    ({"text_input": "x", "top_p": 1.5}, "top_p", "(0, 1]"),
    ({"text_input": "x", "top_k": -1}, "top_k", ">= 0"),
    ({"text_input": "x", "temperature": -0.5}, "temperature", "0 (greedy) to 100"),
    ({"text_input": "x", "temperature": "hot"}, "temperature", "a number"),
    ({"text_input": "x", "seed": -5}, "seed", "2**63-1"),
    ({"text_input": "x", "stream": "maybe"}, "stream", "true or false"),
    ({"text_input": "x", "ignore_eos": "sometimes"}, "ignore_eos", "true or false"),
])
def test_bad_generation_field_is_named_with_what_is_accepted(parse, fields: dict, field: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(fields)
    assert caught.value.field == field
    assert f"'{field}'" in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize(("fields", "field", "says"), [
    ({"text_input": "x", "fallback_mode": "bogus"}, "fallback_mode", "one of auto, fastest, none"),
    ({"text_input": "x", "model": ""}, "model", "loaded model"),
    ({"text_input": "x", "preferred_model": ""}, "preferred_model", "name of a model"),
    ({"text_input": "x", "min_quality": 2}, "min_quality", "from 0 to 1"),
    ({"text_input": "x", "max_response_time": 0}, "max_response_time", "> 0"),
    ({"text_input": "x", "auto_select": "perhaps"}, "auto_select", "true or false"),
])
def test_bad_router_field_is_named_with_what_is_accepted(fields: dict, field: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_router(fields)
    assert caught.value.field == field and says in str(caught.value)


@pytest.mark.parametrize(("parse", "misspelled", "listed"), [
    (parse_router, "modle", "model"),
    (parse_router, "max_token", "max_tokens"),
    (parse_generate, "temprature", "temperature"),
    (parse_generate, "model", "text_input"),  # a language model takes no model field
])
def test_unknown_field_is_rejected_listing_the_accepted_ones(parse, misspelled: str, listed: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse({"text_input": "x", misspelled: 1})
    message = str(caught.value)
    assert caught.value.field == misspelled
    assert "unknown field" in message and listed in message.split("accepted fields:")[1]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(("fields", "text", "max_tokens"), [
    ({"text_input": "hi"}, "hi", 20),
    ({"prompt": "hi"}, "hi", 20),
    ({"text_input": "hi", "max_length": 7}, "hi", 7),
    ({"prompt": "hi", "max_tokens": MAX_TOKENS_CAP}, "hi", MAX_TOKENS_CAP),
])
def test_aliases_and_defaults_fill_the_canonical_fields(parse, fields: dict, text: str, max_tokens: int) -> None:
    params = parse(fields)
    assert (params.text_input, params.max_tokens) == (text, max_tokens)


def test_generation_defaults_are_greedy_and_not_streamed() -> None:
    params = parse_generate({"text_input": "hi"})
    assert (params.temperature, params.top_k, params.top_p, params.seed) == (0.0, 0, 1.0, None)
    assert (params.stream, params.ignore_eos) == (False, False)


def test_router_defaults() -> None:
    params = parse_router({"text_input": "hi"})
    assert (params.model, params.auto_select, params.preferred_model) == (None, None, None)
    assert (params.fallback_mode, params.prefer_speed) == ("auto", False)


@pytest.mark.parametrize("mode", ["auto", "fastest", "none"])
def test_every_fallback_mode_is_accepted(mode: str) -> None:
    assert parse_router({"text_input": "hi", "fallback_mode": mode}).fallback_mode == mode


def test_parsed_params_are_frozen() -> None:
    params = parse_generate({"text_input": "hi"})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        params.max_tokens = 3  # type: ignore[misc]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("value", [True, "12", 12.0])
def test_token_counts_must_be_real_integers(parse, value) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse({"text_input": "hi", "max_tokens": value})
    assert caught.value.field == "max_tokens"
