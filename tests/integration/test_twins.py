"""Every client path against the real server: the non-decoupled twins and their streaming models.

Triton 2.51 refuses decoupled models on HTTP /infer and unary gRPC, so `router` and each
`<model>` are non-decoupled twins forwarding over gRPC to `router_stream` / `<model>_stream`.
Here tritonclient's infer() and async_infer (HTTP and gRPC), the generate endpoints and
gRPC streaming are each called as a user would, and their answers compared.
"""

from __future__ import annotations

import concurrent.futures
import urllib.request

import numpy as np
import pytest

from pointsman.client.request import build_inputs, input_specs, scalar
from pointsman.policy.selection.live import ENGINE_ACTIVE, parse_load
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

PROMPT = "def add(a, b):"
GREEDY = {"text_input": PROMPT, "max_tokens": 8, "ignore_eos": True}
# (model, extra fields): the router named the model manually, so both answer with gpt2's greedy text
TWINS = [("router", {"model": "gpt2"}), ("gpt2", {})]


def _client(triton, protocol: str):
    if protocol == "http":
        import tritonclient.http as module

        return module, module.InferenceServerClient(triton.http_address, concurrency=4)
    import tritonclient.grpc as module

    return module, module.InferenceServerClient(triton.grpc_url)


def _inputs(module, client, model: str, fields: dict) -> tuple[list, dict]:
    metadata = client.get_model_metadata(model) if module.__name__.endswith("http") else \
        client.get_model_metadata(model, as_json=True)
    return build_inputs(module.InferInput, input_specs(metadata), fields)


def _outputs(result) -> dict:
    names = ["text_output", "tokens", "finish_reason", "selected_model"]
    return {n: scalar(result.as_numpy(n)) for n in names if result.as_numpy(n) is not None}


def _reference(triton) -> dict:
    """gpt2's greedy answer through the streaming model (generate_stream), joined."""
    events = triton.generate_stream("gpt2_stream", {**GREEDY, "stream": True})
    assert not [e for e in events if "error" in e], events
    return {"text_output": "".join(e.get("text_output", "") for e in events), "tokens": events[-1]["tokens"]}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize(("model", "extra"), TWINS, ids=[t[0] for t in TWINS])
def test_tritonclient_infer_on_the_twin_equals_the_streamed_answer(triton, protocol, model, extra):
    expected = _reference(triton)
    module, client = _client(triton, protocol)
    try:
        inputs, parameters = _inputs(module, client, model, {**GREEDY, **extra})
        answer = _outputs(client.infer(model, inputs, parameters=parameters or None))
    finally:
        client.close()

    assert answer["text_output"] == expected["text_output"] and answer["tokens"] == 8 == expected["tokens"]
    assert answer["finish_reason"] == "length"
    if model == "router":
        assert answer["selected_model"] == "gpt2"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize(("model", "extra"), TWINS, ids=[t[0] for t in TWINS])
def test_tritonclient_async_infer_on_the_twin(triton, protocol, model, extra):
    expected = _reference(triton)
    module, client = _client(triton, protocol)
    try:
        inputs, _ = _inputs(module, client, model, {**GREEDY, **extra})
        if protocol == "http":
            answers = [_outputs(client.async_infer(model, inputs).get_result(timeout=120))]
        else:
            done: concurrent.futures.Future = concurrent.futures.Future()
            client.async_infer(model, inputs, callback=lambda result, error: done.set_result((result, error)))
            result, error = done.result(timeout=120)
            assert error is None, error
            answers = [_outputs(result)]
    finally:
        client.close()

    assert answers[0]["text_output"] == expected["text_output"] and answers[0]["tokens"] == 8


@pytest.mark.parametrize("streaming", ["router_stream", "gpt2_stream"])
def test_grpc_streaming_on_the_streaming_models_equals_the_twin(triton, streaming):
    extra = {"model": "gpt2"} if streaming == "router_stream" else {}
    outcome = triton.grpc_stream(streaming, {**GREEDY, **extra, "stream": True})
    status, whole = triton.generate(streaming.removesuffix("_stream"), {**GREEDY, **extra})

    assert outcome.error is None and outcome.final, outcome
    assert len(outcome.responses) >= 2
    assert status == 200 and outcome.text == whole["text_output"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_input_through_the_twin_names_the_field(triton, protocol):
    from tritonclient.utils import InferenceServerException

    module, client = _client(triton, protocol)
    try:
        inputs, _ = _inputs(module, client, "router", {"text_input": PROMPT, "max_tokens": 0})
        with pytest.raises(InferenceServerException, match="invalid 'max_tokens'"):
            client.infer("router", inputs)
        inputs, _ = _inputs(module, client, "gpt2", {"text_input": PROMPT, "min_tokens": 2, "min_length": 2})
        with pytest.raises(InferenceServerException, match="invalid 'min_length': is an alias of 'min_tokens'"):
            client.infer("gpt2", inputs)
    finally:
        client.close()


def test_unknown_json_field_through_the_twin_is_named(triton):
    status, body = triton.generate("router", {"text_input": PROMPT, "modle": "gpt2"})

    assert status == 400 and "invalid 'modle': unknown field" in body["error"], body


def test_concurrent_infer_on_the_router_twin_shares_the_engine_batch(triton):
    """Requests through the non-decoupled router are forwarded concurrently, not one at a time."""
    import tritonclient.grpc as grpcclient

    fields = {"text_input": PROMPT, "max_tokens": 400, "ignore_eos": True, "model": "codegen"}

    def call(_: int) -> int:
        with grpcclient.InferenceServerClient(triton.grpc_url) as client:
            inputs, _ = _inputs(grpcclient, client, "router", fields)
            return int(scalar(client.infer("router", inputs, client_timeout=300).as_numpy("tokens")))

    def engine_active() -> float:
        with urllib.request.urlopen(triton.metrics_url, timeout=5) as response:
            load = parse_load(response.read().decode())
        return load.get("codegen_stream", {}).get(ENGINE_ACTIVE, 0.0)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, i) for i in range(4)]
        assert wait_until(lambda: engine_active() >= 2, timeout=120.0, interval=0.05)
        assert [f.result(timeout=300) for f in futures] == [400] * 4


def test_stop_sequences_and_the_prompt_in_the_output_through_router_and_twin(triton):
    whole = triton.generate("gpt2", GREEDY)[1]["text_output"]
    stop = whole[3:5]
    expected = whole[:whole.find(stop)]
    for model, extra in TWINS:
        status, body = triton.generate(model, {**GREEDY, **extra, "stop": [stop, "\u00a7never"],
                                               "exclude_input_in_output": False})
        assert status == 200, body
        assert (body["text_output"], body["finish_reason"]) == (PROMPT + expected, "stop")
    events = triton.generate_stream("router_stream", {**GREEDY, "model": "gpt2", "stop": [stop], "stream": True})
    assert "".join(e.get("text_output", "") for e in events) == expected
    assert events[-1]["finish_reason"] == "stop"


def test_min_length_alias_holds_back_eos_through_the_twin(triton):
    status, body = triton.generate("gpt2", {"text_input": PROMPT, "max_tokens": 12, "min_length": 12})

    assert status == 200 and body["tokens"] == 12, body


def test_kserve_http_infer_json_on_the_twins(triton):
    for model, extra in TWINS:
        inputs = [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": [PROMPT]},
                  {"name": "max_tokens", "datatype": "INT32", "shape": [1], "data": [4]},
                  {"name": "stop", "datatype": "BYTES", "shape": [2], "data": ["\u00a7", "\u00b6"]}]
        inputs += [{"name": k, "datatype": "BYTES", "shape": [1], "data": [v]} for k, v in extra.items()]
        status, body = triton.post(f"/v2/models/{model}/infer", {"inputs": inputs})
        assert status == 200, body
        tokens = next(o for o in body["outputs"] if o["name"] == "tokens")
        assert np.asarray(tokens["data"]).tolist()[0] >= 1


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_callers_request_id_reaches_the_router_through_its_twin(triton, protocol):
    module, client = _client(triton, protocol)
    inputs, _ = _inputs(module, client, "router", {**GREEDY, "model": "gpt2"})
    result = client.infer("router", inputs, request_id=f"caller-{protocol}-7")
    assert scalar(result.as_numpy("request_id")) == f"caller-{protocol}-7"
