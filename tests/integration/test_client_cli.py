"""The Python client, the `pointsman` client commands and the load tools against a real tritonserver.

    .venv/bin/pytest tests/integration/test_client_cli.py -q

Every command runs over HTTP and over gRPC. The CLI runs in process (pointsman.launcher.cli.main,
what the console script calls) except once, where the console script itself must end a
server error with one line and exit code 1. locust and perf_analyzer run as the user
would run them, as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pointsman.client import AsyncPointsmanClient, PointsmanClient, PointsmanClientError
from pointsman.launcher.cli import main as pointsman_main
from tests.integration.experiment_waits import router_applies
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LANGUAGE_MODELS = {"gpt2", "distilgpt2", "codegen"}
PROTOCOLS = ("http", "grpc")
CODE_PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n"
POEM_PROMPT = "Write a short poem about the autumn rain falling on the old city"


def address(triton, protocol: str) -> str:
    return triton.http_address if protocol == "http" else triton.grpc_url


def cli(triton, capsys, protocol: str, *argv: str) -> tuple[int, str, str]:
    """Run `pointsman ARGV --url ... --protocol ...` in process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = pointsman_main([*argv, "--url", address(triton, protocol), "--protocol", protocol])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(triton, capsys, protocol: str, *argv: str):
    code, out, err = cli(triton, capsys, protocol, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# -- pointsman infer -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_manual_is_answered_by_exactly_the_named_model(triton, capsys, protocol):
    answer = cli_json(triton, capsys, protocol, "infer", CODE_PROMPT, "--model", "codegen", "--max-tokens", "6",
                      "--ignore-eos")
    assert (answer["selected_model"], answer["selection_mode"], answer["tokens"]) == ("codegen", "manual", 6)
    assert answer["text"] and answer["fallback_used"] is False and "manual" in answer["selection_reason"]
    assert answer["request_id"] and answer["selection_ms"] >= 0 and answer["latency_ms"] > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("options", "mode"), [
    (("--auto",), "auto"),
    ((), "auto"),
    (("--prefer", "gpt2"), "hybrid"),
    (("--prefer", "distilgpt2", "--fallback", "fastest"), "hybrid"),
])
def test_infer_reports_how_the_model_was_chosen(triton, capsys, protocol, options, mode):
    answer = cli_json(triton, capsys, protocol, "infer", POEM_PROMPT, *options, "--max-tokens", "4")
    assert answer["selection_mode"] == mode and answer["selected_model"] in LANGUAGE_MODELS
    assert answer["selection_reason"] and answer["tokens"] >= 1
    if mode == "hybrid":
        assert answer["selected_model"] == options[1] and answer["fallback_used"] is False
    else:
        assert answer["task"] == "creative"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_streams_the_text_then_one_summary_line(triton, capsys, protocol):
    code, out, err = cli(triton, capsys, protocol, "infer", POEM_PROMPT, "--prefer", "gpt2", "--stream",
                         "--max-tokens", "8", "--ignore-eos")
    assert code == 0, err
    assert out.endswith("\n") and out.strip()
    [summary] = err.strip().splitlines()
    assert summary.startswith("gpt2 | hybrid | ") and "| 8 tokens |" in summary


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_error_is_one_line_on_stderr_and_exit_code_1(triton, capsys, protocol):
    code, out, err = cli(triton, capsys, protocol, "infer", "hello", "--model", "nope")
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("pointsman infer: error: router: invalid 'model'")
    assert "nope" in line and "gpt2" in line  # names the bad value and the loaded models


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_field_the_server_refuses_is_reported_in_its_words(triton, capsys, protocol):
    code, _, err = cli(triton, capsys, protocol, "infer", "hello", "--max-tokens", "100000")
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("pointsman infer: error: router: invalid 'max_tokens'") and "100000" in line


def test_the_console_script_ends_a_server_error_without_a_traceback(triton):
    done = subprocess.run([str(BIN / "pointsman"), "infer", "hello", "--model", "nope", "--url",
                           triton.http_address], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("pointsman infer: error: router: invalid 'model'")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_direct_skips_the_router(triton, capsys, protocol):
    answer = cli_json(triton, capsys, protocol, "infer", CODE_PROMPT, "--model", "gpt2", "--direct",
                      "--max-tokens", "3", "--ignore-eos")
    assert (answer["selected_model"], answer["tokens"], answer["selection_mode"]) == ("gpt2", 3, None)


# -- pointsman models / recommend ----------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_models_lists_each_language_model_with_metadata_and_live_status(triton, capsys, protocol):
    models = {m["model_name"]: m for m in cli_json(triton, capsys, protocol, "models")}
    assert set(models) >= LANGUAGE_MODELS
    codegen = models["codegen"]
    assert codegen["source"] == "catalog" and codegen["loaded"] is True
    assert "coding" in codegen["capabilities"] and codegen["specialization_score"]["coding"] > 0.5
    assert "queue_length" in codegen["current_status"] and codegen["performance_metrics"]
    [only] = cli_json(triton, capsys, protocol, "models", "--model", "gpt2")
    assert only["model_name"] == "gpt2"


def test_models_prints_a_table(triton, capsys):
    code, out, _ = cli(triton, capsys, "http", "models")
    assert code == 0
    assert "Pointsman models" in out and all(name in out for name in LANGUAGE_MODELS)
    assert "specialization" in out and "queue_length" in out


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recommend_names_a_model_with_confidence_alternatives_and_reasoning(triton, capsys, protocol):
    advice = cli_json(triton, capsys, protocol, "recommend", CODE_PROMPT, "--max-response-time", "5",
                      "--min-quality", "0.3", "--prefer-speed")
    assert advice["recommended_model"] in LANGUAGE_MODELS and 0.0 <= advice["confidence"] <= 1.0
    assert advice["reasoning"] and advice["task"] == "coding"
    others = {a["model"] for a in advice["alternatives"]}
    assert others <= LANGUAGE_MODELS and advice["recommended_model"] not in others


def test_recommend_prints_one_readable_answer(triton, capsys):
    code, out, _ = cli(triton, capsys, "grpc", "recommend", POEM_PROMPT)
    assert code == 0
    first, reasoning, *_ = out.strip().splitlines()
    assert first.split()[0] in LANGUAGE_MODELS and "confidence" in first and reasoning.startswith("reasoning: ")


# -- the Python client ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stream_yields_pieces_then_the_final_metadata(triton, protocol):
    with PointsmanClient(address(triton, protocol), protocol) as client:
        stream = client.stream(POEM_PROMPT, model="gpt2", max_tokens=8, ignore_eos=True)
        pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == stream.response.text
    assert (stream.response.selected_model, stream.response.tokens) == ("gpt2", 8)
    assert stream.response.first_response_ms <= stream.response.latency_ms


def test_a_grpc_stream_left_early_leaves_the_client_usable(triton):
    with PointsmanClient(triton.grpc_url, "grpc") as client:
        with client.stream(POEM_PROMPT, model="gpt2", max_tokens=64, ignore_eos=True) as stream:
            first = next(iter(stream))
        assert first
        assert client.generate(CODE_PROMPT, model="codegen", max_tokens=2).selected_model == "codegen"


def test_one_grpc_client_serves_several_threads(triton):
    with PointsmanClient(triton.grpc_url, "grpc") as client, ThreadPoolExecutor(4) as pool:
        models = ["gpt2", "distilgpt2", "codegen", "gpt2"]
        answers = list(pool.map(lambda m: client.generate(CODE_PROMPT, model=m, max_tokens=4), models))
    assert [a.selected_model for a in answers] == models


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_asyncio_client_runs_modes_concurrently_and_raises_server_errors(triton, protocol):
    async def scenario():
        async with AsyncPointsmanClient(address(triton, protocol), protocol) as client:
            manual, auto, hybrid = await asyncio.gather(
                client.generate(CODE_PROMPT, model="codegen", max_tokens=4),
                client.generate(POEM_PROMPT, auto=True, max_tokens=4),
                client.generate(POEM_PROMPT, prefer="gpt2", fallback="none", max_tokens=4))
            stream = client.stream(CODE_PROMPT, model="distilgpt2", max_tokens=6, ignore_eos=True)
            pieces = [piece async for piece in stream]
            with pytest.raises(PointsmanClientError) as caught:
                await client.generate("hello", model="nope")
            advice = await client.recommend(CODE_PROMPT)
            models = await client.models()
            return manual, auto, hybrid, pieces, stream.response, caught.value, advice, models

    manual, auto, hybrid, pieces, streamed, error, advice, models = asyncio.run(scenario())
    assert [r.selection_mode for r in (manual, auto, hybrid)] == ["manual", "auto", "hybrid"]
    assert manual.selected_model == "codegen" and hybrid.selected_model == "gpt2"
    assert "".join(pieces) == streamed.text and streamed.tokens == 6
    assert error.model == "router" and "nope" in str(error) and "\n" not in str(error)
    assert advice.recommended_model in LANGUAGE_MODELS
    assert {m.model_name for m in models} >= LANGUAGE_MODELS


# -- load tools -----------------------------------------------------------------------------


def test_a_headless_locust_run_mixes_modes_over_http_and_grpc_without_failures(triton):
    done = subprocess.run(
        [str(BIN / "locust"), "-f", "loadtests/locustfile.py", "--headless", "-u", "4", "-r", "4", "-t", "8s",
         "--host", triton.http_url, "--grpc-url", triton.grpc_url, "--max-tokens", "8",
         "--mode-weights", "manual=1,auto=1,hybrid=1,direct=1", "--json", "--loglevel", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(done.stdout)
    seen = {(entry["method"], entry["name"]) for entry in stats if entry["num_requests"]}
    assert {("POST", "router manual"), ("POST", "router auto"), ("POST", "router hybrid"), ("POST", "direct")} <= seen
    assert any(method == "grpc" for method, _ in seen)
    assert sum(entry["num_failures"] for entry in stats) == 0


def test_perf_analyzer_compares_the_router_with_gpt2_called_directly(triton, tmp_path):
    report = tmp_path / "perf.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.perf_analyzer", "--url", triton.grpc_url, "--concurrency", "1",
         "--rounds", "1", "--request-count", "10", "--max-tokens", "4", "--json", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    summaries = {(s["transport"], s["mode"]): s for s in json.loads(report.read_text())["summaries"]}
    # with --streaming on router_stream / gpt2_stream, and without on their twins router / gpt2
    assert set(summaries) == {(t, m) for t in ("streaming", "unary") for m in ("direct", "manual")}
    for transport in ("streaming", "unary"):
        manual = summaries[(transport, "manual")]
        assert manual["throughput"] > 0 and manual["p50_ms"] > 0 and manual["hop_ms"] is not None
    assert "router hop ms" in done.stdout
    assert "perf_analyzer -m router_stream -i grpc" in done.stderr and "--streaming" in done.stderr
    assert "perf_analyzer -m router -i grpc" in done.stderr


# -- pointsman experiments / usage ---------------------------------------------------------


def test_experiment_created_fed_and_reported_from_the_cli(triton, capsys):
    import uuid

    name = f"cli-{uuid.uuid4().hex[:6]}"
    created = cli_json(triton, capsys, "http", "experiments", "create", name, "--task", "creative",
                       "--arm", "big=model:gpt2:50", "--arm", "small=model:distilgpt2:50", "--min-samples", "100")
    assert created["status"] == "active" and [a["name"] for a in created["arms"]] == ["big", "small"]
    try:
        assert router_applies(triton, name)
        with PointsmanClient(triton.http_address, "http") as client:
            answers = [client.generate(f"{POEM_PROMPT} {i}", auto=True, max_tokens=4, user=f"u{i}") for i in range(24)]
        assert {a.selected_model for a in answers} == {"gpt2", "distilgpt2"}
        # the router writes records in the background; router_applies' one request joined too
        assert wait_until(lambda: sum(arm["requests"] for arm in cli_json(
            triton, capsys, "http", "experiments", "report", name)["arms"]) == 25, timeout=10)
        report = cli_json(triton, capsys, "http", "experiments", "report", name)
        assert report["decision"]["state"] == "collecting"  # 25 requests, 100 per arm needed
        code, out, _ = cli(triton, capsys, "http", "experiments", "report", name)
        assert code == 0 and "big" in out and "duration_s" in out
    finally:
        cli(triton, capsys, "http", "experiments", "stop", name)
    code, _, err = cli(triton, capsys, "http", "experiments", "report", "no-such-experiment")
    assert code == 1 and "no-such-experiment" in err and len(err.strip().splitlines()) == 1


def test_usage_summary_from_the_cli(triton, capsys):
    summary = cli_json(triton, capsys, "grpc", "usage", "--window", "3600")
    assert summary["requests"] >= 1 and "suggestions" in summary
