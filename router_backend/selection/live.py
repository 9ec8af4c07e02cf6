"""Feed the status board from Triton: readiness and engine load, polled in the background.

    poller = StatusPoller(board, is_ready=pb_utils.is_model_ready, metrics_url="http://127.0.0.1:8002/metrics")
    poller.start()

No Triton import: readiness comes in as a callable, load from the Prometheus text
that Triton's metrics endpoint serves (its own pending counts and the engines' gauges).
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from typing import Callable

from prometheus_client.parser import text_string_to_metric_families

from router_backend.selection.status import StatusBoard

LOGGER = logging.getLogger(__name__)
PENDING = "nv_inference_pending_request_count"
ENGINE_QUEUED = "switchyard_engine_queued"
ENGINE_ACTIVE = "switchyard_engine_active"
LOAD_SECONDS = "switchyard_model_load_seconds"


def parse_load(text: str) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} for the metrics the router balances on."""
    wanted = {PENDING, ENGINE_QUEUED, ENGINE_ACTIVE, LOAD_SECONDS}
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted and "model" in sample.labels:
                per_model = out.setdefault(sample.labels["model"], {})
                per_model[sample.name] = per_model.get(sample.name, 0.0) + sample.value
    return out


class StatusPoller:
    """Polls readiness and load every `interval` seconds on a daemon thread."""

    def __init__(self, board: StatusBoard, is_ready: Callable[[str], bool], metrics_url: str | None,
                 interval: float = 0.25) -> None:
        self.board = board
        self.is_ready = is_ready
        self.metrics_url = metrics_url
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-poller", daemon=True)

    def start(self) -> None:
        self.poll_once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def poll_once(self) -> None:
        for name in self.board.catalog.names:
            try:
                self.board.set_ready(name, bool(self.is_ready(name)))
            except Exception:  # noqa: BLE001 - an unknown model is simply not ready
                self.board.set_ready(name, False)
        if not self.metrics_url:
            return
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=1.0) as resp:
                load = parse_load(resp.read().decode("utf-8", errors="replace"))
        except OSError as exc:
            LOGGER.debug("metrics unavailable: %s", exc)
            return
        for name in self.board.catalog.names:
            figures = load.get(name, {})
            queued = figures.get(PENDING, 0.0) + figures.get(ENGINE_QUEUED, 0.0)
            self.board.set_engine_load(name, pending=int(queued), active=int(figures.get(ENGINE_ACTIVE, 0.0)))
            if LOAD_SECONDS in figures:
                self.board.set_load_time(name, figures[LOAD_SECONDS])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()
