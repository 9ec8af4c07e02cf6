"""The router's Prometheus metrics, published on Triton's metrics port through pb_utils.MetricFamily.

    metrics = RouterMetrics()          # in the router's initialize
    metrics.observe(record)            # once per request, success or error
    metrics.count_lost(3, "database_unavailable")   # the usage writer's losses
    metrics.close()                    # in finalize: metrics go before their families

Triton 2.51's Python backend has COUNTER, GAUGE and HISTOGRAM families (a histogram
Metric takes its buckets when created). Every metric update is a message from the stub
to the server process, so observe() only queues the record and one thread applies the
updates: the request path never waits for them.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import queue
import threading
from typing import Any, NamedTuple

from pointsman.ops.usage.records import RequestRecord
from pointsman.ops.usage.writer import LOST_REASONS

LOGGER = logging.getLogger(__name__)
PREFIX = "pointsman_"
SELECTION_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1]
TTFT_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
PER_TOKEN_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
DURATION_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]

# name -> (kind, description, label names, buckets or None)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...], list[float] | None]] = {
    "requests_total": ("COUNTER", "Router requests by selection mode, selected model and detected task",
                       ("selection_mode", "selected_model", "task"), None),
    "fallbacks_total": ("COUNTER", "Requests answered by a fallback model, by reason",
                        ("reason", "selected_model"), None),
    "errors_total": ("COUNTER", "Failed router requests by error kind", ("kind", "selected_model"), None),
    "tokens_total": ("COUNTER", "Tokens generated through the router, by model", ("selected_model",), None),
    "experiment_requests_total": ("COUNTER", "Requests assigned to an experiment arm", ("experiment", "arm"), None),
    "usage_records_lost_total": ("COUNTER", "Usage records never stored: queue full, or database unreachable "
                                 "for longer than the writer holds them", ("reason",), None),
    "usage_records_waiting": ("GAUGE", "Usage records not yet stored (queued, or in a batch the database refuses)",
                              (), None),
    "analyses_total": ("COUNTER", "Auto decisions by the analyser that decided: lexical, classifier, "
                       "lexical>classifier, or lexical (classifier unavailable / not loaded) when it failed",
                       ("analyzer",), None),
    "selection_seconds": ("HISTOGRAM", "Time the router spent deciding which model answers",
                          ("selection_mode",), SELECTION_BUCKETS_S),
    "time_to_first_token_seconds": ("HISTOGRAM", "Time from the model call to its first token, by model",
                                    ("selected_model",), TTFT_BUCKETS_S),
    "time_per_output_token_seconds": ("HISTOGRAM", "Decode time per token after the first, by model",
                                      ("selected_model",), PER_TOKEN_BUCKETS_S),
    "request_duration_seconds": ("HISTOGRAM", "Router request duration, by model",
                                 ("selected_model",), DURATION_BUCKETS_S),
}


class _Waiting(NamedTuple):
    count: int


def _label(value: str | None) -> str:
    return (value or "none")[:64]


def updates(record: RequestRecord) -> list[tuple[str, dict[str, str], str, float]]:
    """The metric updates one record makes: (family, labels, "increment" or "observe", value)."""
    model = _label(record.selected_model)
    out = [("requests_total", {"selection_mode": _label(record.selection_mode), "selected_model": model,
                               "task": _label(record.task)}, "increment", 1.0)]
    if record.selection_mode:
        out.append(("selection_seconds", {"selection_mode": record.selection_mode}, "observe",
                    record.selection_ms / 1000.0))
    if record.analyzer:  # "" on the manual path, which analyses nothing
        out.append(("analyses_total", {"analyzer": _label(record.analyzer)}, "increment", 1.0))
    if record.fallback_used:
        out.append(("fallbacks_total", {"reason": _label(record.fallback_reason), "selected_model": model},
                    "increment", 1.0))
    if record.experiment:
        out.append(("experiment_requests_total", {"experiment": _label(record.experiment),
                                                  "arm": _label(record.arm)}, "increment", 1.0))
    if not record.ok:
        out.append(("errors_total", {"kind": _label(record.error_kind), "selected_model": model}, "increment", 1.0))
        return out
    if record.tokens:
        out.append(("tokens_total", {"selected_model": model}, "increment", float(record.tokens)))
    out.append(("request_duration_seconds", {"selected_model": model}, "observe", record.duration_s))
    if record.ttft_s is not None:
        out.append(("time_to_first_token_seconds", {"selected_model": model}, "observe", record.ttft_s))
    if record.per_token_s is not None:
        out.append(("time_per_output_token_seconds", {"selected_model": model}, "observe", record.per_token_s))
    return out


class RouterMetrics:
    """Counters and histograms of router requests; `api` is pb_utils (a fake in unit tests)."""

    def __init__(self, api: Any = None, background: bool = True) -> None:
        self._api = api or importlib.import_module("triton_python_backend_utils")
        kinds = self._api.MetricFamily
        self._families = {name: kinds(name=PREFIX + name, description=desc, kind=getattr(kinds, kind))
                          for name, (kind, desc, _, _) in FAMILIES.items()}
        self._metrics: dict[tuple, Any] = {}
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        for reason in LOST_REASONS:  # at 0 from the start, so an alert sees the series before the first loss
            self._metric("usage_records_lost_total", {"reason": reason})
        if background:
            self._queue = queue.Queue(maxsize=100_000)
            self._thread = threading.Thread(target=self._run, name="pointsman-metrics", daemon=True)
            self._thread.start()

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (never raises, never blocks when background)."""
        if self._queue is None:
            self._apply(record)
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            LOGGER.warning("router metrics queue full; a record was not counted")

    def count_lost(self, count: int, reason: str) -> None:
        """Count usage records the writer could not store (never raises, never blocks when background)."""
        if self._queue is None:
            self._apply_lost(count, reason)
            return
        try:
            self._queue.put_nowait((count, reason))
        except queue.Full:
            LOGGER.warning("router metrics queue full; %d lost usage records were not counted", count)

    def set_waiting(self, count: int) -> None:
        """Publish how many usage records wait for the database (never raises, never blocks when background)."""
        if self._queue is None:
            self._apply_waiting(count)
            return
        with contextlib.suppress(queue.Full):  # the next request publishes it again
            self._queue.put_nowait(_Waiting(count))

    def flush(self, timeout: float = 10.0) -> None:
        if self._queue is not None:
            done = threading.Event()
            self._queue.put(done)
            done.wait(timeout)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(10.0)
        self._metrics.clear()  # Triton wants each Metric deleted before its MetricFamily
        self._families.clear()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
            elif isinstance(item, _Waiting):
                self._apply_waiting(item.count)
            elif isinstance(item, tuple):
                self._apply_lost(*item)
            else:
                self._apply(item)

    def _apply_waiting(self, count: int) -> None:
        try:
            self._metric("usage_records_waiting", {}).set(float(count))
        except Exception:
            LOGGER.exception("could not update metric %susage_records_waiting", PREFIX)

    def _apply_lost(self, count: int, reason: str) -> None:
        try:
            self._metric("usage_records_lost_total", {"reason": _label(reason)}).increment(float(count))
        except Exception:
            LOGGER.exception("could not update metric %susage_records_lost_total", PREFIX)

    def _apply(self, record: RequestRecord) -> None:
        for family, labels, op, value in updates(record):
            try:
                getattr(self._metric(family, labels), op)(value)
            except Exception:
                LOGGER.exception("could not update metric %s%s %s", PREFIX, family, labels)

    def _metric(self, family: str, labels: dict[str, str]) -> Any:
        key = (family, tuple(sorted(labels.items())))
        metric = self._metrics.get(key)
        if metric is None:
            buckets = FAMILIES[family][3]
            kwargs = {"labels": labels} if buckets is None else {"labels": labels, "buckets": list(buckets)}
            metric = self._metrics[key] = self._families[family].Metric(**kwargs)
        return metric
