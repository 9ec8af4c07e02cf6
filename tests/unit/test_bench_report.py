"""The benchmark's arithmetic and report, and the peer's generate(), without servers.

Run: .venv/bin/pytest tests/unit/test_bench_report.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pointsman.loadtests.bench_report import (
    TARGETS,
    CellResult,
    Sample,
    build_parser,
    parse_answer,
    ratios,
    render_markdown,
    request_body,
    settings_from,
    summarize,
)

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "build" / "checkpoints" / "gpt2"
DIRECT, MANUAL, AUTO, HYBRID, PEER = TARGETS


@pytest.mark.parametrize("target,expected", [
    (DIRECT, {"text_input": "hi", "max_tokens": 8, "ignore_eos": True}),
    (MANUAL, {"text_input": "hi", "max_tokens": 8, "ignore_eos": True, "model": "gpt2"}),
    (AUTO, {"text_input": "hi", "max_tokens": 8, "ignore_eos": True, "auto_select": True}),
    (HYBRID, {"text_input": "hi", "max_tokens": 8, "ignore_eos": True, "preferred_model": "gpt2",
              "fallback_mode": "auto"}),
    (PEER, {"prompt": "hi", "max_new_tokens": 8, "min_new_tokens": 8}),
])
def test_every_target_asks_for_exactly_the_same_number_of_tokens(target, expected):
    assert request_body(target, "hi", 8) == expected


@pytest.mark.parametrize("status,body,tokens,error", [
    (200, {"text_output": "x", "tokens": 8}, 8, None),
    (200, {"error": "model 'gpt2' is not loaded"}, 0, "HTTP 200: model 'gpt2' is not loaded"),  # 2.51 does this
    (400, {"error": "max_tokens must be..."}, 0, "HTTP 400: max_tokens must be..."),
    (422, {"detail": [{"msg": "bad"}]}, 0, "HTTP 422: [{'msg': 'bad'}]"),
])
def test_answers_of_both_servers_are_read_with_their_errors(status, body, tokens, error):
    got_tokens, got_error, _ = parse_answer(status, json.dumps(body).encode())
    assert (got_tokens, got_error) == (tokens, error)


def test_answer_that_is_not_json_is_an_error():
    tokens, error, _ = parse_answer(502, b"<html>bad gateway</html>")
    assert tokens == 0 and error.startswith("HTTP 502")


def test_cell_figures_count_only_successful_requests_over_the_cell_wall_time():
    samples = [Sample(0.0, 0.1, 8, selected_model="gpt2", selection_ms=0.2),
               Sample(0.1, 0.3, 8, selected_model="gpt2", selection_ms=0.4),
               Sample(0.3, 1.0, 8, selected_model="codegen", selection_ms=0.3),
               Sample(0.5, 0.6, 0, error="HTTP 400: boom")]
    cell = summarize(AUTO, 4, samples)
    assert (cell.requests, cell.errors, cell.first_error) == (4, 1, "HTTP 400: boom")
    assert cell.tokens_per_s == pytest.approx(24 / 1.0)
    assert cell.requests_per_s == pytest.approx(3 / 1.0)
    assert cell.p50_ms == pytest.approx(200.0)
    assert cell.selection_p50_ms == pytest.approx(0.3)
    assert cell.selected == {"gpt2": 2, "codegen": 1}


def test_cell_with_only_errors_has_no_figures():
    cell = summarize(DIRECT, 1, [Sample(0.0, 0.1, 0, error="x")])
    assert cell.tokens_per_s is None and cell.p50_ms is None and cell.errors == 1


def result_with(cells: list[CellResult]) -> dict:
    from dataclasses import asdict

    return {"settings": {"max_tokens": 32, "concurrency": [1], "duration": 12.0, "warmup": 2.0,
                         "checkpoint": "build/checkpoints/gpt2"},
            "machine": {"cpus": 2, "platform": "linux", "python": "3.11", "onnxruntime": "1.32.0"},
            "triton_version": "2.51.0", "notes": [], "cells": [asdict(c) for c in cells],
            "router_hop": [{"max_tokens": 1, "pairs": 10, "errors": 0, "hop_p50_ms": 1.5, "hop_iqr_ms": [1.0, 2.0],
                            "direct_p50_ms": 10.0, "router_p50_ms": 11.5}]}


def test_ratios_compare_pointsman_with_the_peer_and_the_router_with_direct():
    result = result_with([
        CellResult("gpt2 direct", 1, 10, 0, tokens_per_s=400.0, p50_ms=80.0, p99_ms=100.0),
        CellResult("router manual", 1, 10, 0, tokens_per_s=360.0, p50_ms=90.0, p99_ms=110.0),
        CellResult("peer", 1, 10, 0, tokens_per_s=100.0, p50_ms=320.0, p99_ms=500.0),
    ])
    (row,) = ratios(result)
    assert row["throughput_vs_peer"] == pytest.approx(4.0)
    assert row["p50_peer_over_direct"] == pytest.approx(4.0)
    assert row["router_hop_p50_ms"] == pytest.approx(10.0)
    assert row["router_throughput_vs_direct"] == pytest.approx(0.9)


def test_report_keeps_router_rows_with_a_note_when_the_router_is_missing():
    result = result_with([CellResult("gpt2 direct", 1, 10, 0, tokens_per_s=400.0, p50_ms=80.0, p99_ms=100.0),
                          CellResult("router auto", 1, note="router not loaded")])
    text = render_markdown(result, ["reports/benchmark_throughput.png"])
    assert "| router auto | 1 | 0 | 0 | – |" in text and "router not loaded" in text
    assert "## Router hop" in text and "+1.50" in text
    assert "![benchmark_throughput](benchmark_throughput.png)" in text


def test_quick_flag_shortens_the_run():
    settings = settings_from(build_parser().parse_args(["--quick"]))
    assert settings.concurrency == (1, 4) and settings.duration < 12 and settings.hop_pairs <= 20


def test_unknown_target_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: gpt2 direct"):
        settings_from(build_parser().parse_args(["--targets", "gpt3"]))


@pytest.mark.skipif(not (CHECKPOINT / "config.json").exists(), reason="run `pointsman demo-models` first")
def test_peer_generates_exactly_the_requested_tokens():
    from pointsman.loadtests.peer_server import GenerateRequest, create_app

    app = create_app(CHECKPOINT, threads=1)
    (route,) = [r for r in app.routes if getattr(r, "path", "") == "/generate"]
    answer = route.endpoint(GenerateRequest(prompt="def add(a, b):", max_new_tokens=6, min_new_tokens=6))
    assert answer.tokens == 6 and isinstance(answer.text, str)
