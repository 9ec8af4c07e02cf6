"""Publish the router's live measurements per model as gauges on Triton's metrics port.

    gauges = StatusGauges(board); gauges.start()

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
        self._metrics: dict = {}  # (field, model) -> Metric, made when a model first appears (models join live)
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="status-gauges", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def publish(self) -> None:
        for name, status in self.board.snapshot().items():
            for field in LIVE_GAUGES:
                value = getattr(status, field)
                metric = self._metrics.get((field, name))
                if metric is None:
                    metric = self._metrics[(field, name)] = self._families[field].Metric(labels={"model": name})
                metric.set(float(value or 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()
