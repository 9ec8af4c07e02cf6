"""Everything that repeats the contract is derived from it: configs, BLS types, client fields.

The served side (the configs Triton completes at load time) is checked against a real
server in tests/integration/test_contract_served.py.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from pointsman.client.request import GENERATION_FIELDS
from pointsman.export.repository import BACKEND, LlmFolderSpec, llm_config
from pointsman.policy.contract import (
    LLM_OUTPUTS,
    RECOMMEND_OUTPUTS,
    ROUTER_OUTPUTS,
    GenerateParams,
    RecommendParams,
    RouterParams,
    field_names,
    input_tensors,
)
from pointsman.triton_adapters.model_config import NUMPY_TYPES, ContractMismatch, complete_config

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"


class FakeAutoCompleteConfig:
    """The calls Triton's python backend ModelConfig offers to auto_complete_config, over a dict."""

    def __init__(self, config: dict) -> None:
        self._config = copy.deepcopy(config)

    def as_dict(self) -> dict:
        return self._config

    def add_input(self, entry: dict) -> None:
        self._config.setdefault("input", []).append(entry)

    def add_output(self, entry: dict) -> None:
        self._config.setdefault("output", []).append(entry)

    def set_max_batch_size(self, size: int) -> None:
        self._config["max_batch_size"] = size

    def set_model_transaction_policy(self, policy: dict) -> None:
        self._config["model_transaction_policy"] = policy


def declared(entries: list[dict]) -> list[tuple[str, str]]:
    return [(e["name"], e["data_type"]) for e in entries]


@pytest.mark.parametrize(("params", "outputs", "decoupled"), [
    (GenerateParams, LLM_OUTPUTS, True), (RouterParams, ROUTER_OUTPUTS, True),
    (RecommendParams, RECOMMEND_OUTPUTS, False),
])
def test_auto_complete_declares_exactly_the_contract(params, outputs, decoupled):
    config = complete_config(FakeAutoCompleteConfig({"name": "m"}), input_tensors(params), outputs,
                             decoupled=decoupled).as_dict()

    assert [e["name"] for e in config["input"]] == list(field_names(params))
    assert all(e["optional"] and e["dims"] == [1] for e in config["input"])
    assert declared(config["output"]) == [(o.name, o.data_type) for o in outputs]
    assert config["max_batch_size"] == 0
    assert config["model_transaction_policy"] == {"decoupled": decoupled}


def test_auto_complete_keeps_a_matching_hand_declared_tensor_once():
    hand = {"name": "router", "input": [{"name": "max_tokens", "data_type": "TYPE_INT32", "dims": [1]}]}

    config = complete_config(FakeAutoCompleteConfig(hand), input_tensors(RouterParams), ROUTER_OUTPUTS,
                             decoupled=True).as_dict()

    assert [e["name"] for e in config["input"]].count("max_tokens") == 1


def test_a_config_that_declares_a_tensor_with_another_type_refuses_to_load():
    hand = {"name": "router", "input": [{"name": "max_tokens", "data_type": "TYPE_INT64", "dims": [1]}]}

    with pytest.raises(ContractMismatch, match="model 'router': input 'max_tokens' is TYPE_INT64 in config.pbtxt "
                                               "but TYPE_INT32 in pointsman.policy.contract"):
        complete_config(FakeAutoCompleteConfig(hand), input_tensors(RouterParams), ROUTER_OUTPUTS, decoupled=True)


@pytest.mark.parametrize("model", ["router", "recommend"])
def test_committed_configs_leave_the_contract_tensors_to_auto_complete(model):
    config = text_format.Parse((REPOSITORY / model / "config.pbtxt").read_text(), mc.ModelConfig())

    assert not config.input and not config.output, f"{model}/config.pbtxt repeats the contract"


def test_exported_llm_config_names_the_backend_and_repeats_no_tensor():
    config = llm_config(LlmFolderSpec(name="m", context_length=64, eos_token_id=0))

    assert config.backend == BACKEND == "pointsman_llm"
    assert not config.input and not config.output
    assert config.model_transaction_policy.decoupled


def test_bls_tensor_types_are_the_contract_types(fake_pb_utils):
    bls = importlib.import_module("pointsman.triton_adapters.bls")

    expected = {t.name: NUMPY_TYPES[t.data_type] for t in input_tensors(GenerateParams)}
    assert bls.LLM_FIELD_TYPES == expected
    assert bls.LLM_OUTPUT_NAMES == [o.name for o in LLM_OUTPUTS]


def test_client_generation_fields_are_the_contract_fields():
    assert GENERATION_FIELDS == field_names(GenerateParams)


def test_every_router_generation_field_is_a_language_model_field_of_the_same_type():
    router = {t.name: t.data_type for t in input_tensors(RouterParams)}

    for tensor in input_tensors(GenerateParams):
        assert router[tensor.name] == tensor.data_type


def test_no_language_model_folder_holds_a_model_py():
    for config_file in REPOSITORY.glob("*/config.pbtxt"):
        config = text_format.Parse(config_file.read_text(), mc.ModelConfig())
        if config.backend == BACKEND:
            assert not list(config_file.parent.rglob("model.py")), f"{config_file.parent.name} carries a model.py"
