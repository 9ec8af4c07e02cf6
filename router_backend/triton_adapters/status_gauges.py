"""Publish the router's live measurements per model as gauges on Triton's metrics port.

    gauges = StatusGauges(board); gauges.start()
    gauges.register(board.catalog.names)   # in execute: gauges for models that joined

The catalog and recommend models (other processes) read them back through
pointsman.policy.selection.live, so every endpoint reports the same measured figures.
"""

from __future__ import annotations

import threading

import triton_python_backend_utils as pb_utils

from pointsman.policy.selection.live import LIVE_GAUGES
from pointsman.policy.selection.status import StatusBoard

_DOCS = {
    "tokens_per_s": "Decoding speed of one sequence alone, modelled from the router's measurements "
                    "(EWMA x batch-sharing factor), tokens per second",
    "measured_tokens_per_s": "Decoding speed the router measured per request, as seen (EWMA), tokens per second",
    "ttft_s": "Time to first token measured by the router (EWMA), seconds",
    "requests_served": "Requests the router completed on this model",
    "errors": "Requests the router saw fail on this model",
    "in_flight": "The router's requests running on this model now",
    "last_used": "When the router last sent this model a request (unix seconds)",
}


class StatusGauges:
    def __init__(self, board: StatusBoard, interval: float = 0.25) -> None:
        self.board = board
        self.interval = interval
        self._families = {
            field: pb_utils.MetricFamily(name=metric, description=_DOCS[field], kind=pb_utils.MetricFamily.GAUGE)
            for field, metric in LIVE_GAUGES.items()
        }
        # (field, model) -> Metric. Models join at run time, so metrics are made when one first
        # appears, by register() on the stub's main thread (execute): the background thread
        # only sets values, as it always has (pb_utils calls that are not a Metric.set from
        # background threads have crashed tritonserver 2.51 with boost's lock_exception)
        self._metrics: dict = {}
        self._registered: frozenset[str] = frozenset()
        self._stop = threading.Event()

    def register(self, names: list[str]) -> None:
        """Make the gauges of models not seen before; call from execute (the stub's main thread)."""
        if self._registered.issuperset(names):
            return
        for name in names:
            for field, family in self._families.items():
                if (field, name) not in self._metrics:
                    self._metrics[(field, name)] = family.Metric(labels={"model": name})
        self._registered = self._registered | frozenset(names)

    def start(self) -> None:
        threading.Thread(target=self._run, name="status-gauges", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def publish(self) -> None:
        for name, status in self.board.snapshot().items():
            for field in LIVE_GAUGES:
                value = getattr(status, field)
                metric = self._metrics.get((field, name))
                if metric is not None:  # None: not registered yet (no request since it joined)
                    metric.set(float(value or 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()
