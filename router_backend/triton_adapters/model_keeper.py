"""Reload the models the health registry marks unhealthy: unload, then load, through Triton's repository API.

    keeper = ModelKeeper(health, target_of=lambda name: catalog[name].call_name, repository=RepositoryClient(url))
    keeper.start(); ...; keeper.stop()

Triton 2.51 does not restart a dead Python stub, and `load` of a model it still calls
loaded does nothing: only unload then load brings a new stub. The calls carry the admin
key when the server has one. The state machine and back-off are policy
(pointsman.policy.health); this is the plumbing, plus the health metrics.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pointsman.errors import DeadlineExceeded
from pointsman.policy.admin import admin_grpc_headers
from pointsman.policy.call_guard import guarded
from pointsman.policy.health import HealthRegistry, HealthState, ModelHealth, Reason, dead_stub_model

LOGGER = logging.getLogger(__name__)
TWIN_PROBE_S = 2.0  # how often a TwinWatch probes each twin (router_stream's twin_probe_s default)
UNLOAD_WAIT_S = 30.0  # a dead stub's instance takes a while to finalize
LOAD_TIMEOUT_S = 120.0
TICK_S = 0.25  # how often the keeper looks for due reloads and republishes the gauges
STATE_CODES = {HealthState.READY: 0, HealthState.UNHEALTHY: 1, HealthState.RELOADING: 2}


class RepositoryClient:
    """The three repository calls a reload needs, over gRPC, with the admin key when one is set.

    Not HTTP: Triton's HTTP unload and load block one of the HTTP server's worker threads
    until they finish (a dead stub's unload takes seconds), and every client connection
    served by that thread waits with it, answers already made included. Over gRPC the
    repository calls wait on the common handler, apart from the inference streams.
    """

    def __init__(self, grpc_url: str, headers: Callable[[], dict[str, str]] = admin_grpc_headers) -> None:
        self.grpc_url = grpc_url
        self._headers = headers
        self._client = None

    def _triton(self):
        if self._client is None:
            from tritonclient.grpc import InferenceServerClient

            self._client = InferenceServerClient(self.grpc_url)
        return self._client

    def _call(self, method: str, *args, timeout: float, **kwargs) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return getattr(self._triton(), method)(*args, headers=self._headers(), client_timeout=timeout, **kwargs)
        except InferenceServerException as exc:
            raise RepositoryError(f"{method}: {exc.status() or ''} {exc.message()}".strip()) from None

    def state(self, model: str) -> str | None:
        index = self._call("get_model_repository_index", as_json=True, timeout=5.0)
        states = [m.get("state") for m in index.get("models", []) if m.get("name") == model]
        return states[0] if states else None

    def unload(self, model: str) -> None:
        self._call("unload_model", model, timeout=UNLOAD_WAIT_S)

    def load(self, model: str) -> None:
        self._call("load_model", model, timeout=LOAD_TIMEOUT_S)


class RepositoryError(OSError):
    """Triton refused or did not finish a repository call (its status and message)."""


def _reason_of(error: BaseException) -> str:
    if isinstance(error, RepositoryError):
        return str(error)[:200]
    return f"{type(error).__name__}: {error}"[:200]


class HealthGauges:
    """pointsman_model_health_state {0 ready, 1 unhealthy, 2 reloading}, _health_reason and _reloads_total.

    The catalog model reads these back from the metrics port, as it reads the router's other figures.
    `api` is pb_utils (a fake in unit tests).
    """

    def __init__(self, api: Any = None) -> None:
        self._api = api or importlib.import_module("triton_python_backend_utils")
        kinds = self._api.MetricFamily
        self._state = kinds(name="pointsman_model_health_state", kind=kinds.GAUGE,
                            description="Router's health verdict per model: 0 ready, 1 unhealthy, 2 reloading")
        self._reason = kinds(name="pointsman_model_health_reason", kind=kinds.GAUGE,
                             description="1 for the reason a model is out of selection (stub_not_healthy, "
                                         "repeated_failures, reload_failed), else 0")
        self._reloads = kinds(name="pointsman_model_reloads_total", kind=kinds.COUNTER,
                              description="Reloads (unload then load) the router started, per model")
        self._metrics: dict[tuple, Any] = {}
        self._shown: dict[str, ModelHealth] = {}

    def _metric(self, family: Any, labels: dict[str, str]) -> Any:
        key = (id(family), tuple(sorted(labels.items())))
        if key not in self._metrics:
            self._metrics[key] = family.Metric(labels=labels)
        return self._metrics[key]

    def publish(self, snapshot: dict[str, ModelHealth]) -> None:
        for model, health in snapshot.items():
            shown = self._shown.get(model)
            if shown == health:
                continue
            self._metric(self._state, {"model": model}).set(float(STATE_CODES[health.state]))
            for reason in Reason:
                if reason is not Reason.NONE:
                    self._metric(self._reason, {"model": model, "reason": reason.value}).set(
                        1.0 if health.reason is reason else 0.0)
            added = health.reloads - (shown.reloads if shown else 0)
            reloads = self._metric(self._reloads, {"model": model})  # exported from 0, so increase() sees the first
            if added > 0:
                reloads.increment(float(added))
            self._shown[model] = health

    def close(self) -> None:
        self._metrics.clear()  # Triton wants each Metric deleted before its MetricFamily
        self._state = self._reason = self._reloads = None


class ModelKeeper:
    """One daemon thread: reloads due models one at a time and keeps the health gauges current."""

    def __init__(self, health: HealthRegistry, target_of: Callable[[str], str], repository: RepositoryClient,
                 gauges: HealthGauges | None = None, models: Callable[[], Iterable[str]] = tuple) -> None:
        self.health = health
        self.target_of = target_of
        self.repository = repository
        self.gauges = gauges
        self.models = models  # shown ready until judged, so dashboards and alerts see every model from the start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self.gauges is not None:
            self.gauges.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for model in self.health.due_reloads():
                if self._stop.is_set():
                    return
                self.reload(model)
            self._publish()
            due = self.health.next_due_in()
            self.health.wait_for_change(TICK_S if due is None else min(TICK_S, due))

    def _publish(self) -> None:
        if self.gauges is None:
            return
        try:
            self.gauges.publish({**{model: ModelHealth() for model in self.models()}, **self.health.snapshot()})
        except Exception:
            LOGGER.exception("could not publish the health gauges")

    def reload(self, model: str) -> bool:
        target = self.target_of(model)
        before = self.health.get(model)
        self.health.reload_started(model)
        self._publish()
        LOGGER.warning("reloading %s (%s): %s; reload %d in a row", target, before.reason.value, before.detail,
                       before.reloads_in_row + 1)
        began = time.monotonic()
        try:
            self.repository.unload(target)
            self.repository.load(target)
        except (OSError, ValueError) as exc:
            detail = _reason_of(exc)
            self.health.reload_finished(model, ok=False, detail=f"reload failed: {detail}")
            LOGGER.error("reload of %s failed after %.1f s: %s; next attempt in %.0f s", target,
                         time.monotonic() - began, detail, self.health.next_due_in() or 0.0)
            return False
        self.health.reload_finished(model, ok=True)
        LOGGER.warning("reloaded %s in %.1f s; it serves again", target, time.monotonic() - began)
        self._publish()
        return True


class TwinWatch:
    """Probes models nobody's failures would reveal (the non-decoupled twins, the router) and reports dead stubs.

    The router only sees its own calls; a twin such as `router` or `gpt2` is called by
    clients directly, so its death would go unnoticed, and nothing routes around the router
    itself, so its twin probes it. Every `interval` seconds each twin
    gets a request it refuses on sight; "not healthy" marks it for its keeper to reload. A
    probe left unanswered is only logged: under load a busy twin is slow, not dead.
    """

    def __init__(self, health: HealthRegistry, twins: Iterable[str] | Callable[[], Iterable[str]],
                 probe: Callable[[str], str | None], interval: float = TWIN_PROBE_S, timeout_s: float = 10.0) -> None:
        self.health = health
        self.timeout_s = timeout_s
        # a callable is asked at every check: models join and leave the repository at run time
        self._twins = twins if callable(twins) else tuple(twins)
        self.probe = probe
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twin-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    @property
    def twins(self) -> list[str]:
        return list(self._twins() if callable(self._twins) else self._twins)

    def check_once(self) -> None:
        for twin in self.twins:
            if not self.health.available(twin):
                continue  # its keeper is on it
            try:
                # a probe in flight when the stub dies never returns: bounded like any model call
                (error,) = guarded(lambda stop, twin=twin: iter([self.probe(twin)]),
                                   deadline=time.monotonic() + self.timeout_s, is_dead=lambda: None)
            except DeadlineExceeded:
                # busy under load, or hung: a reload would drop every request it holds, so only say so
                LOGGER.warning("%s gave no answer to a probe within %g s; not reloaded (only a dead stub is)",
                               twin, self.timeout_s)
                continue
            except Exception as exc:  # noqa: BLE001 - a probe that cannot run says nothing about the twin
                LOGGER.debug("probe of %s failed to run: %s", twin, exc)
                continue
            # a twin forwards: "gpt2_stream's stub is dead" is its engine's fault, for the router to heal
            if error is not None and dead_stub_model(error) == twin and self.health.record_failure(twin, error):
                LOGGER.warning("%s is unhealthy: a probe found %s", twin, error)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check_once()
