"""Router metrics: which families one request record updates, through a fake of pb_utils' metrics API."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pointsman.triton_adapters.router_metrics import FAMILIES, PREFIX, RouterMetrics


class FakeMetric:
    def __init__(self, kind: str, labels: dict, buckets: list | None) -> None:
        self.kind, self.labels, self.buckets = kind, labels, buckets
        self.total, self.observations = 0.0, []

    def increment(self, value: float) -> None:
        assert self.kind == "COUNTER" and value >= 0, "Triton: counters only go up"
        self.total += value

    def observe(self, value: float) -> None:
        assert self.kind == "HISTOGRAM", "Triton: observe is for histograms"
        self.observations.append(value)

    def set(self, value: float) -> None:
        assert self.kind == "GAUGE", "Triton: set is for gauges"
        self.total = value


class FakeMetricFamily:
    """The shape of pb_utils.MetricFamily in Triton 2.51 (kinds as class attributes)."""

    COUNTER, GAUGE, HISTOGRAM = "COUNTER", "GAUGE", "HISTOGRAM"
    created: dict[str, FakeMetricFamily] = {}

    def __init__(self, name: str, description: str, kind: str) -> None:
        self.name, self.kind, self.metrics = name, kind, []
        FakeMetricFamily.created[name] = self

    def Metric(self, labels: dict, buckets: list | None = None) -> FakeMetric:
        if (self.kind == "HISTOGRAM") != (buckets is not None):
            raise ValueError("Failed to create metric. Missing required buckets / Unexpected buckets found.")
        metric = FakeMetric(self.kind, labels, buckets)
        self.metrics.append(metric)
        return metric


@pytest.fixture
def families():
    FakeMetricFamily.created = {}
    return FakeMetricFamily.created


@pytest.fixture
def metrics(families):
    m = RouterMetrics(api=SimpleNamespace(MetricFamily=FakeMetricFamily), background=False)
    yield m
    m.close()


def only(families, name) -> list[FakeMetric]:
    return families[PREFIX + name].metrics


def test_every_family_is_created_with_the_prefix_and_kind(metrics, families) -> None:
    assert set(families) == {PREFIX + n for n in FAMILIES}
    assert families["pointsman_selection_seconds"].kind == "HISTOGRAM"
    assert families["pointsman_requests_total"].kind == "COUNTER"


def test_a_successful_request_counts_once_and_observes_its_latencies(metrics, families, make_record) -> None:
    metrics.observe(make_record(selected_model="codegen", task="coding", selection_ms=0.8, ttft_s=0.1,
                                duration_s=2.0, tokens=20, experiment="e", arm="b"))
    [requests] = only(families, "requests_total")
    assert requests.labels == {"selection_mode": "auto", "selected_model": "codegen", "task": "coding"}
    assert requests.total == 1
    assert only(families, "tokens_total")[0].total == 20
    assert only(families, "selection_seconds")[0].observations == [pytest.approx(0.0008)]
    assert only(families, "time_to_first_token_seconds")[0].observations == [0.1]
    assert only(families, "time_per_output_token_seconds")[0].observations == [pytest.approx(1.9 / 19)]
    assert only(families, "request_duration_seconds")[0].labels == {"selected_model": "codegen"}
    assert only(families, "experiment_requests_total")[0].labels == {"experiment": "e", "arm": "b"}
    assert only(families, "errors_total") == [] and only(families, "fallbacks_total") == []


def test_errors_and_fallbacks_are_counted_by_kind_and_reason(metrics, families, make_record) -> None:
    metrics.observe(make_record(selection_mode="hybrid", fallback_used=True, fallback_reason="model_failed",
                                error_kind="generation_failed"))
    metrics.observe(make_record(selection_mode="", selected_model="", task="", error_kind="invalid_request"))
    metrics.observe(make_record(selection_mode="", selected_model="", task="", error_kind="invalid_request"))
    assert {(m.labels["kind"], m.labels["selected_model"]): m.total for m in only(families, "errors_total")} == {
        ("generation_failed", "gpt2"): 1, ("invalid_request", "none"): 2}
    [fallback] = only(families, "fallbacks_total")
    assert fallback.labels == {"reason": "model_failed", "selected_model": "gpt2"}
    assert only(families, "tokens_total") == [] and only(families, "request_duration_seconds") == []
    # a request rejected before selection has no decision time
    assert [m.labels for m in only(families, "selection_seconds")] == [{"selection_mode": "hybrid"}]


def test_metrics_are_created_once_per_label_set(metrics, families, make_record) -> None:
    for _ in range(5):
        metrics.observe(make_record())
    assert len(only(families, "requests_total")) == 1 and only(families, "requests_total")[0].total == 5


def test_background_metrics_are_applied_off_the_request_thread(families, make_record) -> None:
    m = RouterMetrics(api=SimpleNamespace(MetricFamily=FakeMetricFamily))
    for _ in range(3):
        m.observe(make_record())
    m.flush()
    assert only(families, "requests_total")[0].total == 3
    m.close()


def test_a_failing_metric_never_raises(metrics, families, make_record, caplog) -> None:
    metrics.observe(make_record())
    only(families, "requests_total")[0].increment = lambda value: 1 / 0
    metrics.observe(make_record())
    assert "could not update metric pointsman_requests_total" in caplog.text


def test_lost_usage_records_are_counted_by_reason_from_zero(families) -> None:
    m = RouterMetrics(api=SimpleNamespace(MetricFamily=FakeMetricFamily))
    assert {x.labels["reason"]: x.total for x in only(families, "usage_records_lost_total")} == {
        "queue_full": 0, "database_unavailable": 0}  # exported before the first loss
    m.count_lost(3, "database_unavailable")
    m.count_lost(2, "database_unavailable")
    m.count_lost(1, "queue_full")
    m.flush()
    assert {x.labels["reason"]: x.total for x in only(families, "usage_records_lost_total")} == {
        "queue_full": 1, "database_unavailable": 5}
    m.close()


def test_auto_decisions_are_counted_by_the_analyser_that_decided(metrics, families, make_record) -> None:
    for analyzer in ("classifier", "lexical (classifier unavailable)", "lexical (classifier unavailable)", "lexical"):
        metrics.observe(make_record(analyzer=analyzer))
    metrics.observe(make_record(selection_mode="manual", analyzer="", task=""))  # manual: nothing analysed
    assert {m.labels["analyzer"]: m.total for m in only(families, "analyses_total")} == {
        "classifier": 1, "lexical (classifier unavailable)": 2, "lexical": 1}
