"""A mixed repository on a real tritonserver: this project's engine beside vLLM and TensorRT-LLM convention models.

    .venv/bin/pytest -q tests/integration/test_mixed_repository.py

The server (its own, on free ports) serves the router, the control models, the exported
gpt2 engine, and two test doubles (tests/fixtures/conventions.py): `vllm_coder` declares
vLLM's published tensors, `trtllm_reasoner` TensorRT-LLM's tensorrt_llm_bls ones; both
generate with this project's engine. Routing metadata is in each config (`pointsman.*`).
A third double, `late_reasoner`, is written and loaded while the server runs. The
tests run in file order: the later ones load, unload and reload models.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from pointsman.launcher.tritonserver import ServerPorts, TritonServer
from pointsman.policy.routing_metadata import OVERLAY_FILE, routing_parameters
from tests.fixtures.conventions import double_config, write_config, write_double
from tests.integration.conftest import MODEL_REPOSITORY, TritonHandle, missing_demo_models, start_until_ready
from tests.waiting import wait_for, wait_until

CODING = "def fibonacci(n):"
CREATIVE = "Write a poem about the autumn rain"
REASONING = "Solve step by step: what is 17 times 23?"
SHARED = ("router", "router_stream", "catalog", "recommend", "usage", "gpt2_stream")


def routing(interface: str, best: str, score: float = 1.0, quality: float = 0.8) -> dict[str, str]:
    """A specialist: `score` at its task, 0.05 at the others; the same speed prior for every model."""
    scores = {task: (score if task == best else 0.05) for task in ("coding", "creative", "qa", "reasoning")}
    return routing_parameters(interface=interface, scores=scores, capabilities=("general", best),
                              quality_prior=quality, context_length=512, tokens_per_second_prior=150.0)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonHandle]:
    missing = missing_demo_models(MODEL_REPOSITORY)
    if missing:
        pytest.fail(f"demo models {', '.join(missing)} are not exported: run `make setup` first", pytrace=False)
    repository = tmp_path_factory.mktemp("mixed_repository")
    for name in SHARED:
        (repository / name).symlink_to(MODEL_REPOSITORY / name, target_is_directory=True)
    # gpt2 keeps its exported metadata but the same speed prior as the doubles: the overlay says so
    (repository / OVERLAY_FILE).write_text("[gpt2_stream]\ntokens_per_second_prior = 150\n")
    write_double(repository, "vllm_coder", "vllm", MODEL_REPOSITORY / "codegen_stream", routing("vllm", "coding"))
    write_double(repository, "trtllm_reasoner", "tensorrtllm", MODEL_REPOSITORY / "distilgpt2_stream",
                 routing("tensorrtllm", "reasoning", score=0.5))
    state = tmp_path_factory.mktemp("mixed_server")
    log_file = state / "tritonserver.log"
    server = TritonServer(repository, ports=ServerPorts.free(), state_dir=state, log_file=log_file)
    handle = TritonHandle(server=server, log_file=log_file, repository=repository)
    try:
        start_until_ready(server)
        yield handle
    finally:
        server.stop()


def route(server: TritonHandle, **body) -> tuple[int, dict]:
    return server.generate("router", {"max_tokens": 6, **body})


def catalog(server: TritonHandle) -> dict[str, dict]:
    status, answer = server.generate("catalog", {})
    assert status == 200, answer
    return {m["model_name"]: m for m in json.loads(answer["models"])}


def repository_call(server: TritonHandle, model: str, action: str) -> None:
    status, body = server.post(f"/v2/repository/models/{model}/{action}")
    assert status == 200, body


# -- selection across conventions ---------------------------------------------------------


def test_catalog_lists_every_routable_model_with_its_interface(mixed) -> None:
    models = catalog(mixed)

    assert {name: m["interface"] for name, m in models.items()} == {
        "gpt2": "pointsman", "vllm_coder": "vllm", "trtllm_reasoner": "tensorrtllm"}
    assert models["gpt2"]["triton_model"] == "gpt2_stream"
    assert models["gpt2"]["priors"]["tokens_per_second"] == 150.0  # the overlay's value, over the config's
    assert all(m["current_status"]["loaded"] for m in models.values())


@pytest.mark.parametrize("model", ["gpt2", "vllm_coder", "trtllm_reasoner"])
def test_manual_selection_reaches_each_convention(mixed, model: str) -> None:
    status, answer = route(mixed, text_input=CODING, model=model, max_tokens=5)

    assert status == 200, answer
    assert (answer["selected_model"], answer["selection_mode"]) == (model, "manual")
    assert answer["text_output"].strip()


def test_vllm_reports_its_token_count_and_finish_reason(mixed) -> None:
    status, answer = route(mixed, text_input=CODING, model="vllm_coder", max_tokens=5, ignore_eos=True)

    assert status == 200, answer
    assert (answer["tokens"], answer["finish_reason"]) == (5, "length")


@pytest.mark.parametrize(("prompt", "expected"), [
    (CODING, "vllm_coder"), (CREATIVE, "gpt2"), (REASONING, "trtllm_reasoner")])
def test_auto_selection_picks_the_specialist_whatever_its_convention(mixed, prompt: str, expected: str) -> None:
    status, answer = route(mixed, text_input=prompt, auto_select=True)

    assert status == 200, answer
    assert answer["selected_model"] == expected, answer["selection_reason"]


def test_recommend_ranks_models_of_every_convention(mixed) -> None:
    status, answer = mixed.generate("recommend", {"text_input": CODING})

    assert status == 200, answer
    assert answer["recommended_model"] == "vllm_coder"
    assert {a["model"] for a in json.loads(answer["alternatives"])} == {"gpt2", "trtllm_reasoner"}


# -- streaming and what a convention cannot take ---------------------------------------------


@pytest.mark.parametrize("model", ["vllm_coder", "trtllm_reasoner"])
def test_streaming_passes_through_each_convention(mixed, model: str) -> None:
    fields = {"text_input": CODING, "model": model, "max_tokens": 8, "ignore_eos": model == "vllm_coder"}
    if model == "trtllm_reasoner":
        fields.pop("ignore_eos")
    whole = route(mixed, **fields)[1]["text_output"]
    streamed = mixed.grpc_stream("router_stream", {**fields, "stream": True})

    assert streamed.error is None and streamed.final
    pieces = [r["text_output"] for r in streamed.responses if r.get("text_output")]
    assert len(pieces) >= 2  # one piece per new text, not one answer at the end
    assert streamed.text == whole  # greedy: the same text, streamed
    assert streamed.responses[0]["selected_model"] == model


@pytest.mark.parametrize(("model", "field", "value"), [
    ("trtllm_reasoner", "ignore_eos", True),
    ("vllm_coder", "messages", '[{"role": "user", "content": "hi"}]'),
])
def test_a_field_the_convention_cannot_take_is_an_error_naming_field_and_model(mixed, model, field, value) -> None:
    body = {"model": model, field: value}
    if field != "messages":
        body["text_input"] = CODING
    status, answer = route(mixed, **body)

    assert status == 400, answer
    assert f"invalid '{field}': model '{model}'" in answer["error"]


# -- hybrid fallback, joining, leaving, reloading --------------------------------------------


def test_hybrid_falls_back_across_conventions_when_the_preferred_model_is_unloaded(mixed) -> None:
    repository_call(mixed, "vllm_coder", "unload")
    try:
        wait_for(lambda: not catalog(mixed)["vllm_coder"]["current_status"]["loaded"], what="vllm_coder unloaded")
        status, answer = route(mixed, text_input=CODING, preferred_model="vllm_coder")
        assert status == 200, answer
        assert answer["fallback_used"] and answer["selected_model"] in {"gpt2", "trtllm_reasoner"}
        status, answer = route(mixed, text_input=CODING, preferred_model="vllm_coder", fallback_mode="none")
        assert status == 400 and "vllm_coder" in answer["error"]
    finally:
        repository_call(mixed, "vllm_coder", "load")
    answer = wait_for(lambda: (lambda a: a if a.get("selected_model") == "vllm_coder" else None)(
        route(mixed, text_input=CODING, preferred_model="vllm_coder")[1]), timeout=10, what="vllm_coder back")
    assert answer["fallback_used"] is False and answer["selection_mode"] == "hybrid"


def _auto_reasoning(server: TritonHandle) -> str:
    status, answer = route(server, text_input=REASONING, auto_select=True, max_tokens=2)
    assert status == 200, answer
    return answer["selected_model"]


def test_a_model_loaded_at_run_time_joins_auto_selection_then_leaves_when_unloaded(mixed) -> None:
    assert _auto_reasoning(mixed) == "trtllm_reasoner"
    write_double(mixed.repository, "late_reasoner", "vllm", MODEL_REPOSITORY / "distilgpt2_stream",
                 routing("vllm", "reasoning", score=1.0))
    repository_call(mixed, "late_reasoner", "load")

    wait_for(lambda: _auto_reasoning(mixed) == "late_reasoner", timeout=10, what="late_reasoner chosen by auto")
    assert catalog(mixed)["late_reasoner"]["interface"] == "vllm"
    # recommend follows the index on its own, as the router does: within its next poll
    assert wait_until(lambda: mixed.generate("recommend", {"text_input": REASONING})[1]["recommended_model"]
                      == "late_reasoner", timeout=10)

    repository_call(mixed, "late_reasoner", "unload")
    wait_for(lambda: _auto_reasoning(mixed) == "trtllm_reasoner", timeout=10, what="auto back on trtllm_reasoner")
    assert wait_until(lambda: not catalog(mixed)["late_reasoner"]["current_status"]["loaded"], timeout=10)


def test_a_reloaded_model_picks_up_its_changed_metadata(mixed) -> None:
    folder = mixed.repository / "late_reasoner"
    write_config(folder, double_config("late_reasoner", "vllm", MODEL_REPOSITORY / "distilgpt2_stream",
                                       routing("vllm", "reasoning", score=1.0)))
    repository_call(mixed, "late_reasoner", "load")
    wait_for(lambda: _auto_reasoning(mixed) == "late_reasoner", timeout=10, what="late_reasoner back")

    write_config(folder, double_config("late_reasoner", "vllm", MODEL_REPOSITORY / "distilgpt2_stream",
                                       routing("vllm", "creative", score=0.2, quality=0.1)))
    repository_call(mixed, "late_reasoner", "load")  # a reload: Triton keeps it READY throughout

    assert wait_until(lambda: catalog(mixed)["late_reasoner"]["specialization_score"]["reasoning"] == 0.05,
                      timeout=10)
    assert catalog(mixed)["late_reasoner"]["capabilities"] == ["general", "creative"]
    # the router re-reads the configs of READY models on its own schedule (every 0.5 s)
    wait_for(lambda: _auto_reasoning(mixed) == "trtllm_reasoner", timeout=10, what="router sees the new scores")


def test_a_model_with_broken_metadata_is_left_out_and_the_catalog_says_why(mixed) -> None:
    write_double(mixed.repository, "broken", "vllm", MODEL_REPOSITORY / "distilgpt2_stream",
                 {**routing("vllm", "qa"), "pointsman.quality_prior": "excellent"})
    repository_call(mixed, "broken", "load")
    try:
        problems = wait_for(lambda: json.loads(mixed.generate("catalog", {})[1]["problems"]).get("broken"),
                            timeout=10, what="the catalog reports broken's metadata")
        assert problems == ("model 'broken', key 'pointsman.quality_prior': must be a number from 0 to 1 "
                            "(got 'excellent')")
        assert "broken" not in catalog(mixed)
    finally:
        repository_call(mixed, "broken", "unload")
        shutil.rmtree(mixed.repository / "broken")


def test_usage_counts_requests_to_models_of_every_convention(mixed) -> None:
    status, answer = mixed.generate("usage", {})
    assert status == 200, answer
    by_model = json.loads(answer["summary"])["by_model"]
    assert {"gpt2", "vllm_coder", "trtllm_reasoner", "late_reasoner"} <= set(by_model)


def test_a_model_whose_folder_is_removed_leaves_the_catalog(mixed) -> None:
    repository_call(mixed, "late_reasoner", "unload")
    shutil.rmtree(mixed.repository / "late_reasoner")

    assert wait_until(lambda: "late_reasoner" not in catalog(mixed), timeout=10)
    assert set(catalog(mixed)) == {"gpt2", "vllm_coder", "trtllm_reasoner"}
