"""The language models served by a real tritonserver: generate, stream, gRPC, bad input.

    .venv/bin/pytest tests/integration/test_llm_serving.py -q

Runs against the exported demo models (gpt2, distilgpt2, codegen); `make setup` builds them.
Triton 2.51 reports some errors of decoupled models with HTTP 200, so every error check
reads the body as well as the status.
"""

from __future__ import annotations

import queue
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pointsman.export.repository import engine_name
from pointsman.policy.contract import stream_model
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

PROMPT = "def add(a, b):"
DEMO_MODELS = ("gpt2", "distilgpt2", "codegen")  # built by `make setup`


def context_length(triton, model: str) -> int:
    return int(triton.model_config(engine_name(model))["parameters"]["context_length"]["string_value"])


def prompt_of_about(triton, model: str, tokens: int) -> tuple[str, int]:
    """Return a prompt of roughly `tokens` tokens for this model and its exact length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(triton.repository) / engine_name(model) / "1" / "tokenizer.json"))
    unit = "total = total + value\n"
    per_unit = len(tokenizer.encode(unit * 20).ids) / 20
    text = unit * max(1, int(tokens / per_unit))
    return text, len(tokenizer.encode(text).ids)


def assert_error(status: int, body, field: str, *accepted: str, expect_status: int = 400) -> None:
    assert isinstance(body, dict) and "error" in body, f"expected an error, got {status} {body!r}"
    message = body["error"]
    assert status == expect_status, f"status {status} for {message!r}"
    assert f"'{field}'" in message, f"error does not name {field!r}: {message!r}"
    for fragment in accepted:
        assert fragment in message, f"error does not say {fragment!r}: {message!r}"


# -- generate ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", DEMO_MODELS)
def test_generate_returns_text_and_max_tokens_tokens_unless_eos(triton, model):
    status, body = triton.generate(model, {"text_input": PROMPT, "max_tokens": 16})

    assert status == 200 and "error" not in body, body
    assert isinstance(body["text_output"], str)
    assert body["finish_reason"] in ("length", "eos")
    if body["finish_reason"] == "length":
        assert body["tokens"] == 16 and body["text_output"]
    else:
        assert 0 <= body["tokens"] < 16


def test_generate_accepts_the_prompt_and_max_length_aliases(triton):
    canonical = triton.generate("gpt2", {"text_input": PROMPT, "max_tokens": 5, "ignore_eos": True})
    aliased = triton.generate("gpt2", {"prompt": PROMPT, "max_length": 5, "ignore_eos": True})

    assert aliased[0] == 200 and "error" not in aliased[1], aliased
    assert aliased[1]["tokens"] == 5
    assert aliased[1]["text_output"] == canonical[1]["text_output"]


def test_generate_with_stream_true_is_refused_in_the_body_even_when_status_is_200(triton):
    # Triton 2.51 answers this with HTTP 200 and an error body: a streamed request sends
    # several responses, and the generate endpoint accepts exactly one
    status, body = triton.generate("gpt2_stream", {"text_input": PROMPT, "max_tokens": 4, "stream": True})

    assert status in (200, 400)
    assert "generate stream" in body.get("error", ""), body


def test_the_non_decoupled_twin_refuses_stream_true_naming_the_streaming_model(triton):
    status, body = triton.generate("gpt2", {"text_input": PROMPT, "max_tokens": 4, "stream": True})

    assert status == 400
    assert "invalid 'stream'" in body["error"] and "'gpt2_stream'" in body["error"], body


# -- generate_stream --------------------------------------------------------------------


@pytest.mark.parametrize("model", DEMO_MODELS)
def test_generate_stream_pieces_concatenate_to_the_non_streamed_greedy_text(triton, model):
    request = {"text_input": PROMPT, "max_tokens": 16, "ignore_eos": True}
    status, whole = triton.generate(model, request)
    events = triton.generate_stream(stream_model(model), {**request, "stream": True})

    assert status == 200 and "error" not in whole, whole
    assert not [e for e in events if "error" in e], events
    pieces, final = events[:-1], events[-1]
    assert len(pieces) >= 2, events
    # each piece dates itself: tokens generated so far, rising, never past the final count
    counts = [e["tokens"] for e in pieces]
    assert counts == sorted(set(counts)) and 1 <= counts[0] and counts[-1] <= 16, counts
    assert final["tokens"] == whole["tokens"] == 16
    assert final["finish_reason"] == whole["finish_reason"] == "length"
    assert "".join(e["text_output"] for e in events) == whole["text_output"]


def test_generate_stream_reports_a_bad_input_as_an_error_event(triton):
    events = triton.generate_stream("gpt2_stream", {"text_input": PROMPT, "max_tokens": 0, "stream": True})

    assert len(events) == 1
    assert "'max_tokens'" in events[0].get("error", ""), events


# -- sampling ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_sampled_text_and_other_seeds_differ(triton):
    def sample(seed: int) -> str:
        status, body = triton.generate("gpt2", {"text_input": PROMPT, "max_tokens": 16, "temperature": 1.0,
                                                "seed": seed, "ignore_eos": True})
        assert status == 200 and "error" not in body, body
        return body["text_output"]

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in (1, 2, 3, 4)}) > 1


# -- tritonclient gRPC ------------------------------------------------------------------


def test_grpc_streaming_sends_several_pieces_then_a_final_response(triton):
    fields = {"text_input": PROMPT, "max_tokens": 12, "ignore_eos": True}
    outcome = triton.grpc_stream("gpt2_stream", {**fields, "stream": True})
    _, whole = triton.generate("gpt2", fields)

    assert outcome.error is None, outcome.error
    assert outcome.final
    assert len(outcome.responses) >= 3  # at least two pieces, then the final response
    assert outcome.last["tokens"] == 12 and outcome.last["finish_reason"] == "length"
    assert outcome.text == whole["text_output"]


def test_grpc_non_streaming_request_gets_one_response_with_text_and_tokens(triton):
    outcome = triton.grpc_stream("distilgpt2_stream", {"text_input": PROMPT, "max_tokens": 6, "ignore_eos": True})

    assert outcome.error is None, outcome.error
    assert len(outcome.responses) == 1 and outcome.final
    response = outcome.last
    assert response["text_output"] and response["tokens"] == 6 and response["finish_reason"] == "length"


def test_grpc_bad_input_gets_an_error_naming_the_field(triton):
    outcome = triton.grpc_stream("codegen_stream", {"text_input": PROMPT, "max_tokens": 0})

    assert outcome.error is not None and "'max_tokens'" in outcome.error, outcome


def test_grpc_unary_infer_is_refused_for_the_decoupled_model(triton):
    # a decoupled model answers only over the stream (ModelStreamInfer), as in Triton 2.51: hence the twin
    from tritonclient.utils import InferenceServerException

    inputs, _ = triton.grpc_inputs("gpt2_stream", {"text_input": PROMPT, "max_tokens": 4})
    with triton.grpc_client() as client, pytest.raises(InferenceServerException, match="decoupled"):
        client.infer("gpt2_stream", inputs)


def test_kserve_http_infer_is_refused_for_the_decoupled_model(triton):
    status, body = triton.post("/v2/models/gpt2_stream/infer", {
        "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": [PROMPT]}]})
    assert status == 501 and "decoupled" in body["error"], (status, body)


# -- bad input --------------------------------------------------------------------------

BAD_INPUTS = [
    pytest.param({"text_input": PROMPT, "max_tokens": 0}, "max_tokens", ("1 to 4096",), id="max_tokens-0"),
    pytest.param({"text_input": PROMPT, "max_tokens": -3}, "max_tokens", ("1 to 4096",), id="max_tokens-negative"),
    pytest.param({"text_input": PROMPT, "max_tokens": 5000}, "max_tokens", ("1 to 4096",), id="max_tokens-huge"),
    pytest.param({"max_tokens": 4}, "text_input", ("required", "not blank", "messages"), id="text_input-missing"),
    pytest.param({"text_input": "", "max_tokens": 4}, "text_input", ("not blank",), id="text_input-empty"),
    pytest.param({"text_input": "   ", "max_tokens": 4}, "text_input", ("not blank",), id="text_input-blank"),
    pytest.param({"text_input": PROMPT, "modle": "gpt2"}, "modle", ("unknown field", "text_input", "max_tokens"),
                 id="unknown-field"),
    pytest.param({"text_input": PROMPT, "top_p": 0}, "top_p", ("(0, 1]",), id="top_p-0"),
]
# Triton's generate endpoint converts values of declared inputs to their tensor types
# itself: a string where a number belongs fails there, before the model runs
MISTYPED_INPUTS = [
    pytest.param({"text_input": PROMPT, "max_tokens": "abc"}, "max_tokens", id="max_tokens-abc"),
    pytest.param({"text_input": PROMPT, "temperature": "hot"}, "temperature", id="temperature-hot"),
]


@pytest.mark.parametrize(("body", "field", "accepted"), BAD_INPUTS)
def test_bad_input_gets_400_naming_the_field_and_what_is_accepted(triton, body, field, accepted):
    status, answer = triton.generate("gpt2", body)

    assert_error(status, answer, field, *accepted)


@pytest.mark.parametrize(("body", "field"), MISTYPED_INPUTS)
def test_a_non_numeric_value_for_a_numeric_input_is_refused(triton, body, field):
    status, answer = triton.generate("gpt2", body)

    assert status >= 400 and "error" in answer, (status, answer)


@pytest.mark.xfail(strict=True, reason="Triton 2.51's generate endpoint rejects a mistyped tensor value itself, "
                                       "with HTTP 500 \"Unable to parse 'data'\" and no field name")
@pytest.mark.parametrize(("body", "field"), MISTYPED_INPUTS)
def test_a_non_numeric_value_gets_400_naming_the_field(triton, body, field):
    status, answer = triton.generate("gpt2", body)

    assert_error(status, answer, field, "must be")


def test_a_prompt_longer_than_the_context_is_refused_naming_text_input(triton):
    context = context_length(triton, "gpt2")
    prompt, length = prompt_of_about(triton, "gpt2", context + 50)
    assert length >= context

    status, body = triton.generate("gpt2", {"text_input": prompt, "max_tokens": 1})

    assert_error(status, body, "text_input", f"{length} tokens", f"at most {context - 1}")


def test_prompt_plus_max_tokens_beyond_the_context_is_refused_naming_max_tokens(triton):
    context = context_length(triton, "codegen")
    prompt, length = prompt_of_about(triton, "codegen", context - 40)
    assert length < context

    status, body = triton.generate("codegen", {"text_input": prompt, "max_tokens": context - length + 1})

    assert_error(status, body, "max_tokens", f"at most {context - length}", f"context length {context}")
    ok_status, ok = triton.generate("codegen", {"text_input": prompt, "max_tokens": 2, "ignore_eos": True})
    assert ok_status == 200 and ok.get("tokens") == 2, ok


def test_after_all_the_bad_inputs_the_server_still_serves_and_is_ready(triton):
    for case in [*BAD_INPUTS, *MISTYPED_INPUTS]:
        status, answer = triton.generate("gpt2", case.values[0])
        assert status != 200 or "error" in answer

    status, body = triton.generate("gpt2", {"text_input": PROMPT, "max_tokens": 8, "ignore_eos": True})

    assert status == 200 and body["tokens"] == 8, body
    assert triton.ready()


# -- load and lifecycle -----------------------------------------------------------------


def test_concurrent_requests_all_complete_with_their_own_token_counts(triton):
    jobs = [(DEMO_MODELS[i % len(DEMO_MODELS)], 6 + 2 * i) for i in range(8)]

    def run(job):
        model, max_tokens = job
        return triton.generate(model, {"text_input": f"{PROMPT} # {max_tokens}", "max_tokens": max_tokens,
                                       "ignore_eos": True})

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(run, jobs))

    for (model, max_tokens), (status, body) in zip(jobs, answers, strict=True):
        assert status == 200 and "error" not in body, (model, body)
        assert body["tokens"] == max_tokens and body["finish_reason"] == "length", (model, max_tokens, body)


def test_a_client_cancelling_a_grpc_stream_midway_does_not_break_later_requests(triton):
    pieces: queue.Queue = queue.Queue()
    inputs, _ = triton.grpc_inputs("codegen_stream", {"text_input": PROMPT, "max_tokens": 400, "stream": True,
                                               "ignore_eos": True})
    with triton.grpc_client() as client:
        client.start_stream(callback=lambda result, error: pieces.put((result, error)))
        client.async_stream_infer("codegen_stream", inputs)
        for _ in range(3):
            result, error = pieces.get(timeout=60)
            assert error is None, error
        client.stop_stream(cancel_requests=True)  # goes away mid-generation
    assert wait_until(lambda: engine_active(triton, "codegen_stream") == 0, timeout=30)

    after = triton.grpc_stream("codegen_stream", {"text_input": PROMPT, "max_tokens": 5, "ignore_eos": True})
    status, body = triton.generate("codegen", {"text_input": PROMPT, "max_tokens": 5, "ignore_eos": True})

    assert after.error is None and after.last["tokens"] == 5, after
    assert status == 200 and body["tokens"] == 5, body
    assert triton.ready()


def engine_active(triton, model: str) -> float:
    """pointsman_engine_active{model=...} from Triton's metrics endpoint."""
    with urllib.request.urlopen(triton.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    match = re.search(rf'^pointsman_engine_active{{model="{model}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else -1.0


def test_cancelling_a_stream_stops_its_generation_in_the_engine(triton):
    engine = stream_model("distilgpt2")  # the decoupled model that holds the engine
    pieces: queue.Queue = queue.Queue()
    request_id = f"cancel-{time.monotonic_ns()}"
    inputs, parameters = triton.grpc_inputs(engine, {"text_input": PROMPT, "max_tokens": 480, "stream": True,
                                                     "ignore_eos": True})
    with triton.grpc_client() as client:
        client.start_stream(callback=lambda result, error: pieces.put((result, error)))
        client.async_stream_infer(engine, inputs, request_id=request_id, parameters=parameters or None)
        for _ in range(3):
            result, error = pieces.get(timeout=60)
            assert error is None, error
        client.stop_stream(cancel_requests=True)

    # the engine says the sequence left as cancelled, long before its 480 tokens
    pattern = re.compile(rf"request '{request_id}' cancelled after (\d+) tokens")
    assert wait_until(lambda: pattern.search(triton.log_file.read_text(errors="replace")), timeout=60)
    assert 3 <= int(pattern.search(triton.log_file.read_text(errors="replace")).group(1)) < 480
    assert wait_until(lambda: engine_active(triton, engine) == 0, timeout=30)


def test_cancelling_a_routed_stream_stops_its_generation_in_the_engine(triton):
    """A client's cancel of a routed stream reaches the engine: the router stops its request by id (BLS cannot)."""
    cancelled = re.compile(r"pointsman engine: request 'pointsman-routed-[0-9a-f]+' cancelled after (\d+) tokens")
    before = len(cancelled.findall(triton.log_file.read_text(errors="replace")))
    pieces: queue.Queue = queue.Queue()
    inputs, parameters = triton.grpc_inputs("router_stream", {"text_input": PROMPT, "model": "distilgpt2",
                                                              "max_tokens": 480, "stream": True, "ignore_eos": True})
    with triton.grpc_client() as client:
        client.start_stream(callback=lambda result, error: pieces.put((result, error)))
        client.async_stream_infer("router_stream", inputs, parameters=parameters or None)
        for _ in range(3):
            result, error = pieces.get(timeout=60)
            assert error is None, error
        client.stop_stream(cancel_requests=True)

    def engine_counts() -> list[int]:
        return [int(n) for n in cancelled.findall(triton.log_file.read_text(errors="replace"))[before:]]

    assert wait_until(engine_counts, timeout=60), "the engine never saw the routed request cancelled"
    assert all(3 <= n < 480 for n in engine_counts()), engine_counts()


def test_only_a_routed_request_can_be_stopped_by_its_id(triton):
    """pointsman_cancel stops requests the router started (ids it makes); any other id is refused, by name."""
    status, body = triton.generate(stream_model("distilgpt2"), {"pointsman_cancel": "cancel-someone-else"})

    assert status == 400, body
    assert "pointsman_cancel" in body["error"] and "pointsman-routed-" in body["error"], body


def test_every_model_in_the_repository_is_ready(triton):
    folders = {p.parent.name for p in Path(triton.repository).glob("*/config.pbtxt")}
    index = {entry["name"]: entry.get("state") for entry in triton.repository_index()}

    assert set(DEMO_MODELS) <= set(index)
    assert folders <= set(index)
    assert {name: state for name, state in index.items() if state != "READY"} == {}
    for name in index:
        assert triton.get(f"/v2/models/{name}/ready")[0] == 200, name
