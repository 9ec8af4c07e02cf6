"""The soak's arithmetic: per-minute percentiles, stub names, and when memory growth is a leak."""

from __future__ import annotations

import math

import pytest

from pointsman.loadtests.soak import Sample, growth, minute_rows, report, stub_name


def test_each_minute_gets_its_requests_errors_and_percentiles():
    record = {"latency_ms": {"0": [float(v) for v in range(1, 101)], "1": []}, "errors": {"1": 3}, "messages": {}}
    first, second = minute_rows(record, 2)
    assert (first["minute"], first["requests"], first["errors"]) == (1, 100, 0)
    assert first["p50_ms"] == pytest.approx(50.5) and first["p99_ms"] == pytest.approx(99.01)
    assert (second["requests"], second["errors"]) == (3, 3) and math.isnan(second["p50_ms"])


def test_a_stub_is_named_by_the_model_folder_in_its_command_line():
    cmdline = "/x/triton_python_backend_stub\0/repo/model_repository/gpt2_stream/1/model.py\0shm\0"
    assert stub_name(cmdline) == "gpt2_stream"
    assert stub_name("/usr/bin/python3\0-m\0locust") is None


def samples(series: list[float]) -> list[Sample]:
    return [Sample(float(i), {"router_stream": mb}, 20) for i, mb in enumerate(series)]


@pytest.mark.parametrize(("series", "levels"), [
    ([100, 130, 140, 141, 141, 142, 142], True),  # warm-up growth, then flat
    ([100, 110, 120, 130, 140, 150, 160], False),  # the same slope to the end: a leak
    ([100, 101, 100, 102, 101, 103, 104], True),  # noise under LEAK_MIN_MB
])
def test_growth_that_does_not_level_off_is_flagged(series, levels):
    assert growth(samples(series), "router_stream")[2] is levels


def test_the_report_has_a_row_per_minute_and_a_verdict_per_process():
    record = {"latency_ms": {"0": [10.0], "1": [12.0]}, "errors": {}, "messages": {"grpc x: boom": 2}}
    text = report(minute_rows(record, 2), samples([100, 101, 102]), record)
    assert "| 1 | 1 | 0 | 10 | 10 | 10 | 101 | 20 |" in text
    assert "2 x grpc x: boom" in text and "| router_stream | 100 | 102 |" in text
