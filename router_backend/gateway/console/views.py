"""What each console view shows, shaped from the control models' answers (pure: no FastAPI, no Triton).

    model_rows(json.loads(catalog_outputs["models"]))     # one row per model, with its state
    usage_buckets({60: summary_1m, 300: summary_5m})        # requests per mode/model/task, per time slice
    interval_plot(report)                                   # the primary metric's per-arm means and intervals

The catalog, usage and experiments models stay the source of every figure: these
functions only pick, rename and subtract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

READY = "ready"
# the catalog says "loaded" today; the health states (unhealthy, reloading) arrive as current_status.state
NOT_LOADED = "unavailable"
# nested usage windows (seconds): their differences are the time slices of the Usage view
USAGE_WINDOWS = (60, 300, 900, 3600, 21600, 86400)
COUNTED = ("by_mode", "by_model", "by_task")


def model_state(status: Mapping[str, Any]) -> str:
    """The catalog's state string when it reports one, else ready when loaded and unavailable when not."""
    state = status.get("state")
    if state:
        return str(state)
    return READY if status.get("loaded") else NOT_LOADED


def model_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One catalog entry as a row of the Models table."""
    status = entry.get("current_status") or {}
    perf = entry.get("performance_metrics") or {}
    state = model_state(status)
    return {
        "name": entry.get("model_name"),
        "family": entry.get("family"),
        "capabilities": list(entry.get("capabilities") or []),
        "specialization": dict(entry.get("specialization_score") or {}),
        "context_length": entry.get("context_length"),
        "state": state,
        "down": state != READY,
        "queue": status.get("queue_length"),
        "in_flight": status.get("in_flight"),
        "tokens_per_s": perf.get("measured_tokens_per_second"),
        "tokens_per_s_modelled": perf.get("avg_tokens_per_second"),
        "ttft_s": perf.get("avg_time_to_first_token_s"),
        "load_time_s": perf.get("avg_load_time"),
        "requests_served": perf.get("requests_served"),
        "errors": perf.get("errors"),
        "last_used": status.get("last_used"),
        # whatever else the catalog says about the state (a reason, a retry time) is shown as is
        "status": dict(status),
    }


def model_rows(catalog: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [model_row(entry) for entry in catalog]


def _difference(outer: Mapping[str, int], inner: Mapping[str, int]) -> dict[str, int]:
    keys = list(dict.fromkeys([*outer, *inner]))
    return {key: max(0, int(outer.get(key, 0)) - int(inner.get(key, 0))) for key in keys}


def usage_buckets(summaries: Mapping[float, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Time slices from summaries of nested windows: slice i holds what the window w_i has and w_(i-1) lacks.

    Newest slice first. Each gives its age range (start_s ago to end_s ago), the requests,
    fallbacks and errors in it, the counts per mode, model and task, and requests per minute.
    """
    slices, inner, inner_window = [], None, 0.0
    for window in sorted(summaries):
        summary = summaries[window]
        counts = {"requests": int(summary.get("requests") or 0),
                  "fallbacks": int((summary.get("fallback") or {}).get("count") or 0),
                  "errors": int((summary.get("errors") or {}).get("count") or 0)}
        lists = {key: dict(summary.get(key) or {}) for key in COUNTED}
        if inner is None:
            slice_counts, slice_lists = counts, lists
        else:
            slice_counts = {k: max(0, v - inner[0][k]) for k, v in counts.items()}
            slice_lists = {key: _difference(lists[key], inner[1][key]) for key in COUNTED}
        minutes = (window - inner_window) / 60.0
        slices.append({"start_s": inner_window, "end_s": window, **slice_counts, **slice_lists,
                       "per_minute": round(slice_counts["requests"] / minutes, 3) if minutes > 0 else None})
        inner, inner_window = (counts, lists), window
    return slices


def _interval(arm: Mapping[str, Any], metric: str) -> dict[str, Any]:
    if metric == "error_rate":
        rate = arm.get("error_rate") or {}
        return {"n": rate.get("n", 0), "mean": rate.get("value"), "ci_low": rate.get("ci_low"),
                "ci_high": rate.get("ci_high")}
    figures = (arm.get("metrics") or {}).get(metric) or {}
    return {"n": figures.get("n", 0), "mean": figures.get("mean"), "ci_low": figures.get("ci_low"),
            "ci_high": figures.get("ci_high")}


def interval_plot(report: Mapping[str, Any], metric: str | None = None) -> dict[str, Any]:
    """Per-arm mean and 95% interval of one metric (default: the experiment's primary metric).

    The interval is the report's own (Student t for means, Wilson for the error rate);
    below two samples an arm has a mean but no interval, and with none neither.
    """
    decision = report.get("decision") or {}
    metric = metric or decision.get("metric") or (report.get("stopping") or {}).get("metric") or "duration_s"
    return {"metric": metric, "better": decision.get("better"), "control": report.get("control"),
            "arms": [{"name": arm.get("name"), "model": arm.get("model"), "policy": arm.get("policy"),
                      **_interval(arm, metric)} for arm in report.get("arms") or []]}


def experiment_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """An experiment's report plus the plot of its primary metric and each comparison on that metric."""
    plot = interval_plot(report)
    comparisons = []
    for comparison in report.get("comparisons") or []:
        result = (comparison.get("metrics") or {}).get(plot["metric"])
        comparisons.append({"arm": comparison.get("arm"), "vs": comparison.get("vs"), "result": result,
                            "plan": comparison.get("plan")})
    return {**report, "plot": plot, "primary_comparisons": comparisons}
