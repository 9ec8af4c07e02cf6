"""The console's data shaping: model states, usage time slices, experiment interval plots, the decision log."""

from __future__ import annotations

import pytest

from pointsman.gateway.console.decisions import DecisionLog, decision_from, preview, prompt_of
from pointsman.gateway.console.views import experiment_view, interval_plot, model_row, model_state, usage_buckets


# -- models -----------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "state"), [
    ({"loaded": True}, "ready"),
    ({"loaded": False}, "unavailable"),
    ({"loaded": False, "state": "reloading"}, "reloading"),
    ({"loaded": True, "state": "unhealthy"}, "unhealthy"),  # the catalog's own word wins
])
def test_model_state_is_the_catalogs_word_else_ready_when_loaded(status, state):
    assert model_state(status) == state


def test_model_row_takes_the_measured_figures_and_marks_a_model_that_is_not_ready_down():
    entry = {"model_name": "gpt2", "family": "gpt2", "capabilities": ["text"], "specialization_score": {"qa": 0.9},
             "context_length": 1024,
             "performance_metrics": {"measured_tokens_per_second": 41.5, "avg_tokens_per_second": 50.0,
                                     "avg_time_to_first_token_s": 0.02, "requests_served": 7, "errors": 1},
             "current_status": {"loaded": False, "queue_length": 2, "in_flight": 1, "last_used": None,
                                "reason": "stub died"}}

    row = model_row(entry)

    assert row["name"] == "gpt2" and row["state"] == "unavailable" and row["down"] is True
    assert (row["tokens_per_s"], row["ttft_s"], row["queue"], row["in_flight"]) == (41.5, 0.02, 2, 1)
    assert row["status"]["reason"] == "stub died"


# -- usage ------------------------------------------------------------------------------
def _summary(requests, by_mode, fallbacks=0):
    return {"requests": requests, "by_mode": by_mode, "by_model": {"gpt2": requests}, "by_task": {},
            "fallback": {"count": fallbacks}, "errors": {"count": 0}}


def test_usage_slices_are_differences_of_nested_windows():
    summaries = {60: _summary(3, {"auto": 2, "manual": 1}, fallbacks=1),
                 300: _summary(10, {"auto": 6, "manual": 3, "hybrid": 1}, fallbacks=1)}

    newest, older = usage_buckets(summaries)

    assert (newest["start_s"], newest["end_s"], newest["requests"], newest["fallbacks"]) == (0, 60, 3, 1)
    assert newest["per_minute"] == 3.0
    assert (older["start_s"], older["end_s"], older["requests"], older["fallbacks"]) == (60, 300, 7, 0)
    assert older["by_mode"] == {"auto": 4, "manual": 2, "hybrid": 1}
    assert older["by_model"] == {"gpt2": 7}
    assert older["per_minute"] == pytest.approx(7 / 4)


def test_usage_slice_never_counts_below_zero_when_a_record_lands_between_two_calls():
    summaries = {60: _summary(5, {"auto": 5}), 300: _summary(4, {"auto": 4})}

    assert usage_buckets(summaries)[1]["requests"] == 0
    assert usage_buckets(summaries)[1]["by_mode"] == {"auto": 0}


# -- experiments ------------------------------------------------------------------------
REPORT = {
    "control": "big", "stopping": {"metric": "duration_s"},
    "decision": {"metric": "duration_s", "better": "lower", "state": "collecting"},
    "arms": [
        {"name": "big", "model": "gpt2", "policy": None, "error_rate": {"n": 4, "value": 0.25, "ci_low": 0.05,
                                                                         "ci_high": 0.7},
         "metrics": {"duration_s": {"n": 3, "mean": 0.5, "ci_low": 0.3, "ci_high": 0.7}}},
        {"name": "small", "model": "distilgpt2", "policy": None, "error_rate": {"n": 1, "value": 0.0},
         "metrics": {"duration_s": {"n": 1, "mean": 0.2, "ci_low": None, "ci_high": None}}},
    ],
    "comparisons": [{"arm": "small", "vs": "big", "metrics": {"duration_s": None}, "plan": None}],
}


def test_interval_plot_draws_the_primary_metric_with_the_reports_own_intervals():
    plot = interval_plot(REPORT)

    assert plot["metric"] == "duration_s" and plot["better"] == "lower" and plot["control"] == "big"
    assert plot["arms"][0] == {"name": "big", "model": "gpt2", "policy": None, "n": 3, "mean": 0.5, "ci_low": 0.3,
                               "ci_high": 0.7}
    assert plot["arms"][1]["ci_low"] is None  # one sample: a mean, no interval


def test_interval_plot_of_the_error_rate_uses_the_wilson_interval():
    arms = interval_plot(REPORT, "error_rate")["arms"]

    assert (arms[0]["mean"], arms[0]["ci_low"], arms[0]["ci_high"]) == (0.25, 0.05, 0.7)


def test_experiment_view_keeps_the_report_and_adds_the_primary_comparisons():
    view = experiment_view(REPORT)

    assert view["control"] == "big" and view["plot"]["metric"] == "duration_s"
    assert view["primary_comparisons"] == [{"arm": "small", "vs": "big", "result": None, "plan": None}]


# -- decisions --------------------------------------------------------------------------
class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _decision(request_id: str, arrived: float, mode: str = "auto", model: str = "gpt2"):
    outputs = {"selection_mode": mode, "selected_model": model, "selection_reason": "best score",
               "task": "creative", "fallback_used": False, "selection_ms": 0.41, "tokens": 5}
    return decision_from(request_id, {"text_input": "Once upon a time"}, outputs, arrived=arrived, latency_ms=12.345,
                         endpoint="/v1/completions")


def test_preview_collapses_whitespace_and_truncates_with_an_ellipsis():
    assert preview("a\n  b\tc") == "a b c"
    cut = preview("x" * 200, limit=10)
    assert len(cut) == 10 and cut.endswith("…")


def test_prompt_of_a_chat_request_is_its_last_message():
    assert prompt_of({"messages": '[{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi"}]'}) \
        == "Hi"
    assert prompt_of({"prompt": "original API"}) == "original API"


def test_decision_from_router_outputs():
    decision = _decision("r1", arrived=990.0)

    assert (decision.mode, decision.model, decision.task, decision.reason) == ("auto", "gpt2", "creative", "best score")
    assert (decision.selection_ms, decision.latency_ms, decision.tokens) == (0.41, 12.35, 5)
    assert decision.prompt_preview == "Once upon a time" and decision.error is None


def test_decision_log_is_newest_first_and_filters_by_mode_and_model():
    log = DecisionLog(clock=Clock())
    log.add(_decision("a", 990.0, mode="auto", model="gpt2"))
    log.add(_decision("m", 991.0, mode="manual", model="codegen"))
    log.add(_decision("h", 992.0, mode="hybrid", model="gpt2"))

    assert [d.request_id for d in log.recent()] == ["h", "m", "a"]
    assert [d.request_id for d in log.recent(mode="manual")] == ["m"]
    assert [d.request_id for d in log.recent(model="gpt2")] == ["h", "a"]
    assert [d.request_id for d in log.recent(limit=1)] == ["h"]


def test_decision_log_forgets_past_its_capacity_and_its_retention():
    clock = Clock(1000.0)
    log = DecisionLog(capacity=2, retention_s=60, clock=clock)
    for i in range(3):
        log.add(_decision(f"r{i}", 990.0 + i))
    assert [d.request_id for d in log.recent()] == ["r2", "r1"]

    clock.now = 1051.5  # r1 arrived at 991: 60.5 s ago
    assert [d.request_id for d in log.recent()] == ["r2"]


def test_decision_log_retention_only_ever_shortens():
    log = DecisionLog(retention_s=3600, clock=Clock(1000.0))
    log.add(_decision("old", 900.0))

    log.limit_retention(86_400 * 30)
    assert log.retention_s == 3600
    log.limit_retention(50)  # the usage store keeps records 50 s: so does the log
    assert log.retention_s == 50 and log.recent() == []
