"""Which models the router may call now, and when a broken one is reloaded: a small state machine.

    health = HealthRegistry()
    health.record_failure("gpt2", "Stub process 'gpt2_stream_0_0' is not healthy.")  # -> unhealthy at once
    health.due_reloads()   # ["gpt2"]: the keeper unloads and loads it, then reload_finished("gpt2", ok=True)

Triton 2.51 neither restarts a dead Python stub nor reports it as not ready, so the router
judges health from its own calls. A model goes `unhealthy` on a dead-stub error or after
`failure_threshold` failures in a row, leaves selection at once (the cooldown), and is
reloaded; `reloading` while the keeper works, `ready` after. Reloads that keep failing, or
a model that breaks again soon after one, back off exponentially. No Triton import.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from enum import Enum

# Triton's words for a Python model whose stub process died (python_backend, 24.x)
DEAD_STUB_MARKERS = ("is not healthy", "stub process", "failed to communicate with the stub")
OVERLOAD_MARKER = "overloaded"
UNLOADED_MARKERS = ("is not ready", "unknown model", "has no available version")
# Triton names a stub by its model instance: <model>_<group>_<index>
_DEAD_STUB_NAME = re.compile(r"Stub process '(.+)_\d+_\d+' is not healthy")


class HealthState(str, Enum):
    READY = "ready"
    UNHEALTHY = "unhealthy"
    RELOADING = "reloading"


class Reason(str, Enum):
    """Why a model left selection: a closed set, so it can be a metric label."""

    NONE = "none"
    DEAD_STUB = "stub_not_healthy"
    REPEATED_FAILURES = "repeated_failures"
    RELOAD_FAILED = "reload_failed"


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds; the defaults are documented in docs/faults.md."""

    failure_threshold: int = 3  # failures in a row (no success between) that mean "broken"
    backoff_base_s: float = 1.0  # wait before the second reload in a row; doubles after each
    backoff_max_s: float = 60.0
    stable_after_s: float = 30.0  # ready this long after a reload: the back-off starts over
    saturated_cooldown_s: float = 1.0  # after an "overloaded" answer, auto avoids the model this long


@dataclass(frozen=True)
class ModelHealth:
    """One model's health as the catalog shows it."""

    state: HealthState = HealthState.READY
    reason: Reason = Reason.NONE
    detail: str = ""  # the last error, short
    failures_in_row: int = 0
    reloads: int = 0  # reloads started since the router began
    reloads_in_row: int = 0  # reloads since the model was last stable: drives the back-off
    next_reload_at: float | None = None  # monotonic time
    since: float = 0.0  # monotonic time of the last state change
    ready_since: float | None = None
    saturated_until: float = 0.0
    epoch: int = 0  # bumped each time the model goes unhealthy: in-flight calls compare it


def is_dead_stub(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in DEAD_STUB_MARKERS)


def dead_stub_model(message: str) -> str | None:
    """The model whose stub Triton names dead ("Stub process 'gpt2_stream_0_0' ..." -> "gpt2_stream")."""
    match = _DEAD_STUB_NAME.search(message)
    return match.group(1) if match else None


def is_unloaded(message: str) -> bool:
    """Triton's words for a model that is not loaded: an operator's unload, not a fault to heal."""
    lowered = message.lower()
    return any(words in lowered for words in UNLOADED_MARKERS)


def is_overloaded(message: str) -> bool:
    return OVERLOAD_MARKER in message.lower()


def backoff_s(policy: HealthPolicy, reloads_in_row: int) -> float:
    """Wait before the next reload: none for the first, then base, 2 x base, ... up to the max."""
    if reloads_in_row <= 0:
        return 0.0
    return min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (reloads_in_row - 1))


class HealthRegistry:
    """Thread-safe health of every model the router calls, keyed by catalog name."""

    def __init__(self, policy: HealthPolicy = HealthPolicy(), clock=time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._models: dict[str, ModelHealth] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def get(self, model: str) -> ModelHealth:
        with self._lock:
            return self._models.get(model, ModelHealth())

    def snapshot(self) -> dict[str, ModelHealth]:
        with self._lock:
            return dict(self._models)

    def available(self, model: str) -> bool:
        """Whether selection may pick this model now: ready, and not just refused as overloaded."""
        with self._lock:
            health = self._models.get(model)
        if health is None:
            return True
        return health.state is HealthState.READY and health.saturated_until <= self._clock()

    def unavailable(self) -> frozenset[str]:
        with self._lock:
            names = list(self._models)
        return frozenset(name for name in names if not self.available(name))

    def epoch(self, model: str) -> int:
        return self.get(model).epoch

    def record_success(self, model: str) -> None:
        with self._lock:
            health = self._models.get(model)
            if health is not None and health.failures_in_row:
                self._models[model] = replace(health, failures_in_row=0)

    def record_failure(self, model: str, message: str, epoch: int | None = None) -> bool:
        """Count a failed call; True when this failure takes the model out of selection.

        `epoch`: the model's epoch when the call began. A call that began before the model
        last went unhealthy failed on the old instance: it says nothing about the reloaded one.
        """
        now = self._clock()
        with self._lock:
            health = self._models.get(model, ModelHealth())
            if health.state is not HealthState.READY or (epoch is not None and epoch != health.epoch):
                return False  # already out (the keeper handles it), or news about an instance gone
            if is_unloaded(message):
                return False  # unloaded through the repository API: the poller takes it out, nobody reloads it
            if is_overloaded(message):
                self._models[model] = replace(health, saturated_until=now + self.policy.saturated_cooldown_s)
                return False
            failures = health.failures_in_row + 1
            dead = is_dead_stub(message)
            if not dead and failures < self.policy.failure_threshold:
                self._models[model] = replace(health, failures_in_row=failures, detail=message[:200])
                return False
            stable = health.ready_since is not None and now - health.ready_since >= self.policy.stable_after_s
            in_row = 0 if stable else health.reloads_in_row
            self._models[model] = replace(
                health, state=HealthState.UNHEALTHY,
                reason=Reason.DEAD_STUB if dead else Reason.REPEATED_FAILURES, detail=message[:200],
                failures_in_row=failures, reloads_in_row=in_row, next_reload_at=now + backoff_s(self.policy, in_row),
                since=now, ready_since=None, epoch=health.epoch + 1)
            self._changed.notify_all()
            return True

    def due_reloads(self) -> list[str]:
        """Unhealthy models whose back-off has passed."""
        now = self._clock()
        with self._lock:
            return sorted(name for name, h in self._models.items()
                          if h.state is HealthState.UNHEALTHY and h.next_reload_at is not None
                          and h.next_reload_at <= now)

    def next_due_in(self) -> float | None:
        """Seconds until the next reload is due (0 when one is due now, None when none waits)."""
        now = self._clock()
        with self._lock:
            waits = [h.next_reload_at - now for h in self._models.values()
                     if h.state is HealthState.UNHEALTHY and h.next_reload_at is not None]
        return max(0.0, min(waits)) if waits else None

    def wait_for_change(self, timeout: float) -> None:
        """Block up to `timeout` seconds or until a model goes unhealthy (the keeper's idle wait)."""
        with self._changed:
            self._changed.wait(timeout)

    def reload_started(self, model: str) -> None:
        now = self._clock()
        with self._lock:
            health = self._models.get(model, ModelHealth())
            self._models[model] = replace(health, state=HealthState.RELOADING, reloads=health.reloads + 1,
                                          reloads_in_row=health.reloads_in_row + 1, next_reload_at=None, since=now)

    def reload_finished(self, model: str, ok: bool, detail: str = "") -> None:
        now = self._clock()
        with self._lock:
            health = self._models.get(model, ModelHealth())
            if ok:
                self._models[model] = replace(health, state=HealthState.READY, reason=Reason.NONE, detail="",
                                              failures_in_row=0, next_reload_at=None, since=now, ready_since=now)
            else:
                self._models[model] = replace(
                    health, state=HealthState.UNHEALTHY, reason=Reason.RELOAD_FAILED, detail=detail[:200],
                    next_reload_at=now + backoff_s(self.policy, health.reloads_in_row), since=now)
