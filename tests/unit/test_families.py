"""What export reads from a checkpoint's configs, and how the engine uses it (no model files).

    .venv/bin/pytest -q tests/unit/test_families.py
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pointsman.engine.decoder import (
    BYTES_PER_THREAD,
    default_threads,
    resolve_spinning,
    resolve_threads,
    session_options,
    spinning_fits,
)
from pointsman.engine.scheduler import GenerationEngine, GenerationRequest, greedy_reference
from pointsman.engine.tokenizer import parse_token_ids
from pointsman.export.families import SUPPORTED_MODEL_TYPES, check_supported, context_length, end_of_sequence_ids


def config(model_type: str = "llama", **fields) -> SimpleNamespace:
    return SimpleNamespace(model_type=model_type, **fields)


def test_an_unsupported_model_type_is_refused_with_the_supported_list() -> None:
    with pytest.raises(ValueError, match=r"model_type 'bert' is not supported \(supported: gpt2, codegen, "
                                         r"gpt_neox, llama, mistral, qwen2, phi3\)"):
        check_supported(config("bert"), "ckpt")


@pytest.mark.parametrize("model_type", SUPPORTED_MODEL_TYPES)
def test_every_supported_model_type_is_accepted(model_type: str) -> None:
    check_supported(config(model_type))


@pytest.mark.parametrize(("fields", "expected"), [
    ({"max_position_embeddings": 4096}, 4096),  # llama, mistral, qwen2, gpt_neox
    ({"n_positions": 1024}, 1024),  # gpt2
    ({"n_ctx": 2048}, 2048),  # codegen
    ({"max_position_embeddings": 131072, "rope_parameters": {  # phi3 longrope: stops at the original length
        "rope_type": "longrope", "original_max_position_embeddings": 4096}}, 4096),
    ({"max_position_embeddings": 8192, "rope_parameters": {  # dynamic NTK: the same
        "rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 4096}}, 4096),
    ({"max_position_embeddings": 131072, "rope_parameters": {  # llama3 scaling is static: the whole context
        "rope_type": "llama3", "original_max_position_embeddings": 8192}}, 131072),
])
def test_context_length_comes_from_the_config_and_stops_where_rope_would_switch(fields, expected) -> None:
    assert context_length(config(**fields)) == expected


def test_a_config_without_a_context_length_is_refused() -> None:
    with pytest.raises(ValueError, match="declares no context length"):
        context_length(config())


def test_end_of_sequence_ids_take_generation_config_list_then_config_then_tokenizer(tmp_path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [128001, 128009]}))
    ids = end_of_sequence_ids(tmp_path, config(eos_token_id=128001), SimpleNamespace(eos_token_id=2))
    assert ids == (128001, 128009, 2)


def test_a_checkpoint_without_any_eos_id_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="no eos_token_id"):
        end_of_sequence_ids(tmp_path, config(eos_token_id=None), SimpleNamespace(eos_token_id=None))


@pytest.mark.parametrize(("text", "expected"), [("2", (2,)), ("2,32000", (2, 32000)), ("", ())])
def test_token_id_parameters_parse_as_comma_separated_ids(text, expected) -> None:
    assert parse_token_ids("eos_token_id", text) == expected


def test_a_malformed_token_id_parameter_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="eos_token_id must be token ids separated by commas"):
        parse_token_ids("eos_token_id", "2;3")


def test_any_of_several_eos_ids_ends_generation(fake_decoder, fake_tokenizer, make_sink) -> None:
    prompt = tuple(fake_tokenizer.encode("abc"))
    free_run = greedy_reference(fake_decoder, prompt, 12)
    second_eos = free_run[4]  # the fake's own EOS never wins; this id ends the run where it first appears
    engine = GenerationEngine(fake_decoder, fake_tokenizer, eos_id=(0, second_eos))
    sink = make_sink()

    engine.submit(GenerationRequest(prompt_ids=prompt, max_new_tokens=12), sink)
    engine.run_until_idle()

    assert (sink.result.finish_reason, sink.result.token_ids) == ("eos", tuple(free_run[:free_run.index(second_eos)]))


@pytest.mark.parametrize(("model_bytes", "cores", "expected"), [
    (2 * 2**20, 2, 1),  # the demo models: one thread, the other core stays with Triton
    (BYTES_PER_THREAD, 8, 1),
    (BYTES_PER_THREAD + 1, 8, 2),
    (356 * 2**20, 2, 2),  # ~89 M parameters in float32: every core
    (1200 * 2**20, 16, 16),
])
def test_default_threads_follow_model_size_up_to_the_cores(model_bytes, cores, expected) -> None:
    assert default_threads(model_bytes, cores) == expected


def test_configured_threads_override_the_rule_and_bad_values_name_the_parameter() -> None:
    assert resolve_threads("3", 10, 2) == 3
    assert resolve_threads("auto", 10 * BYTES_PER_THREAD, 4) == 4
    assert resolve_threads(0, 10 * BYTES_PER_THREAD, 4) == 4
    with pytest.raises(ValueError, match="intra_op_threads must be auto or a positive integer"):
        resolve_threads("two", 10, 2)


def test_spinning_follows_the_setting_auto_follows_the_fit_and_bad_values_name_the_parameter() -> None:
    assert (resolve_spinning("off", fits=True), resolve_spinning(" ON "), resolve_spinning(True)) == (False, True, True)
    assert (resolve_spinning("auto", fits=True), resolve_spinning("Auto", fits=False)) == (True, False)
    assert resolve_spinning("auto") is False  # nothing known about the neighbours: block
    with pytest.raises(ValueError, match="intra_op_spinning must be one of auto, off, on .got 'yes'."):
        resolve_spinning("yes")


@pytest.mark.parametrize(("threads", "cores", "fits"), [
    ([2], 2, True),         # one model with every core
    ([1, 1], 2, True),      # two one-thread models, a core each
    ([2, 1], 2, False),     # a second model shares a core
    ([2, 2], 2, False),     # two models with every core each (1.5x to 2.2x slower steps when spinning)
    ([], 2, True),
])
def test_spinning_fits_only_when_every_engine_thread_has_a_core(threads, cores, fits) -> None:
    assert spinning_fits(threads, cores) is fits


@pytest.mark.parametrize("spinning", [False, True])
def test_spinning_threads_stop_when_a_run_returns(spinning) -> None:
    """Spinning or not, an idle model's threads never spin: force_spinning_stop is always set."""
    options = session_options(2, spinning)
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spinning else "0")
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
