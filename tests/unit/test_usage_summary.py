"""The usage summary: counts, rates, percentiles and the routing table on crafted records."""

from __future__ import annotations

import pytest

from pointsman.errors import InvalidRequest
from pointsman.ops.usage.analytics import describe, summarize
from pointsman.ops.usage.service import UsageAnalytics, parse_window


@pytest.mark.parametrize(("values", "expected"), [
    # 1..101: linear-interpolation percentiles fall on the data
    (list(range(1, 102)), {"n": 101, "mean": 51.0, "p50": 51.0, "p90": 91.0, "p99": 100.0, "max": 101.0}),
    # 0, 10: p50 halfway, p90 = 0 + 0.9 * 10, p99 = 9.9
    ([10.0, 0.0], {"n": 2, "mean": 5.0, "p50": 5.0, "p90": 9.0, "p99": 9.9, "max": 10.0}),
    ([3.0, None], {"n": 1, "mean": 3.0, "p50": 3.0, "p90": 3.0, "p99": 3.0, "max": 3.0}),
    ([None], {"n": 0}),
])
def test_describe_gives_interpolated_percentiles(values, expected) -> None:
    assert describe(values) == pytest.approx(expected)


def test_summary_counts_modes_models_tasks_fallbacks_errors_and_tokens(make_record) -> None:
    records = [
        make_record(selection_mode="manual", selected_model="codegen", task="", analyzer="", tokens=10),
        make_record(selection_mode="auto", selected_model="codegen", task="coding", tokens=30),
        make_record(selection_mode="auto", selected_model="gpt2", task="coding", tokens=5,
                    error_kind="generation_failed"),
        make_record(selection_mode="hybrid", selected_model="gpt2", task="creative", fallback_used=True,
                    fallback_reason="preferred_unavailable", tokens=20),
        make_record(selection_mode="", selected_model="", task="", analyzer="", tokens=0, error_kind="invalid_request",
                    selection_ms=0.0, ttft_s=None),
    ]
    s = summarize(records, window_s=60, now=2_000.0)
    assert s["requests"] == 5
    assert s["by_mode"] == {"manual": 1, "auto": 2, "hybrid": 1, "unknown": 1}
    assert s["by_model"] == {"codegen": 2, "gpt2": 2}
    assert s["by_task"] == {"coding": 2, "creative": 1}
    assert s["fallback"] == {"count": 1, "rate": 0.2, "reasons": {"preferred_unavailable": 1}}
    assert s["errors"] == {"count": 2, "rate": 0.4, "by_kind": {"generation_failed": 1, "invalid_request": 1}}
    assert s["tokens"] == {"total": 60, "per_request_mean": 20.0}  # failed requests generate nothing counted
    assert s["routing_table"] == {"coding": {"requests": 2, "models": {"codegen": 0.5, "gpt2": 0.5}},
                                  "creative": {"requests": 1, "models": {"gpt2": 1.0}}}
    assert s["per_model"]["gpt2"]["error_rate"] == 0.5
    assert s["latency"]["selection_ms"]["n"] == 4  # the request rejected before selection has no decision time
    assert s["window_s"] == 60 and s["generated_at"] == 2_000.0


def test_summary_latencies_match_independent_arithmetic(make_record) -> None:
    # ttft 0.1 s, then tokens at 0.02 s each: duration = 0.1 + 0.02 * (tokens - 1)
    records = [make_record(ttft_s=0.1, tokens=n, duration_s=0.1 + 0.02 * (n - 1), selected_model="gpt2")
               for n in (11, 21, 31, 41, 51)]
    s = summarize(records)
    assert s["latency"]["per_token_s"]["p50"] == pytest.approx(0.02)
    assert s["latency"]["duration_s"]["p50"] == pytest.approx(0.1 + 0.02 * 30)
    total_tokens, total_time = 155, sum(0.1 + 0.02 * (n - 1) for n in (11, 21, 31, 41, 51))
    assert s["per_model"]["gpt2"]["tokens_per_s"] == pytest.approx(total_tokens / total_time, abs=1e-3)


def test_empty_window_gives_zeros_not_errors() -> None:
    s = summarize([])
    assert s["requests"] == 0 and s["fallback"]["rate"] == 0.0 and s["latency"]["duration_s"] == {"n": 0}
    assert s["suggestions"] == [] and s["routing_table"] == {}


def test_analytics_reads_only_the_window(state_store, make_record) -> None:
    state_store.insert_records([make_record(timestamp=t) for t in (100.0, 950.0, 990.0)])
    analytics = UsageAnalytics(state_store)
    assert analytics.summary(window_s=60, now=1_000.0)["requests"] == 2
    assert analytics.summary(now=1_000.0)["requests"] == 3
    assert analytics.summary(window_s=0, now=1_000.0)["requests"] == 3
    limited = UsageAnalytics(state_store, max_records=2).summary(now=1_000.0)
    assert limited["requests"] == 2 and limited["truncated"]


def test_prune_keeps_the_retention_window(state_store, make_record) -> None:
    state_store.insert_records([make_record(timestamp=t) for t in (0.0, 86_400.0 * 9, 86_400.0 * 10)])
    analytics = UsageAnalytics(state_store)
    assert analytics.prune(0, now=86_400.0 * 10) == 0
    assert analytics.prune(2, now=86_400.0 * 10) == 1
    assert [r.timestamp for r in state_store.records()] == [86_400.0 * 9, 86_400.0 * 10]


@pytest.mark.parametrize("value", [-1, "soon", float("nan"), float("inf"), True, [60]])
def test_window_must_be_a_non_negative_number_naming_the_field(value) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_window(value)
    assert err.value.field == "window_s" and "seconds" in str(err.value)


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, None), (60, 60.0), ("30", 30.0), (1.5, 1.5)])
def test_window_accepts_numbers_and_zero_means_everything(value, expected) -> None:
    assert parse_window(value) == expected
