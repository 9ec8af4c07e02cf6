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

SERVED = [("router", RouterParams, ROUTER_OUTPUTS), ("recommend", RecommendParams, RECOMMEND_OUTPUTS),
          ("gpt2", GenerateParams, LLM_OUTPUTS), ("codegen", GenerateParams, LLM_OUTPUTS)]


def tensors(entries: list[dict]) -> list[tuple[str, str]]:
    return [(e["name"], e["data_type"]) for e in entries]


@pytest.mark.parametrize(("model", "params", "outputs"), SERVED, ids=[s[0] for s in SERVED])
def test_served_config_declares_the_contract_tensors(triton, model, params, outputs):
    config = triton.model_config(model)

    assert tensors(config["input"]) == [(t.name, t.data_type) for t in input_tensors(params)]
    assert all(e.get("optional") for e in config["input"])
    assert tensors(config["output"]) == [(t.name, t.data_type) for t in outputs]


def test_language_models_run_on_the_pointsman_llm_backend(triton):
    assert triton.model_config("gpt2")["backend"] == "pointsman_llm"
    assert triton.model_config("gpt2")["model_transaction_policy"]["decoupled"] is True


def test_bls_types_match_the_served_language_model(triton, fake_pb_utils):
    bls = importlib.import_module("pointsman.triton_adapters.bls")
    served = dict(tensors(triton.model_config("gpt2")["input"]))

    assert {name: NUMPY_TYPES[served[name]] for name in bls.LLM_FIELD_TYPES} == bls.LLM_FIELD_TYPES


def test_a_router_request_with_every_generation_field_reaches_the_model(triton):
    fields = {"text_input": "def add(a, b):", "max_tokens": 3, "temperature": 0.7, "top_k": 5, "top_p": 0.9,
              "seed": 7, "stream": False, "ignore_eos": True, "model": "gpt2"}
    # messages (a chat) stands in for text_input: the next test sends it
    assert set(fields) - {"model"} == set(GenerateParams.model_fields) - {"messages"}

    status, body = triton.generate("router", fields)

    assert status == 200, body
    assert body["selected_model"] == "gpt2" and body["tokens"] == 3


def test_a_router_chat_request_reaches_the_model_and_counts_its_rendered_prompt(triton):
    chat = json.dumps([{"role": "user", "content": "Hi"}])
    status, body = triton.generate("router", {"messages": chat, "max_tokens": 2, "ignore_eos": True,
                                              "model": "gpt2"})
    assert status == 200, body
    assert body["tokens"] == 2 and body["prompt_tokens"] > len("User: Hi") // 4
