"""The configs Triton serves (completed by each model's auto_complete_config) are the contract's.

A second check on the derived BLS types: a router request that sets every generation
field reaches the language model through BLS, which Triton refuses on any type mismatch.
"""

from __future__ import annotations

import importlib
import json

import pytest

from pointsman.policy.contract import (
    LLM_OUTPUTS,
    RECOMMEND_OUTPUTS,
    ROUTER_OUTPUTS,
    GenerateParams,
    RecommendParams,
    RouterParams,
    input_tensors,
)
from pointsman.triton_adapters.model_config import NUMPY_TYPES

SERVED = [("router", RouterParams, ROUTER_OUTPUTS), ("router_stream", RouterParams, ROUTER_OUTPUTS),
          ("recommend", RecommendParams, RECOMMEND_OUTPUTS),
          ("gpt2", GenerateParams, LLM_OUTPUTS), ("gpt2_stream", GenerateParams, LLM_OUTPUTS),
          ("codegen", GenerateParams, LLM_OUTPUTS), ("codegen_stream", GenerateParams, LLM_OUTPUTS)]
# each streaming entry point and its non-decoupled twin
PAIRS = [("router", "router_stream"), ("gpt2", "gpt2_stream"), ("distilgpt2", "distilgpt2_stream"),
         ("codegen", "codegen_stream")]


def tensors(entries: list[dict]) -> list[tuple[str, str]]:
    return [(e["name"], e["data_type"]) for e in entries]


@pytest.mark.parametrize(("model", "params", "outputs"), SERVED, ids=[s[0] for s in SERVED])
def test_served_config_declares_the_contract_tensors(triton, model, params, outputs):
    config = triton.model_config(model)

    assert tensors(config["input"]) == [(t.name, t.data_type) for t in input_tensors(params)]
    assert all(e.get("optional") for e in config["input"])
    assert {e["name"]: [int(d) for d in e["dims"]] for e in config["input"]} == {
        t.name: list(t.dims) for t in input_tensors(params)}
    assert tensors(config["output"]) == [(t.name, t.data_type) for t in outputs]


def test_language_models_run_on_the_pointsman_llm_backend(triton):
    assert triton.model_config("gpt2_stream")["backend"] == triton.model_config("gpt2")["backend"] == "pointsman_llm"


@pytest.mark.parametrize(("twin", "streaming"), PAIRS, ids=[p[0] for p in PAIRS])
def test_each_streaming_model_has_a_non_decoupled_twin_with_the_same_tensors(triton, twin, streaming):
    plain, stream = triton.model_config(twin), triton.model_config(streaming)

    assert plain.get("model_transaction_policy", {}).get("decoupled", False) is False
    assert stream["model_transaction_policy"]["decoupled"] is True
    assert plain["input"] == stream["input"] and plain["output"] == stream["output"]
    assert plain["parameters"]["forward_to"]["string_value"] == streaming


def test_bls_types_match_the_served_language_model(triton, fake_pb_utils):
    bls = importlib.import_module("pointsman.triton_adapters.bls")
    served = dict(tensors(triton.model_config("gpt2_stream")["input"]))

    assert {name: NUMPY_TYPES[served[name]] for name in bls.LLM_FIELD_TYPES} == bls.LLM_FIELD_TYPES


def test_a_router_request_with_every_generation_field_reaches_the_model(triton):
    fields = {"text_input": "def add(a, b):", "max_tokens": 3, "temperature": 0.7, "top_k": 5, "top_p": 0.9,
              "seed": 7, "stream": False, "ignore_eos": True, "repetition_penalty": 1.1, "presence_penalty": 0.5,
              "frequency_penalty": 0.5, "stop": ["zzz", "qqq"], "min_tokens": 3, "exclude_input_in_output": True,
              "model": "gpt2"}
    # messages (a chat) stands in for text_input: the next test sends it
    assert set(fields) - {"model"} == set(GenerateParams.model_fields) - {"messages"}

    for router in ("router", "router_stream"):
        status, body = triton.generate(router, fields)

        assert status == 200, body
        assert body["selected_model"] == "gpt2" and body["tokens"] == 3


def test_a_router_chat_request_reaches_the_model_and_counts_its_rendered_prompt(triton):
    chat = json.dumps([{"role": "user", "content": "Hi"}])
    status, body = triton.generate("router", {"messages": chat, "max_tokens": 2, "ignore_eos": True,
                                              "model": "gpt2"})
    assert status == 200, body
    assert body["tokens"] == 2 and body["prompt_tokens"] > len("User: Hi") // 4
