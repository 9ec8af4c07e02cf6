"""The TensorRT-LLM and vLLM conventions: what the router sends for each field, and what it refuses."""

from __future__ import annotations

import json

import pytest

from pointsman.errors import InvalidRequest
from pointsman.policy.catalog import ModelEntry, Signature, TensorDecl
from pointsman.policy.conventions import ResponseReader, request_tensors


def decl(name: str, data_type: str, dims: tuple[int, ...] = (1,)) -> TensorDecl:
    return TensorDecl(name=name, data_type=data_type, dims=dims)


# tensorrt_llm_bls's published inputs (tensorrtllm_backend all_models/inflight_batcher_llm), batched
TRTLLM = Signature(batched=True, outputs=("text_output",), inputs=(
    decl("text_input", "TYPE_STRING", (-1,)), decl("max_tokens", "TYPE_INT32", (-1,)),
    decl("stop_words", "TYPE_STRING", (-1,)), decl("end_id", "TYPE_INT32"), decl("top_k", "TYPE_INT32"),
    decl("top_p", "TYPE_FP32"), decl("temperature", "TYPE_FP32"), decl("repetition_penalty", "TYPE_FP32"),
    decl("min_length", "TYPE_INT32"), decl("presence_penalty", "TYPE_FP32"), decl("frequency_penalty", "TYPE_FP32"),
    decl("random_seed", "TYPE_UINT64"), decl("stream", "TYPE_BOOL")))
# vllm_backend's auto-completed inputs (src/model.py)
VLLM = Signature(outputs=("text_output", "finish_reason", "num_output_tokens"), inputs=(
    decl("text_input", "TYPE_STRING"), decl("stream", "TYPE_BOOL"), decl("sampling_parameters", "TYPE_STRING"),
    decl("exclude_input_in_output", "TYPE_BOOL"), decl("return_finish_reason", "TYPE_BOOL"),
    decl("return_num_output_tokens", "TYPE_BOOL")))


def entry(interface: str, signature: Signature) -> ModelEntry:
    return ModelEntry(name="big", interface=interface, capabilities=("general",), context_length=4096,
                      specialization_score={t: 0.5 for t in ("coding", "creative", "qa", "reasoning")},
                      quality_prior=0.5, signature=signature)


def by_name(tensors) -> dict:
    return {t.name: t for t in tensors}


def test_trtllm_gets_one_typed_batched_tensor_per_field() -> None:
    sent = by_name(request_tensors(entry("tensorrtllm", TRTLLM), {
        "text_input": "def f():", "max_tokens": 8, "seed": 7, "min_tokens": 2, "stop": ("\n\n", "###"),
        "temperature": 0.7, "stream": True}))

    assert sent["text_input"].shape == (1, 1) and sent["text_input"].values == ("def f():",)
    assert (sent["max_tokens"].data_type, sent["max_tokens"].values) == ("TYPE_INT32", (8,))
    assert (sent["random_seed"].data_type, sent["random_seed"].values) == ("TYPE_UINT64", (7,))
    assert sent["min_length"].values == (2,)
    assert sent["stop_words"].shape == (1, 2) and sent["stop_words"].values == ("\n\n", "###")
    assert sent["top_p"].values == (1.0,)  # sampling, not TensorRT-LLM's greedy default
    assert sent["stream"].values == (True,)


def test_trtllm_greedy_is_top_k_one_and_max_tokens_is_always_sent() -> None:
    sent = by_name(request_tensors(entry("tensorrtllm", TRTLLM), {"text_input": "hi", "temperature": 0.0}))

    assert "temperature" not in sent and sent["top_k"].values == (1,)
    assert sent["max_tokens"].values == (20,)  # the router's default, not the engine's


def test_vllm_gets_sampling_parameters_as_one_json_string_and_its_switches() -> None:
    sent = by_name(request_tensors(entry("vllm", VLLM), {
        "text_input": "def f():", "max_tokens": 8, "top_k": 0, "seed": 3, "stop": ("\n",), "ignore_eos": True,
        "stream": True}))

    assert json.loads(sent["sampling_parameters"].values[0]) == {
        "max_tokens": 8, "top_k": -1, "seed": 3, "stop": ["\n"], "ignore_eos": True}
    assert sent["exclude_input_in_output"].values == (True,)  # vLLM would prepend the prompt otherwise
    assert sent["return_finish_reason"].values == (True,) and sent["return_num_output_tokens"].values == (True,)
    assert "return_num_input_tokens" not in sent  # not declared by this model: not sent
    assert sent["text_input"].shape == (1,)


@pytest.mark.parametrize(("interface", "signature", "fields", "field", "phrase"), [
    ("tensorrtllm", TRTLLM, {"ignore_eos": True}, "ignore_eos", "the convention has no input for it"),
    ("tensorrtllm", TRTLLM, {"exclude_input_in_output": False}, "exclude_input_in_output",
     "declares no 'exclude_input_in_output' input"),
    ("tensorrtllm", Signature(inputs=(decl("text_input", "TYPE_STRING"),)), {"seed": 1}, "seed",
     "declares no 'random_seed' input"),
    ("vllm", VLLM, {"messages": '[{"role": "user", "content": "hi"}]'}, "messages", "takes a prompt only"),
    ("tensorrtllm", TRTLLM, {"messages": '[{"role": "user", "content": "hi"}]'}, "messages", "takes a prompt only"),
])
def test_a_field_the_convention_cannot_take_is_an_error_naming_field_and_model(
        interface, signature, fields, field, phrase) -> None:
    with pytest.raises(InvalidRequest) as caught:
        request_tensors(entry(interface, signature), {"text_input": "hi", **fields})

    assert caught.value.field == field
    assert str(caught.value).startswith(f"invalid '{field}': model 'big' (")
    assert phrase in str(caught.value)


def test_trtllm_default_exclude_input_is_not_an_error_when_undeclared() -> None:
    sent = by_name(request_tensors(entry("tensorrtllm", TRTLLM), {"text_input": "hi", "exclude_input_in_output": True}))
    assert "exclude_input_in_output" not in sent


def test_reader_joins_pieces_and_counts_vllm_tokens() -> None:
    reader = ResponseReader("vllm")
    for out in ({"text_output": b"def", "num_output_tokens": 1, "finish_reason": "None"},
                {"text_output": b" f", "num_output_tokens": 2, "finish_reason": b"length"}):
        reader.read(out)

    assert (reader.text, reader.tokens, reader.finish_reason) == ("def f", 3, "length")


def test_reader_reports_an_unreported_finish_as_unknown() -> None:
    reader = ResponseReader("tensorrtllm")
    reader.read({"text_output": "x"})
    assert (reader.tokens, reader.finish_reason) == (0, "unknown")
