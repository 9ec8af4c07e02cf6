"""The client's pure parts: arguments -> request fields, answers -> results, errors -> one line, CLI parsing.

    .venv/bin/pytest tests/unit/test_client.py -q
"""

from __future__ import annotations

import io
import json
import random
import urllib.error
from types import SimpleNamespace

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from pointsman.client.cli import describe_generation, generate_options
from pointsman.client.request import GenerateRequest, as_request, build_inputs, input_specs, recommend_fields, scalar
from pointsman.client.types import (
    GenerationResponse,
    ModelInfo,
    PointsmanClientError,
    Recommendation,
    ResponseAssembler,
    one_line,
    parse_catalog,
)
from pointsman.client.wire import checked_body, http_error_message, is_missing_model, split_url, transport_error
from pointsman.launcher.cli import build_parser
from pointsman.launcher.cli import main as pointsman_main
from pointsman.loadtests.workload import Workload, check_answer, default_grpc_url, parse_weights, request_name
from pointsman.policy.contract import parse_generate, parse_router

SELECTION_FIELDS = {"model", "auto_select", "preferred_model", "fallback_mode"}

# -- arguments -> request -------------------------------------------------------------------


@pytest.mark.parametrize(("options", "mode", "target", "selection"), [
    ({"model": "codegen"}, "manual", "router", {"model": "codegen"}),
    ({"auto": True}, "auto", "router", {"auto_select": True}),
    ({"prefer": "gpt2"}, "hybrid", "router", {"preferred_model": "gpt2", "fallback_mode": "auto"}),
    ({"prefer": "gpt2", "fallback": "none"}, "hybrid", "router", {"preferred_model": "gpt2", "fallback_mode": "none"}),
    ({}, "auto", "router", {}),  # nothing chosen: the router's default, auto
    ({"model": "gpt2", "direct": True}, "direct", "gpt2", {}),
])
def test_selection_options_map_to_the_router_contract(options, mode, target, selection) -> None:
    request = GenerateRequest("def add(a, b):", max_tokens=8, **options)
    fields = request.fields(stream=False)
    assert request.mode == mode
    assert request.target() == target
    assert {k: v for k, v in fields.items() if k in SELECTION_FIELDS} == selection
    assert fields["text_input"] == "def add(a, b):" and fields["max_tokens"] == 8


def test_every_field_the_client_sends_is_accepted_by_the_servers_contract() -> None:
    routed = GenerateRequest("Write a poem", prefer="gpt2", fallback="fastest", max_tokens=4, temperature=0.7,
                             top_k=40, top_p=0.9, seed=7, ignore_eos=True, max_response_time=2.5, min_quality=0.5,
                             prefer_speed=True, user="alice")
    params = parse_router(routed.fields(stream=True))
    assert (params.preferred_model, params.fallback_mode, params.stream, params.user) == ("gpt2", "fastest", True,
                                                                                        "alice")
    direct = GenerateRequest("Write a poem", model="gpt2", direct=True, seed=3, temperature=0.5)
    assert parse_generate(direct.fields(stream=False)).seed == 3


def test_unset_options_are_left_to_the_servers_defaults() -> None:
    fields = GenerateRequest("hi").fields(stream=False)
    assert fields == {"text_input": "hi", "max_tokens": 20}
    assert GenerateRequest("hi").fields(stream=True)["stream"] is True


@pytest.mark.parametrize(("options", "says"), [
    ({"prompt": ""}, "prompt must be a non-empty string"),
    ({"model": "gpt2", "auto": True}, "choose one of model (manual), auto, prefer (hybrid); got model and auto"),
    ({"model": "gpt2", "prefer": "codegen"}, "got model and prefer"),
    ({"fallback": "fastest"}, "fallback applies to a preferred model"),
    ({"prefer": "gpt2", "fallback": "slowest"}, "fallback must be one of auto, fastest, none; got 'slowest'"),
    ({"max_tokens": 0}, "max_tokens must be >= 1; got 0"),
    ({"max_tokens": True}, "max_tokens must be an integer; got True"),
    ({"max_tokens": 2.5}, "max_tokens must be an integer"),
    ({"temperature": -1.0}, "temperature must be >= 0.0"),
    ({"top_p": 0.0}, "top_p must be > 0.0 and <= 1.0; got 0.0"),
    ({"min_quality": 1.5}, "min_quality must be >= 0.0 and <= 1.0"),
    ({"max_response_time": 0}, "max_response_time must be > 0.0"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"direct": True}, "direct needs model"),
    ({"model": "gpt2", "direct": True, "prefer_speed": True}, "the router, which alone takes prefer_speed"),
])
def test_plainly_wrong_arguments_are_refused_before_sending(options, says) -> None:
    arguments = {"prompt": "hello", **options}
    with pytest.raises(ValueError) as caught:
        GenerateRequest(arguments.pop("prompt"), **arguments)
    assert says in str(caught.value)


def test_generate_takes_a_ready_request_or_a_prompt_with_options_not_both() -> None:
    request = GenerateRequest("hi", auto=True)
    assert as_request(request, {}) is request
    assert as_request("hi", {"auto": True}) == request
    with pytest.raises(TypeError):
        as_request(request, {"max_tokens": 3})


def test_recommend_fields_carry_only_the_requirements_given() -> None:
    assert recommend_fields("def f():", prefer_speed=True, max_response_time=2.0) == {
        "text_input": "def f():", "max_response_time": 2.0, "prefer_speed": True}
    with pytest.raises(ValueError, match="min_quality"):
        recommend_fields("x", min_quality=-0.1)


def test_fields_become_tensors_typed_by_the_models_metadata_and_the_rest_parameters() -> None:
    metadata = {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1]},
                           {"name": "max_tokens", "datatype": "INT32", "shape": [-1]},
                           {"name": "seed", "datatype": "UINT64", "shape": ["1"]},
                           {"name": "prefer_speed", "datatype": "BOOL", "shape": [1]}]}
    specs = input_specs(metadata)
    inputs, parameters = build_inputs(grpcclient.InferInput, specs, {
        "text_input": "héllo", "max_tokens": 5, "seed": 2**63 - 1, "prefer_speed": True, "user": "bob"})
    by_name = {i.name(): i for i in inputs}
    assert {name: i.datatype() for name, i in by_name.items()} == {
        "text_input": "BYTES", "max_tokens": "INT32", "seed": "UINT64", "prefer_speed": "BOOL"}
    assert all(i.shape() == [1] for i in inputs)
    assert parameters == {"user": "bob"}  # not an input of the model: travels as a request parameter
    assert scalar(np.array([b"h\xc3\xa9llo"], dtype=np.object_)) == "héllo"
    assert scalar(np.array([3], dtype=np.int32)) == 3 and scalar(np.array([], dtype=np.int32)) is None


# -- answers -> results ---------------------------------------------------------------------


def test_streamed_pieces_and_final_metadata_fold_into_one_response() -> None:
    assembler = ResponseAssembler("router")
    pieces = [assembler.add({"text_output": "Hello"}), assembler.add({"text_output": " world"}),
              assembler.add({"text_output": "", "tokens": "2", "finish_reason": "length", "selected_model": "gpt2",
                             "selection_mode": "auto", "selection_reason": "auto: qa prompt", "fallback_used": "false",
                             "task": "qa", "selection_ms": 0.25, "request_id": "r-1"})]
    response = assembler.finish(latency_ms=12.0, first_response_ms=3.0)
    assert pieces == ["Hello", " world", ""]
    assert response == GenerationResponse(
        text="Hello world", selected_model="gpt2", tokens=2, finish_reason="length", selection_mode="auto",
        selection_reason="auto: qa prompt", fallback_used=False, task="qa", selection_ms=0.25, request_id="r-1",
        latency_ms=12.0, first_response_ms=3.0)


def test_a_model_called_directly_is_its_own_selected_model_and_nothing_else_is_invented() -> None:
    assembler = ResponseAssembler("gpt2")
    assembler.add({"text_output": "abc", "tokens": 3, "finish_reason": "length"})
    response = assembler.finish()
    assert response.selected_model == "gpt2"
    assert response.selection_mode is None and response.fallback_used is None and response.selection_reason is None


def test_recommendation_parses_alternatives_and_refuses_a_wrong_shape() -> None:
    advice = Recommendation.from_outputs({
        "recommended_model": "codegen", "confidence": np.float32(0.85).item(), "reasoning": "coding prompt",
        "alternatives": json.dumps([{"model": "gpt2", "score": 0.7}, {"model": "distilgpt2", "score": 0.4}]),
        "task": "coding"})
    assert advice.recommended_model == "codegen" and advice.confidence == pytest.approx(0.85)
    assert [(a.model, a.score) for a in advice.alternatives] == [("gpt2", 0.7), ("distilgpt2", 0.4)]
    with pytest.raises(PointsmanClientError, match="recommend: unexpected answer shape"):
        Recommendation.from_outputs({"confidence": 0.5})


def test_catalog_entries_become_model_info() -> None:
    entry = {"model_name": "gpt2", "capabilities": ["general", "creative"],
             "specialization_score": {"coding": 0.55, "creative": 0.85},
             "performance_metrics": {"avg_tokens_per_second": 150.0},
             "current_status": {"loaded": True, "queue_length": 2, "last_used": "2026-01-01T00:00:00Z"}}
    [info] = parse_catalog(json.dumps([entry]))
    assert (info.model_name, info.loaded, info.capabilities) == ("gpt2", True, ("general", "creative"))
    assert info.current_status["queue_length"] == 2 and info.source == "catalog"
    assert parse_catalog(entry)[0].model_name == "gpt2"  # one model asked for by name
    with pytest.raises(PointsmanClientError, match="catalog: unexpected answer shape"):
        parse_catalog("[{}]")


def test_repository_index_stands_in_for_a_missing_catalog() -> None:
    # gRPC statistics come as protobuf JSON, which writes int64 as strings
    info = ModelInfo.from_repository({"name": "gpt2", "state": "READY"},
                                     {"inference_count": "12", "last_inference": "1767225600000"})
    assert info.loaded and info.source == "repository"
    assert info.performance_metrics == {"inference_count": 12}
    assert info.current_status["last_used"] == "2026-01-01T00:00:00+00:00"
    gone = ModelInfo.from_repository({"name": "codegen", "state": "UNAVAILABLE", "reason": "unloaded"}, None)
    assert not gone.loaded and gone.current_status["reason"] == "unloaded"


# -- errors -> one line ---------------------------------------------------------------------


def test_server_messages_become_one_line_without_transport_prefixes() -> None:
    assert one_line("[StatusCode.INVALID_ARGUMENT] invalid 'model':\n  unknown") == "invalid 'model': unknown"
    assert one_line("[400] bad\tthing") == "bad thing"
    assert one_line("x" * 1000, limit=50).endswith("...") and len(one_line("x" * 1000, limit=50)) == 50
    error = PointsmanClientError("invalid 'max_tokens'\n(got 0)", model="router", status=400)
    assert str(error) == "router: invalid 'max_tokens' (got 0)" and error.status == 400


@pytest.mark.parametrize(("exc", "model", "message", "status"), [
    (InferenceServerException("Request for unknown model: 'nope' is not found", status="StatusCode.NOT_FOUND"),
     "nope", "nope: Request for unknown model: 'nope' is not found", "NOT_FOUND"),
    (InferenceServerException("invalid 'modle': unknown field"), "router", "router: invalid 'modle': unknown field",
     None),
    (InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE"), "router",
     "cannot reach Triton at grpc://h:1: failed to connect to all addresses", "UNAVAILABLE"),
    (ConnectionRefusedError(111, "Connection refused"), "router",
     "cannot reach Triton at grpc://h:1: connection refused", None),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "router",
     "cannot reach Triton at grpc://h:1: connection refused", None),
    (TimeoutError("timed out"), "gpt2", "gpt2: no answer from grpc://h:1 in time", None),
])
def test_transport_errors_map_to_one_exception_type(exc, model, message, status) -> None:
    error = transport_error(exc, model=model, where="grpc://h:1")
    assert isinstance(error, PointsmanClientError)
    assert (str(error), error.status) == (message, status)


def test_http_error_bodies_yield_the_servers_message() -> None:
    body = json.dumps({"error": "invalid 'model': must be one of gpt2 (got 'x')"}).encode()
    http_error = urllib.error.HTTPError("http://h/v2/models/router/generate", 400, "Bad Request", {}, io.BytesIO(body))
    error = transport_error(http_error, model="router", where="http://h")
    assert (str(error), error.status) == ("router: invalid 'model': must be one of gpt2 (got 'x')", 400)
    assert http_error_message(b'data: {"error":"boom"}\n\n', "Bad Request") == "boom"
    assert http_error_message(b"", "Bad Request") == "Bad Request"
    with pytest.raises(PointsmanClientError, match="gpt2: boom"):
        checked_body({"error": "boom"}, "gpt2")  # Triton 2.51 may send an error with status 200
    assert checked_body({"model_name": "gpt2", "model_version": "1", "text_output": "x"}, "gpt2") == {
        "text_output": "x"}


def test_a_missing_model_is_told_apart_from_other_errors() -> None:
    assert is_missing_model(PointsmanClientError("Request for unknown model: 'catalog' is not found"), "catalog")
    assert is_missing_model(PointsmanClientError("Request for unknown model: 'catalog' has no available versions"),
                            "catalog")
    assert not is_missing_model(PointsmanClientError("internal error: KeyError"), "catalog")


@pytest.mark.parametrize(("url", "expected"), [
    ("127.0.0.1:8000", ("http", "127.0.0.1:8000")),
    ("http://localhost:8000", ("http", "localhost:8000")),
    ("https://triton.example:443", ("https", "triton.example:443")),
    ("grpc://127.0.0.1:8001", ("http", "127.0.0.1:8001")),
])
def test_urls_with_or_without_a_scheme_are_accepted(url, expected) -> None:
    assert split_url(url, "http") == expected


def test_a_bad_url_or_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        split_url("ftp://h:1", "http")
    with pytest.raises(ValueError, match="protocol"):
        split_url("h:1", "websocket")


# -- the command line -----------------------------------------------------------------------


def _parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_infer_arguments_become_generate_options() -> None:
    args = _parse("infer", "def add(a, b):", "--prefer", "codegen", "--fallback", "fastest", "--max-tokens", "8",
                  "--seed", "3", "--temperature", "0.5", "--stream", "--protocol", "grpc")
    options = generate_options(args)
    assert (args.prompt, args.stream, args.protocol, args.url) == ("def add(a, b):", True, "grpc", None)
    assert {k: options[k] for k in ("prefer", "fallback", "max_tokens", "seed", "temperature", "model", "auto")} == {
        "prefer": "codegen", "fallback": "fastest", "max_tokens": 8, "seed": 3, "temperature": 0.5, "model": None,
        "auto": False}
    assert GenerateRequest(args.prompt, **options).mode == "hybrid"


def test_generation_controls_reach_the_request_fields() -> None:
    args = _parse("infer", "x", "--stop", "\n\n", "--stop", "END", "--min-tokens", "4", "--repetition-penalty", "1.2",
                  "--presence-penalty", "0.5", "--frequency-penalty", "-0.5")
    fields = GenerateRequest(args.prompt, **generate_options(args)).fields(stream=False)
    assert {k: fields[k] for k in ("stop", "min_tokens", "repetition_penalty", "presence_penalty",
                                   "frequency_penalty")} == {"stop": ["\n\n", "END"], "min_tokens": 4,
                                                             "repetition_penalty": 1.2, "presence_penalty": 0.5,
                                                             "frequency_penalty": -0.5}
    assert "stop" not in GenerateRequest("x").fields(stream=False)


@pytest.mark.parametrize(("options", "says"), [
    ({"min_tokens": 30}, "min_tokens"), ({"presence_penalty": 3.0}, "presence_penalty"),
    ({"stop": ["ok", ""]}, "stop"), ({"stop": "END"}, "stop"), ({"repetition_penalty": 0.0}, "repetition_penalty"),
])
def test_bad_generation_controls_are_refused_naming_the_argument(options, says) -> None:
    with pytest.raises(ValueError, match=says):
        GenerateRequest("x", **options)


def test_list_fields_become_one_dimensional_tensors() -> None:
    from pointsman.client.request import InputSpec, to_array

    array = to_array(["a", "bc"], InputSpec("BYTES", (1,)))
    assert array.shape == (2,) and array.tolist() == [b"a", b"bc"]


def test_infer_refuses_two_selection_modes_at_once(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        _parse("infer", "x", "--model", "gpt2", "--auto")
    assert caught.value.code == 2
    assert "not allowed with argument --model" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "says"), [
    (("--fallback", "none"), "--fallback applies to a preferred model"),
    (("--direct",), "--direct calls one model"),
])
def test_infer_option_combinations_that_make_no_sense_are_usage_errors(argv, says) -> None:
    with pytest.raises(ValueError, match=says):
        generate_options(_parse("infer", "x", *argv))


def test_recommend_and_models_parse_their_options() -> None:
    args = _parse("recommend", "def f():", "--max-response-time", "2", "--min-quality", "0.7", "--prefer-speed",
                  "--url", "10.0.0.1:8000")
    assert (args.max_response_time, args.min_quality, args.prefer_speed, args.url) == (2.0, 0.7, True, "10.0.0.1:8000")
    assert _parse("models", "--protocol", "grpc", "--json").json


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_unreachable_server_is_one_line_on_stderr_and_exit_code_1(capsys, protocol) -> None:
    code = pointsman_main(["infer", "hello", "--url", "127.0.0.1:1", "--protocol", protocol, "--timeout", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("pointsman infer: error: cannot reach Triton at ") and "\n" not in err
    assert "Traceback" not in err


def test_a_usage_error_exits_with_2_and_one_line(capsys) -> None:
    code = pointsman_main(["infer", "hello", "--fallback", "none"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "pointsman infer: error: --fallback applies to a preferred model: add --prefer MODEL")


def test_the_summary_line_says_how_the_answer_was_chosen() -> None:
    line = describe_generation({"selected_model": "gpt2", "selection_mode": "hybrid", "fallback_used": True,
                                "task": "qa", "tokens": 4, "finish_reason": "length", "selection_ms": 0.123,
                                "latency_ms": 41.6, "selection_reason": "hybrid: codegen unloaded; fallback auto"})
    assert line == ("gpt2 | hybrid | fallback | task qa | 4 tokens | length | selection 0.12 ms | 42 ms | "
                    "hybrid: codegen unloaded; fallback auto")


# -- the locust workload ----------------------------------------------------------------------


def test_mode_weights_parse_and_refuse_nonsense() -> None:
    assert parse_weights("manual=1, auto=2") == {"manual": 1.0, "auto": 2.0, "hybrid": 0.0, "direct": 0.0}
    for bad, says in (("manul=1", "MODE=WEIGHT"), ("auto=x", "must be a number"), ("auto=-1", ">= 0"),
                      ("auto=0", "at least one mode")):
        with pytest.raises(ValueError, match=says):
            parse_weights(bad)


def test_the_workload_sends_only_the_weighted_modes_named_by_mode() -> None:
    workload = Workload(parse_weights("hybrid=1,direct=1"), ("gpt2",), max_tokens=8, fallback="fastest")
    requests = [workload.next_request(random.Random(seed)) for seed in range(40)]
    assert {request_name(r) for r in requests} == {"router hybrid", "direct"}
    assert all(r.fallback == "fastest" for r in requests if r.mode == "hybrid")
    assert all(r.target() == "gpt2" for r in requests if r.direct)


def test_workload_options_come_from_locusts_parsed_options() -> None:
    options = SimpleNamespace(mode_weights="auto=1", models="gpt2, codegen", max_tokens="12", fallback="none")
    workload = Workload.from_options(options)
    assert workload.models == ("gpt2", "codegen") and workload.max_tokens == 12
    with pytest.raises(ValueError, match="--fallback"):
        Workload.from_options(SimpleNamespace(mode_weights="auto=1", models="gpt2", max_tokens=1, fallback="x"))


@pytest.mark.parametrize(("options", "outputs", "problem"), [
    ({"model": "gpt2"}, {"text_output": "x", "tokens": 3, "selection_mode": "manual", "selected_model": "gpt2"}, None),
    ({"model": "gpt2"}, {"text_output": "x", "tokens": 3, "selection_mode": "manual", "selected_model": "codegen"},
     "selected_model 'codegen', expected 'gpt2'"),
    ({"auto": True}, {"text_output": "x", "tokens": 3, "selection_mode": "hybrid", "selected_model": "gpt2"},
     "selection_mode 'hybrid', expected 'auto'"),
    ({"auto": True}, {"text_output": "x", "tokens": 0, "selection_mode": "auto", "selected_model": "gpt2"},
     "tokens 0 outside 1..8"),
    ({"model": "gpt2", "direct": True}, {"text_output": "x", "tokens": 8}, None),
    ({"auto": True}, {"error": "boom"}, "boom"),
])
def test_answers_are_checked_against_their_request(options, outputs, problem) -> None:
    assert check_answer(GenerateRequest("hi", max_tokens=8, **options), outputs) == problem


def test_grpc_defaults_to_the_port_above_http() -> None:
    assert default_grpc_url("http://127.0.0.1:8000") == "127.0.0.1:8001"
    assert default_grpc_url("localhost:18100") == "localhost:18101"


@pytest.mark.parametrize("text, arm", [
    ("a=model:gpt2:50", {"name": "a", "model": "gpt2", "weight": 50.0}),
    ("lex=policy:lexical:1.5", {"name": "lex", "policy": "lexical", "weight": 1.5}),
])
def test_arm_flags_become_experiment_arms(text, arm):
    from pointsman.client.ops_cli import parse_arm

    assert parse_arm(text) == arm


@pytest.mark.parametrize("text", ["a=gpt2:50", "a=model:gpt2", "model:gpt2:50", "a=thing:gpt2:50", "a=model:gpt2:x"])
def test_malformed_arm_flags_are_refused_with_the_expected_shape(text):
    from pointsman.client.ops_cli import parse_arm

    with pytest.raises(ValueError, match="NAME=model:MODEL:WEIGHT"):
        parse_arm(text)
