"""Everything that repeats the contract is derived from it: configs, BLS types, client fields.

The served side (the configs Triton completes at load time) is checked against a real
server in tests/integration/test_contract_served.py.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from pointsman.client.request import GENERATION_FIELDS
from pointsman.export.repository import BACKEND, LlmFolderSpec, engine_name, llm_config, twin_config
from pointsman.policy.contract import (
    LLM_OUTPUTS,
    RECOMMEND_OUTPUTS,
    ROUTER_OUTPUTS,
    GenerateParams,
    RecommendParams,
    RouterParams,
    aliases,
    field_names,
    input_names,
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
    (GenerateParams, LLM_OUTPUTS, True), (GenerateParams, LLM_OUTPUTS, False),
    (RouterParams, ROUTER_OUTPUTS, True), (RouterParams, ROUTER_OUTPUTS, False),
    (RecommendParams, RECOMMEND_OUTPUTS, False),
])
def test_auto_complete_declares_exactly_the_contract(params, outputs, decoupled):
    config = complete_config(FakeAutoCompleteConfig({"name": "m"}), input_tensors(params), outputs,
                             decoupled=decoupled).as_dict()

    assert [e["name"] for e in config["input"]] == [*field_names(params), *aliases(params)]
    assert all(e["optional"] for e in config["input"])
    assert {e["name"]: e["dims"] for e in config["input"] if e["dims"] != [1]} == (
        {} if params is RecommendParams else {"stop": [-1]})
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


def test_every_alias_is_an_input_typed_as_its_field():
    for params in (GenerateParams, RouterParams, RecommendParams):
        specs = {t.name: t for t in input_tensors(params)}
        for alias, canonical in aliases(params).items():
            assert (specs[alias].data_type, specs[alias].dims) == (specs[canonical].data_type, specs[canonical].dims)
    assert {"prompt", "max_length", "min_length"} <= set(input_names(GenerateParams))


@pytest.mark.parametrize("model", ["router", "router_stream", "recommend"])
def test_committed_configs_leave_the_contract_tensors_to_auto_complete(model):
    config = text_format.Parse((REPOSITORY / model / "config.pbtxt").read_text(), mc.ModelConfig())

    assert not config.input and not config.output, f"{model}/config.pbtxt repeats the contract"


def test_exported_llm_config_names_the_backend_and_repeats_no_tensor():
    config = llm_config(LlmFolderSpec(name="m", context_length=64, eos_token_id=0))

    assert config.backend == BACKEND == "pointsman_llm"
    assert not config.input and not config.output
    assert config.model_transaction_policy.decoupled


def test_exported_twin_config_forwards_to_the_engine_and_repeats_no_tensor():
    config = twin_config("gpt2", engine_name("gpt2"))

    assert (config.name, config.backend, config.parameters["forward_to"].string_value) == (
        "gpt2", BACKEND, "gpt2_stream")
    assert not config.model_transaction_policy.decoupled
    assert not config.input and not config.output


def _model_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("twin", "engine", "path"), [
    ("router", "router_stream", None),
    ("gpt2", "gpt2_stream", Path(__file__).resolve().parents[2] / "router_backend/backends/pointsman_llm/model.py"),
])
def test_twin_and_streaming_model_declare_the_same_tensors(fake_pb_utils, twin, engine, path):
    fake_pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
    configs = {}
    for name, forward in ((twin, {"forward_to": {"string_value": engine}}), (engine, {})):
        module = _model_module(f"_{name}_model", path or REPOSITORY / name / "1" / "model.py")
        configs[name] = module.TritonPythonModel.auto_complete_config(
            FakeAutoCompleteConfig({"name": name, "parameters": forward})).as_dict()

    assert configs[twin]["input"] == configs[engine]["input"]
    assert configs[twin]["output"] == configs[engine]["output"]
    assert (configs[twin]["model_transaction_policy"], configs[engine]["model_transaction_policy"]) == (
        {"decoupled": False}, {"decoupled": True})


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
