"""Gateway fields -> gRPC inputs typed by the contract (no metadata round trip), aliases resolved."""

from __future__ import annotations

from pointsman.gateway.triton_link import ROUTER_STREAM_MODEL, build_inputs


def test_inputs_take_the_contracts_types_and_canonical_names():
    inputs = {i.name(): i for i in build_inputs(ROUTER_STREAM_MODEL, {
        "prompt": "hi", "max_length": 3, "temperature": 0.5, "auto_select": True, "seed": 7, "model": None})}
    assert set(inputs) == {"text_input", "max_tokens", "temperature", "auto_select", "seed"}  # None is left out
    assert {name: i.datatype() for name, i in inputs.items()} == {
        "text_input": "BYTES", "max_tokens": "INT32", "temperature": "FP32", "auto_select": "BOOL", "seed": "UINT64"}
    assert all(i.shape() == [1] for i in inputs.values())


def test_a_list_becomes_a_one_dimensional_tensor():
    (messages,) = build_inputs(ROUTER_STREAM_MODEL, {"messages": ['[{"role": "user", "content": "a"}]']})
    assert messages.shape() == [1] and messages.datatype() == "BYTES"
