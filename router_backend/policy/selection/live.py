"""Feed the catalog and the status board from Triton: models, readiness and load, polled in the background.

    catalog, board, poller = start_live_status(repository=Path("model_repository"))

No Triton import: the models and their readiness come from Triton's repository index
over HTTP, their routing metadata from their served configs (pointsman.policy.selection.discovery),
so loads, unloads and reloads through the repository API are seen within one interval;
load comes from the Prometheus text that its metrics endpoint serves: Triton's pending
counts and queue times, this project's engine gauges, and the engine metrics vLLM and
TensorRT-LLM models export.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pointsman.policy.admin import admin_headers
from pointsman.policy.catalog import Catalog
from pointsman.policy.routing_metadata import OVERLAY_FILE
from pointsman.policy.selection.discovery import Discovery
from pointsman.policy.selection.status import StatusBoard

LOGGER = logging.getLogger(__name__)
PENDING = "nv_inference_pending_request_count"
ENGINE_QUEUED = "pointsman_engine_queued"
ENGINE_ACTIVE = "pointsman_engine_active"
LOAD_SECONDS = "pointsman_model_load_seconds"
ENGINE_TTFT = "pointsman_engine_time_to_first_token_seconds"
QUEUE_US = "nv_inference_queue_duration_us"  # Triton's cumulative queue time, per model
SUCCESSES = "nv_inference_request_success"
# the engine gauges vLLM's and TensorRT-LLM's backends export (label model: the engine model)
VLLM_WAITING, VLLM_RUNNING = "vllm:num_requests_waiting", "vllm:num_requests_running"
TRTLLM_WAITING = "nv_trt_llm_request_metrics/waiting"  # request_type label folded into the name
TRTLLM_ACTIVE = "nv_trt_llm_request_metrics/active"
QUEUED_METRICS = (ENGINE_QUEUED, VLLM_WAITING, TRTLLM_WAITING)
ACTIVE_METRICS = (ENGINE_ACTIVE, VLLM_RUNNING, TRTLLM_ACTIVE)
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
    wanted = {PENDING, ENGINE_QUEUED, ENGINE_ACTIVE, LOAD_SECONDS, ENGINE_TTFT, QUEUE_US, SUCCESSES,
              VLLM_WAITING, VLLM_RUNNING, "nv_trt_llm_request_metrics", *LIVE_GAUGES.values()}
    # the endpoint also serves every histogram bucket: parse only the lines we read
    prefixes = tuple(f"{name}{{" for name in wanted)
    lines = "\n".join(line for line in text.splitlines() if line.startswith(prefixes))
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(lines):
        for sample in family.samples:
            name = sample.name
            if name == "nv_trt_llm_request_metrics":  # one gauge per request_type
                name = f"{name}/{sample.labels.get('request_type', '')}"
            elif name not in wanted:
                continue
            if "model" in sample.labels:
                per_model = out.setdefault(sample.labels["model"], {})
                per_model[name] = per_model.get(name, 0.0) + sample.value
    return out


@dataclass(frozen=True)
class Endpoints:
    """Where this server's HTTP and metrics endpoints listen (set by `pointsman serve`)."""

    http_url: str = "http://127.0.0.1:8000"
    metrics_url: str = "http://127.0.0.1:8002/metrics"
    grpc_url: str = "127.0.0.1:8001"  # host:port, as tritonclient.grpc takes it


def endpoints_from_env() -> Endpoints:
    default = Endpoints()
    return Endpoints(http_url=os.environ.get("POINTSMAN_HTTP_URL", default.http_url),
                     metrics_url=os.environ.get("POINTSMAN_METRICS_URL", default.metrics_url),
                     grpc_url=os.environ.get("POINTSMAN_GRPC_URL", default.grpc_url))


def parse_ready(index: list[dict]) -> set[str]:
    """Names of READY models in a /v2/repository/index answer."""
    return {m["name"] for m in index if m.get("state") == "READY"}


class StatusPoller:
    """Polls the repository index (discovery, readiness) and the metrics every `interval` seconds on a daemon thread."""

    def __init__(self, board: StatusBoard, endpoints: Endpoints, interval: float = 0.25,
                 import_live: bool = False, overlay_path: Path | None = None) -> None:
        self.board = board
        self.catalog = board.catalog
        self.import_live = import_live  # take the router's measurements (catalog, recommend)
        self.endpoints = endpoints
        self.interval = interval
        self.discovery = Discovery(self.catalog, self._config, overlay_path)
        self._models_read_at = -1.0  # when the last index read started (monotonic)
        self._poll_lock = threading.Lock()
        self._queue_totals: dict[str, tuple[float, float]] = {}  # model -> (queue us, successes) at the last poll
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
        """Re-read the repository index now (selection calls this on a miss, the catalog model per request).

        Concurrent callers share one read: a caller that waited while another read started
        after its own call returns with that read's answer (a storm of misses makes one read
        at a time, never one per request).
        """
        asked = time.monotonic()
        with self._poll_lock:
            if self._models_read_at >= asked:
                return
            self._models_read_at = time.monotonic()
            self._poll_models()

    def _get_json(self, path: str, body: bytes | None = None) -> Any:
        # the repository and config APIs are restricted when the server has an admin key
        request = urllib.request.Request(f"{self.endpoints.http_url}{path}", data=body,
                                         method="POST" if body is not None else "GET", headers=admin_headers())
        with urllib.request.urlopen(request, timeout=1.0) as resp:
            return json.loads(resp.read())

    def _config(self, model: str) -> dict:
        return self._get_json(f"/v2/models/{model}/config")

    def poll_once(self) -> None:
        with self._poll_lock:  # the poller thread and a selection's refresh may both ask
            self._models_read_at = time.monotonic()
            self._poll_models()
            self._poll_load()

    def _poll_models(self) -> None:
        try:
            index = self._get_json("/v2/repository/index", b"{}")
        except (OSError, ValueError) as exc:
            LOGGER.debug("repository index unavailable: %s", exc)  # keep the last known state
            return
        ready = self.discovery.update(index)
        self.ready_names = frozenset(ready)
        self.board.sync()
        for entry in self.catalog:
            self.board.set_ready(entry.name, entry.call_name in ready)

    def _queue_seconds(self, model: str, figures: dict[str, float]) -> float | None:
        """Mean Triton queue time of the requests that finished since the last poll (None: none did)."""
        if QUEUE_US not in figures:
            return None
        now = (figures[QUEUE_US], figures.get(SUCCESSES, 0.0))
        before = self._queue_totals.get(model)
        self._queue_totals[model] = now
        if before is None or now[1] <= before[1]:
            return None
        return max(0.0, now[0] - before[0]) / (now[1] - before[1]) / 1e6

    def _poll_load(self) -> None:
        try:
            with urllib.request.urlopen(self.endpoints.metrics_url, timeout=1.0) as resp:
                text = resp.read().decode("utf-8", errors="replace")
            load = parse_load(text)
        except OSError as exc:
            LOGGER.debug("metrics unavailable: %s", exc)
            return
        if self.import_live:
            self.health = parse_health(text)
        for entry in self.catalog:
            name = entry.name
            # Triton's and the engine's figures carry the engine model's name; the router's own, the entry's
            figures = {**load.get(name, {}), **load.get(entry.call_name, {})}
            engine = load.get(entry.metrics_name, {}) if entry.metrics_name != entry.call_name else {}
            figures.update({k: v for k, v in engine.items() if k in QUEUED_METRICS + ACTIVE_METRICS})
            queued = figures.get(PENDING, 0.0) + sum(figures.get(m, 0.0) for m in QUEUED_METRICS)
            active = sum(figures.get(m, 0.0) for m in ACTIVE_METRICS)
            self.board.set_engine_load(name, pending=int(queued), active=int(active))
            queue_s = self._queue_seconds(entry.call_name, figures)
            if queue_s is not None:
                self.board.set_queue_time(name, queue_s)
            if LOAD_SECONDS in figures:
                self.board.set_load_time(name, figures[LOAD_SECONDS])
            if figures.get(ENGINE_TTFT):
                self.board.set_engine_ttft(name, figures[ENGINE_TTFT])
            if self.import_live:
                live = {field: figures[metric] for field, metric in LIVE_GAUGES.items() if metric in figures}
                self.board.set_measured(name, **live)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:
                LOGGER.exception("status poll failed")


def overlay_path_of(repository: str | Path | None) -> Path | None:
    """The overlay file of a local repository (None when the repository is not a local folder)."""
    return Path(repository) / OVERLAY_FILE if repository else None


def start_live_status(repository: str | Path | None = None, import_live: bool = False,
                      background: bool = True) -> tuple[Catalog, StatusBoard, StatusPoller]:
    """The live catalog (discovered from the repository index), its status board, and a started poller.

    `repository` is the local model repository folder, where the optional overlay file lives.
    background=False: no polling thread; the caller reads the index when it needs the
    catalog (poller.refresh()), as the usage and experiments models do per request.
    """
    catalog = Catalog()
    board = StatusBoard(catalog)
    poller = StatusPoller(board, endpoints_from_env(), import_live=import_live,
                          overlay_path=overlay_path_of(repository))
    if background:
        poller.start()
    return catalog, board, poller


def health_of(health: dict[str, dict[str, object]], entry) -> dict[str, object]:
    """The router's verdict on one catalog entry, for the catalog: ready until it judged otherwise."""
    return dict(health.get(entry.name) or {"state": "ready", "reason": None, "reloads": 0})
