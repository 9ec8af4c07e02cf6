"""The pure parts of the perf_analyzer and genai-perf scripts: libraries, reports, commands, the shim.

    .venv/bin/pytest tests/unit/test_load_tools.py -q
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pointsman.loadtests import genai_perf, perf_analyzer
from pointsman.loadtests.perf_analyzer import Measurement, find_vendored, input_data, parse_csv, summarize


def test_vendored_libraries_are_found_by_soname_despite_auditwheels_hash(tmp_path: Path) -> None:
    for name in ("libb64-98cb6333.so.0d", "libcudart-09529672.so.12.6.77", "libcurl-75a2bf80.so.4.7.0"):
        (tmp_path / name).touch()
    assert find_vendored("libb64.so.0d", tmp_path).name == "libb64-98cb6333.so.0d"
    assert find_vendored("libcudart.so.12", tmp_path).name == "libcudart-09529672.so.12.6.77"
    assert find_vendored("libssl.so.3", tmp_path) is None


def test_perf_analyzer_csv_reports_are_read_as_numbers(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    report.write_text("Concurrency,Inferences/Second,Response Throughput,p50 latency,p90 latency,p99 latency\n"
                      "2,48.5,48.5,39436,48299,89810\n")
    assert parse_csv(report) == {"Concurrency": 2.0, "Inferences/Second": 48.5, "Response Throughput": 48.5,
                                 "p50 latency": 39436.0, "p90 latency": 48299.0, "p99 latency": 89810.0}
    report.write_text("Concurrency,p50 latency\n")
    with pytest.raises(perf_analyzer.PerfAnalyzerError, match="no measurement"):
        parse_csv(report)


def _m(mode: str, round_: int, p50: float, throughput: float = 10.0) -> Measurement:
    return Measurement(mode, "router", 1, round_, throughput, p50, p50 * 1.2, p50 * 2)


def test_the_hop_is_the_median_of_same_round_differences() -> None:
    measurements = [_m("direct", 0, 20.0), _m("manual", 0, 21.0), _m("direct", 1, 30.0), _m("manual", 1, 30.5),
                    _m("direct", 2, 22.0), _m("manual", 2, 25.0, throughput=8.0)]
    direct, manual = summarize(measurements)
    assert (direct.mode, direct.hop_ms, direct.p50_ratio) == ("direct", None, None)
    assert manual.hop_ms == pytest.approx(1.0)  # median of 1.0, 0.5, 3.0
    assert manual.p50_ms == 25.0 and manual.p50_ratio == pytest.approx(25.0 / 22.0)
    assert manual.throughput_ratio == pytest.approx(1.0)


def test_auto_gets_no_hop_because_it_may_reach_another_model() -> None:
    measurements = [_m("direct", 0, 20.0), _m("auto", 0, 24.0), _m("hybrid", 0, 21.5)]
    by_mode = {s.mode: s for s in summarize(measurements)}

    assert by_mode["auto"].hop_ms is None and by_mode["auto"].p50_ratio == pytest.approx(1.2)
    assert by_mode["hybrid"].hop_ms == pytest.approx(1.5)


def test_input_files_are_rewritten_only_when_the_model_or_length_differ(tmp_path: Path) -> None:
    assert input_data("manual", "gpt2", None, tmp_path) == perf_analyzer.INPUTS / "router_manual_gpt2.json"
    rewritten = json.loads(input_data("hybrid", "distilgpt2", 4, tmp_path).read_text())
    assert {row["preferred_model"][0] for row in rewritten["data"]} == {"distilgpt2"}
    assert {row["max_tokens"][0] for row in rewritten["data"]} == {4}


def test_every_perf_input_file_is_a_valid_request_for_its_model() -> None:
    from pointsman.policy.contract import parse_generate, parse_router

    for model, name in perf_analyzer.MODES.values():
        rows = json.loads((perf_analyzer.INPUTS / name).read_text())["data"]
        assert rows, name
        for row in rows:
            fields = {key: value[0] for key, value in row.items()}
            (parse_router if model == "router" else parse_generate)(fields)


def test_genai_perf_commands_select_the_mode_with_extra_inputs(tmp_path: Path) -> None:
    common = dict(model="gpt2", url="h:8001", concurrency=2, tokenizer=tmp_path, num_prompts=5, input_tokens=8,
                  output_tokens=4, measurement_ms=1000, artifact_dir=tmp_path)
    direct = genai_perf.profile_command(Path("genai-perf"), target="direct", **common)
    hybrid = genai_perf.profile_command(Path("genai-perf"), target="hybrid", **common)
    assert direct[direct.index("-m") + 1] == "gpt2" and hybrid[hybrid.index("-m") + 1] == "router"
    assert "preferred_model:gpt2" in hybrid and "--output-tokens-mean-deterministic" in hybrid
    assert "--streaming" not in hybrid
    assert direct[4:8] == ["--endpoint-type", "kserve", "--backend", "tensorrtllm"]
    streamed = genai_perf.profile_command(Path("genai-perf"), target="manual", streaming=True, **common)
    assert streamed[streamed.index("-m") + 1] == "router_stream" and "--streaming" in streamed


def test_the_shim_drops_genai_perfs_model_label_and_keeps_a_model_input(tmp_path: Path) -> None:
    import subprocess

    fake = tmp_path / "fake_perf_analyzer"
    fake.write_text("#!/bin/sh\necho ran \"$@\"\n")
    fake.chmod(0o755)
    shim = genai_perf.write_shim(tmp_path / "shim", Path(sys.executable), fake)
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"data": [{"model": "router", "text_input": ["a"]},
                                           {"model": ["gpt2"], "text_input": ["b"]}]}))
    done = subprocess.run([str(shim), "-m", "router", "--input-data", str(inputs)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == f"ran -m router --input-data {inputs}"
    assert json.loads(inputs.read_text())["data"] == [{"text_input": ["a"]}, {"model": ["gpt2"], "text_input": ["b"]}]


def test_perf_analyzer_streams_to_the_stream_models_and_calls_the_twins_without_streaming(tmp_path: Path) -> None:
    common = dict(url="h:8001", data=tmp_path / "d.json", concurrency=4, request_count=10, report=tmp_path / "r.csv")
    streaming = perf_analyzer.perf_command(target="router", transport="streaming", **common)
    unary = perf_analyzer.perf_command(target="gpt2", transport="unary", **common)
    assert streaming[:2] == ["-m", "router_stream"] and "--streaming" in streaming
    assert unary[:2] == ["-m", "gpt2"] and "--streaming" not in unary


def test_summaries_compare_each_transport_with_its_own_direct() -> None:
    rows = [Measurement("direct", "gpt2", 1, 0, 10.0, 20.0, 22.0, 30.0, "streaming"),
            Measurement("manual", "router", 1, 0, 10.0, 21.0, 23.0, 31.0, "streaming"),
            Measurement("direct", "gpt2", 1, 0, 10.0, 40.0, 42.0, 50.0, "unary"),
            Measurement("manual", "router", 1, 0, 10.0, 44.0, 46.0, 54.0, "unary")]
    by_key = {(s.transport, s.mode): s for s in summarize(rows)}
    assert by_key[("streaming", "manual")].hop_ms == pytest.approx(1.0)
    assert by_key[("unary", "manual")].hop_ms == pytest.approx(4.0)
