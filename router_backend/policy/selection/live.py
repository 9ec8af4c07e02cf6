"""Feed the status board from Triton: readiness and engine load, polled in the background.

    poller = StatusPoller(board, endpoints_from_env())
    poller.start()

No Triton import: readiness comes from Triton's repository index over HTTP (so loads
and unloads through the repository API are seen within one interval), load from the
Prometheus text that its metrics endpoint serves (pending counts, engine gauges).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from pointsman.policy.admin import admin_headers
from pointsman.policy.catalog import DEFAULT_CATALOG, Catalog, load_catalog
from pointsman.policy.selection.status import StatusBoard

LOGGER = logging.getLogger(__name__)
PENDING = "nv_inference_pending_request_count"
ENGINE_QUEUED = "pointsman_engine_queued"
ENGINE_ACTIVE = "pointsman_engine_active"
LOAD_SECONDS = "pointsman_model_load_seconds"
ENGINE_TTFT = "pointsman_engine_time_to_first_token_seconds"
MIN_REFRESH_S = 0.05  # on-demand refreshes at most this often
# published by the router from its own measurements, read back by catalog and recommend
LIVE_GAUGES = {
    "tokens_per_s": "pointsman_model_tokens_per_second",
    "measured_tokens_per_s": "pointsman_model_measured_tokens_per_second",
    "ttft_s": "pointsman_model_time_to_first_token_seconds",
    "requests_served": "pointsman_model_requests_served",
    "errors": "pointsman_model_errors",
    "in_flight": "pointsman_model_in_flight",
    "last_used": "pointsman_model_last_used_timestamp_seconds",
}


HEALTH_STATE = "pointsman_model_health_state"
HEALTH_REASON = "pointsman_model_health_reason"
RELOADS = "pointsman_model_reloads_total"
HEALTH_NAMES = ("ready", "unhealthy", "reloading")  # the gauge's codes 0, 1, 2 (pointsman.policy.health)


def parse_health(text: str) -> dict[str, dict[str, object]]:
    """{model: {"state", "reason", "reloads"}} from the router's health gauges (models it has judged)."""
    prefixes = tuple(f"{name}{{" for name in (HEALTH_STATE, HEALTH_REASON, RELOADS))
    lines = "\n".join(line for line in text.splitlines() if line.startswith(prefixes))
    out: dict[str, dict[str, object]] = {}
    for family in text_string_to_metric_families(lines):
        for sample in family.samples:
            model = sample.labels.get("model")
            if model is None:
                continue
            entry = out.setdefault(model, {"state": "ready", "reason": None, "reloads": 0})
            if sample.name == HEALTH_STATE:
                code = int(sample.value)
                entry["state"] = HEALTH_NAMES[code] if 0 <= code < len(HEALTH_NAMES) else "unknown"
            elif sample.name == HEALTH_REASON and sample.value >= 1:
                entry["reason"] = sample.labels.get("reason")
            elif sample.name == RELOADS:
                entry["reloads"] = int(sample.value)
    for entry in out.values():
        if entry["state"] == "ready":
            entry["reason"] = None
    return out


def parse_load(text: str) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} for the metrics the router balances on."""
    wanted = {PENDING, ENGINE_QUEUED, ENGINE_ACTIVE, LOAD_SECONDS, ENGINE_TTFT, *LIVE_GAUGES.values()}
    # the endpoint also serves every histogram bucket: parse only the lines we read
    prefixes = tuple(f"{name}{{" for name in wanted)
    lines = "\n".join(line for line in text.splitlines() if line.startswith(prefixes))
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(lines):
        for sample in family.samples:
            if sample.name in wanted and "model" in sample.labels:
                per_model = out.setdefault(sample.labels["model"], {})
                per_model[sample.name] = per_model.get(sample.name, 0.0) + sample.value
    return out


@dataclass(frozen=True)
class Endpoints:
    """Where this server's HTTP and metrics endpoints listen (set by `pointsman serve`)."""

    http_url: str = "http://127.0.0.1:8000"
    metrics_url: str = "http://127.0.0.1:8002/metrics"


def endpoints_from_env() -> Endpoints:
    default = Endpoints()
    return Endpoints(http_url=os.environ.get("POINTSMAN_HTTP_URL", default.http_url),
                     metrics_url=os.environ.get("POINTSMAN_METRICS_URL", default.metrics_url))


def parse_ready(index: list[dict]) -> set[str]:
    """Names of READY models in a /v2/repository/index answer."""
    return {m["name"] for m in index if m.get("state") == "READY"}


class StatusPoller:
    """Polls readiness and load every `interval` seconds on a daemon thread."""

    def __init__(self, board: StatusBoard, endpoints: Endpoints, interval: float = 0.25,
                 import_live: bool = False) -> None:
        self.board = board
        self.import_live = import_live  # take the router's measurements (catalog, recommend)
        self.endpoints = endpoints
        self.interval = interval
        self._last_poll = 0.0
        self.ready_names: frozenset[str] = frozenset()  # every READY model, language model or not
        self.health: dict[str, dict[str, object]] = {}  # the router's verdicts, when import_live
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-poller", daemon=True)

    def start(self) -> None:
        self.poll_once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> None:
        """Poll now unless a poll finished within MIN_REFRESH_S (selection calls this on a miss)."""
        if time.monotonic() - self._last_poll >= MIN_REFRESH_S:
            self.poll_once()

    def poll_once(self) -> None:
        self._last_poll = time.monotonic()
        try:
            # the repository API is restricted when the server has an admin key
            request = urllib.request.Request(f"{self.endpoints.http_url}/v2/repository/index", data=b"{}",
                                             method="POST", headers=admin_headers())
            with urllib.request.urlopen(request, timeout=1.0) as resp:
                ready = parse_ready(json.loads(resp.read()))
            self.ready_names = frozenset(ready)
            for entry in self.board.catalog:
                self.board.set_ready(entry.name, entry.call_name in ready)
        except (OSError, ValueError) as exc:
            LOGGER.debug("repository index unavailable: %s", exc)  # keep the last known state
        try:
            with urllib.request.urlopen(self.endpoints.metrics_url, timeout=1.0) as resp:
                text = resp.read().decode("utf-8", errors="replace")
            load = parse_load(text)
        except OSError as exc:
            LOGGER.debug("metrics unavailable: %s", exc)
            return
        if self.import_live:
            self.health = parse_health(text)
        for entry in self.board.catalog:
            name = entry.name
            # Triton's and the engine's figures carry the engine model's name; the router's own, the entry's
            figures = {**load.get(name, {}), **load.get(entry.call_name, {})}
            queued = figures.get(PENDING, 0.0) + figures.get(ENGINE_QUEUED, 0.0)
            self.board.set_engine_load(name, pending=int(queued), active=int(figures.get(ENGINE_ACTIVE, 0.0)))
            if LOAD_SECONDS in figures:
                self.board.set_load_time(name, figures[LOAD_SECONDS])
            if figures.get(ENGINE_TTFT):
                self.board.set_engine_ttft(name, figures[ENGINE_TTFT])
            if self.import_live:
                live = {field: figures[metric] for field, metric in LIVE_GAUGES.items() if metric in figures}
                self.board.set_measured(name, **live)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()


def start_live_status(catalog_path: str = "", import_live: bool = False) -> tuple[Catalog, StatusBoard, StatusPoller]:
    """Catalog (the bundled one when the path is empty), its status board, and a started poller."""
    catalog = load_catalog(catalog_path or DEFAULT_CATALOG)  # CatalogError refuses the model's load
    board = StatusBoard(catalog)
    poller = StatusPoller(board, endpoints_from_env(), import_live=import_live)
    poller.start()
    return catalog, board, poller


def health_of(health: dict[str, dict[str, object]], entry) -> dict[str, object]:
    """The router's verdict on one catalog entry, for the catalog: ready until it judged otherwise."""
    return dict(health.get(entry.name) or {"state": "ready", "reason": None, "reloads": 0})
