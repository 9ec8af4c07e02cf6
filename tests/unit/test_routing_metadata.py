"""Routing metadata from config parameters and the overlay: valid keys build an entry; errors name model and key."""

from __future__ import annotations

import pytest

from pointsman.errors import CatalogError
from pointsman.policy.catalog import TASKS
from pointsman.policy.routing_metadata import (
    KEYS,
    entry_from_parameters,
    parse_overlay,
    parse_task_scores,
    routing_parameters,
)

VALID = routing_parameters(interface="vllm", scores={"coding": 0.9, "creative": 0.2, "qa": 0.5, "reasoning": 0.3},
                           capabilities=("general", "coding"), quality_prior=0.7, context_length=4096,
                           tokens_per_second_prior=80.0)


def test_parameters_export_writes_read_back_as_the_same_entry() -> None:
    entry = entry_from_parameters("llama", {**VALID, "max_num_seqs": "8"})  # other parameters are not ours

    assert entry is not None
    assert (entry.name, entry.call_name, entry.interface) == ("llama", "llama", "vllm")
    assert entry.specialization_score == {"coding": 0.9, "creative": 0.2, "qa": 0.5, "reasoning": 0.3}
    assert (entry.capabilities, entry.quality_prior, entry.context_length) == (("general", "coding"), 0.7, 4096)
    assert (entry.tokens_per_second_prior, entry.time_to_first_token_prior) == (80.0, None)


def test_a_model_without_pointsman_parameters_is_not_routable() -> None:
    assert entry_from_parameters("router", {"worker_threads": "64"}) is None


def test_name_key_routes_an_engine_under_its_public_name() -> None:
    entry = entry_from_parameters("gpt2_stream", {**VALID, "pointsman.name": "gpt2"})

    assert entry is not None and (entry.name, entry.call_name) == ("gpt2", "gpt2_stream")


@pytest.mark.parametrize(("key", "value", "phrase"), [
    ("pointsman.interface", "onnx", "must be one of pointsman, tensorrtllm, vllm"),
    ("pointsman.task_score.coding", "high", "must be a number from 0 to 1"),
    ("pointsman.task_score.qa", "1.5", "must be a number from 0 to 1"),
    ("pointsman.task_score.reasoning", "nan", "must be a number from 0 to 1"),
    ("pointsman.quality_prior", "-0.1", "must be a number from 0 to 1"),
    ("pointsman.capabilities", "general,juggling", "comma-separated list of general, coding"),
    ("pointsman.context_length", "0", "greater than 0"),
    ("pointsman.context_length", "4k", "greater than 0"),
    ("pointsman.tokens_per_second_prior", "0", "greater than 0"),
    ("pointsman.time_to_first_token_prior", "soon", "greater than 0"),
    ("pointsman.name", "has space", "letters, digits"),
    ("pointsman.task_scores", "coding=1", "unknown key; accepted keys: interface"),
])
def test_a_bad_value_names_the_model_and_the_key(key: str, value: str, phrase: str) -> None:
    with pytest.raises(CatalogError) as caught:
        entry_from_parameters("llama", {**VALID, key: value})

    assert f"model 'llama', key '{key}'" in str(caught.value)
    assert phrase in str(caught.value)


@pytest.mark.parametrize("missing", ["pointsman.interface", "pointsman.task_score.creative",
                                     "pointsman.capabilities", "pointsman.quality_prior", "pointsman.context_length"])
def test_a_missing_required_key_is_named(missing: str) -> None:
    with pytest.raises(CatalogError, match=f"model 'llama', key '{missing}': is required"):
        entry_from_parameters("llama", {k: v for k, v in VALID.items() if k != missing})


def test_overlay_values_win_over_the_config_key_by_key() -> None:
    overlay = parse_overlay('[llama]\nquality_prior = 0.95\ntask_score = { coding = 0.1 }\n'
                            'capabilities = ["general", "qa"]\n')["llama"]
    entry = entry_from_parameters("llama", VALID, overlay=overlay)

    assert entry is not None
    assert (entry.quality_prior, entry.specialization_score["coding"], entry.capabilities) == (
        0.95, 0.1, ("general", "qa"))
    assert entry.specialization_score["creative"] == 0.2  # not in the overlay: the config's value


def test_overlay_alone_makes_an_unedited_model_routable() -> None:
    text = ('[llama]\ninterface = "vllm"\ncapabilities = "general"\nquality_prior = 0.5\ncontext_length = 2048\n'
            '[llama.task_score]\ncoding = 0.5\ncreative = 0.5\nqa = 0.5\nreasoning = 0.5\n')
    entry = entry_from_parameters("llama", {}, overlay=parse_overlay(text)["llama"])

    assert entry is not None and entry.context_length == 2048


@pytest.mark.parametrize(("text", "phrase"), [
    ("[llama]\ncolour = 'red'\n", "model 'llama', key 'colour': unknown key"),
    ("llama = 3\n", "'llama' must be a table"),
    ("[llama\n", "pointsman_models.toml"),
])
def test_a_bad_overlay_names_the_file_model_and_key(text: str, phrase: str) -> None:
    with pytest.raises(CatalogError, match="pointsman_models.toml") as caught:
        parse_overlay(text)
    assert phrase in str(caught.value)


def test_task_scores_flag_parses_every_task() -> None:
    assert parse_task_scores("coding=0.9, creative=0.2,qa=0.5,reasoning=0.3") == {
        "coding": 0.9, "creative": 0.2, "qa": 0.5, "reasoning": 0.3}


@pytest.mark.parametrize(("text", "phrase"), [
    ("coding=0.9,creative=0.2,qa=0.5", "missing: reasoning"),
    ("coding=0.9,poetry=1", "'poetry=1': expected TASK=SCORE"),
    ("coding=2,creative=0.2,qa=0.5,reasoning=0.3", "'coding=2': the score must be a number from 0 to 1"),
    ("coding", "expected TASK=SCORE"),
])
def test_task_scores_flag_errors_say_what_is_wrong(text: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        parse_task_scores(text)


def test_documented_keys_cover_every_task() -> None:
    assert {f"task_score.{t}" for t in TASKS} <= set(KEYS)
