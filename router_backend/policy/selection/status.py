"""Live status of every served model, measured at run time (never copied from the catalog).

    board = StatusBoard(catalog)        # the live Catalog; board.sync() after it changes
    board.set_ready("gpt2", True); board.started("gpt2"); board.finished("gpt2", tokens=16, duration_s=0.2)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from pointsman.policy.catalog import Catalog

EWMA_ALPHA = 0.2  # weight of the newest measurement
# Each concurrent sequence slows a batched CPU engine's per-token pace by about this much
# (measured with loadtests.bench_engine: batch 16 steps cost ~3.7x batch 1, i.e. 0.18-0.35 each).
BATCH_SLOWDOWN = 0.35


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else (1 - EWMA_ALPHA) * old + EWMA_ALPHA * new


@dataclass
class ModelStatus:
    """What the router knows about one model right now."""

    name: str
    ready: bool = False
    in_flight: int = 0  # the router's own requests to it
    pending: int = 0  # waiting inside Triton or the model's engine queue
    active: int = 0  # sequences decoding in the engine (all callers)
    tokens_per_s: float | None = None  # modelled: one sequence alone, from measured / BATCH_SLOWDOWN sharing
    measured_tokens_per_s: float | None = None  # raw: tokens / decode seconds as requests saw them (EWMA)
    ttft_s: float | None = None
    requests_served: int = 0
    errors: int = 0
    last_used: float | None = None
    load_time_s: float | None = None
    ready_since: float | None = None
    ttft_from_engine: bool = False  # ttft_s is the engine's figure, not the router's own
    queue_s: float | None = None  # Triton's mean queue time per request over the last poll interval

    @property
    def load(self) -> int:
        """Requests competing for this model: the router's, plus others seen by Triton."""
        return max(self.in_flight, self.active) + self.pending


@dataclass
class StatusBoard:
    """Thread-safe per-model status; the adapter feeds it, the selector reads snapshots."""

    catalog: Catalog
    _models: dict[str, ModelStatus] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.sync()

    def sync(self) -> None:
        """Follow the catalog: a status for every model in it (new ones not ready), none for departed ones."""
        names = self.catalog.names
        with self._lock:
            for name in names:
                self._models.setdefault(name, ModelStatus(name))
            for name in set(self._models) - set(names):
                del self._models[name]

    def snapshot(self) -> dict[str, ModelStatus]:
        with self._lock:
            return {n: ModelStatus(**vars(s)) for n, s in self._models.items()}

    def ready_models(self) -> list[str]:
        with self._lock:
            return [n for n, s in self._models.items() if s.ready]

    def _status(self, name: str) -> ModelStatus:
        """The model's status; a model that left the catalog meanwhile gets a detached one."""
        status = self._models.get(name)
        return status if status is not None else ModelStatus(name)

    def set_ready(self, name: str, ready: bool, now: float | None = None) -> None:
        with self._lock:
            status = self._status(name)
            if ready and not status.ready:
                status.ready_since = now or time.time()
            status.ready = ready

    def set_engine_load(self, name: str, pending: int, active: int) -> None:
        with self._lock:
            status = self._status(name)
            status.pending, status.active = pending, active

    def set_queue_time(self, name: str, seconds: float) -> None:
        with self._lock:
            self._status(name).queue_s = seconds

    def set_load_time(self, name: str, seconds: float) -> None:
        with self._lock:
            self._status(name).load_time_s = seconds

    def set_engine_ttft(self, name: str, seconds: float) -> None:
        """The engine's own time to first token, used until the router measures one (streaming)."""
        with self._lock:
            status = self._status(name)
            if status.ttft_s is None or status.ttft_from_engine:
                status.ttft_s, status.ttft_from_engine = seconds, True

    def set_measured(self, name: str, **figures: float) -> None:
        """Adopt figures another process measured (zeros mean 'not measured yet')."""
        with self._lock:
            status = self._status(name)
            for field_name in ("tokens_per_s", "measured_tokens_per_s", "ttft_s", "last_used"):
                if figures.get(field_name):
                    setattr(status, field_name, figures[field_name])
            for field_name in ("requests_served", "errors", "in_flight"):
                if field_name in figures:
                    setattr(status, field_name, int(figures[field_name]))

    def started(self, name: str) -> None:
        with self._lock:
            status = self._status(name)
            status.in_flight += 1
            status.last_used = time.time()

    def finished(self, name: str, tokens: int, duration_s: float, ttft_s: float | None = None,
                 failed: bool = False) -> None:
        with self._lock:
            status = self._status(name)
            status.in_flight = max(0, status.in_flight - 1)
            if failed:
                status.errors += 1
                return
            status.requests_served += 1
            if ttft_s is not None:
                status.ttft_s = _ewma(None if status.ttft_from_engine else status.ttft_s, ttft_s)
                status.ttft_from_engine = False
            decode_s = duration_s - (ttft_s or 0.0)
            if tokens > 1 and decode_s > 0:
                status.measured_tokens_per_s = _ewma(status.measured_tokens_per_s, (tokens - 1) / decode_s)
                # normalise to one sequence alone: the load is accounted for separately at prediction
                sharing = 1.0 + BATCH_SLOWDOWN * max(0, max(status.in_flight + 1, status.active) - 1)
                status.tokens_per_s = _ewma(status.tokens_per_s, sharing * (tokens - 1) / decode_s)
