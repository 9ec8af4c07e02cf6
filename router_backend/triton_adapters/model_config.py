"""Triton model configs derived from the contract: auto-completed inputs and outputs, numpy types.

    @staticmethod
    def auto_complete_config(config):
        return complete_config(config, input_tensors(RouterParams), ROUTER_OUTPUTS, decoupled=True)

Triton calls a Python model's auto_complete_config before loading it, as Triton's vLLM
backend does for its own inputs: so no config.pbtxt repeats the contract. A tensor that
a config.pbtxt does declare must match the contract, or the model refuses to load.
No triton_python_backend_utils import: `config` is the ModelConfig object Triton hands in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from pointsman.policy.contract import LLM_OUTPUTS, RECOMMEND_OUTPUTS, ROUTER_OUTPUTS, TensorSpec

NUMPY_TYPES: dict[str, Any] = {
    "TYPE_STRING": np.object_, "TYPE_BOOL": np.bool_, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64,
    "TYPE_UINT32": np.uint32, "TYPE_UINT64": np.uint64, "TYPE_FP16": np.float16, "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
}
# every declared output's numpy type, so a response tensor always has its config's type
OUTPUT_TYPES: dict[str, Any] = {
    spec.name: NUMPY_TYPES[spec.data_type] for spec in (*LLM_OUTPUTS, *ROUTER_OUTPUTS, *RECOMMEND_OUTPUTS)
}


class ContractMismatch(ValueError):
    """A config.pbtxt declares a tensor differently from the contract."""


def numpy_types(specs: Iterable[TensorSpec]) -> dict[str, Any]:
    """Name -> numpy dtype, e.g. for the tensors of a BLS request."""
    return {spec.name: NUMPY_TYPES[spec.data_type] for spec in specs}


def _as_entry(spec: TensorSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "data_type": spec.data_type, "dims": list(spec.dims)}
    if spec.optional:
        entry["optional"] = True
    return entry


def _declare(model: str, kind: str, declared: list[dict], specs: Iterable[TensorSpec], add) -> None:
    by_name = {t["name"]: t for t in declared}
    for spec in specs:
        current = by_name.get(spec.name)
        if current is None:
            add(_as_entry(spec))
        elif current.get("data_type") != spec.data_type:
            raise ContractMismatch(f"model '{model}': {kind} '{spec.name}' is {current.get('data_type')} in "
                                   f"config.pbtxt but {spec.data_type} in pointsman.policy.contract")


def complete_config(config, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec], *, decoupled: bool):
    """Add the contract's tensors a config lacks; set Triton batching off and the transaction policy."""
    current = config.as_dict()
    model = current.get("name", "?")
    _declare(model, "input", current.get("input", []), inputs, config.add_input)
    _declare(model, "output", current.get("output", []), outputs, config.add_output)
    # the engine and the router batch themselves: Triton's batcher stays off
    config.set_max_batch_size(0)
    config.set_model_transaction_policy({"decoupled": decoupled})
    return config
