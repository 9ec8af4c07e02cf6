"""The gateway's recent routing decisions, kept in memory for the console's Decisions view.

    log = DecisionLog(capacity=200, retention_s=3600)
    log.add(decision_from(request_id, fields, outputs, arrived=t0, latency_ms=12.5, endpoint="/v1/completions"))
    log.recent(mode="auto", model="codegen")        # newest first, expired entries dropped

Only requests that pass through this gateway are seen. Each keeps a truncated prompt
preview, held in memory only (never written anywhere), for at most `retention_s` and at
most `capacity` entries: the console's routes lower `retention_s` to the usage store's
own retention when that is shorter, so a preview never outlives the usage record of its
request.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

PREVIEW_CHARS = 80
DEFAULT_CAPACITY = 200
DEFAULT_RETENTION_S = 3600.0
MODES = ("manual", "auto", "hybrid")


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """Whitespace collapsed, cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def prompt_of(fields: Mapping[str, Any]) -> str:
    """The prompt a request carries: text_input (or its alias), else the last chat message."""
    for name in ("text_input", "prompt"):
        if isinstance(fields.get(name), str):
            return fields[name]
    messages = fields.get("messages")
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            return messages
    if isinstance(messages, list) and messages and isinstance(messages[-1], Mapping):
        return str(messages[-1].get("content") or "")
    return ""


@dataclass(frozen=True)
class Decision:
    """One request the gateway sent to the router: what was decided, why, and what it cost."""

    request_id: str
    timestamp: float  # when the request arrived (Unix seconds)
    endpoint: str
    prompt_preview: str
    mode: str  # manual, auto, hybrid; "" when the router refused the request before deciding
    task: str
    model: str
    reason: str
    fallback_used: bool
    selection_ms: float | None
    latency_ms: float
    tokens: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else round(float(value), 3)
    except (TypeError, ValueError):
        return None


def decision_from(request_id: str, fields: Mapping[str, Any], outputs: Mapping[str, Any], *, arrived: float,
                  latency_ms: float, endpoint: str, error: str | None = None) -> Decision:
    """A Decision from the request's fields and the router's outputs (first and final merged)."""
    return Decision(
        request_id=request_id,
        timestamp=arrived,
        endpoint=endpoint,
        prompt_preview=preview(prompt_of(fields)),
        mode=str(outputs.get("selection_mode") or ""),
        task=str(outputs.get("task") or ""),
        model=str(outputs.get("selected_model") or ""),
        reason=str(outputs.get("selection_reason") or ""),
        fallback_used=bool(outputs.get("fallback_used")),
        selection_ms=_float_or_none(outputs.get("selection_ms")),
        latency_ms=round(latency_ms, 2),
        tokens=int(outputs.get("tokens") or 0),
        error=error,
    )


class DecisionLog:
    """The last `capacity` decisions, none older than `retention_s`; safe to share between threads."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, retention_s: float = DEFAULT_RETENTION_S,
                 clock: Callable[[], float] = time.time) -> None:
        if capacity < 1 or retention_s <= 0:
            raise ValueError("DecisionLog needs capacity >= 1 and retention_s > 0")
        self._entries: deque[Decision] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._clock = clock
        self.retention_s = retention_s

    def limit_retention(self, seconds: float) -> None:
        """Never keep a decision longer than `seconds` (a longer value changes nothing)."""
        if seconds > 0:
            with self._lock:
                self.retention_s = min(self.retention_s, seconds)
                self._expire()

    def add(self, decision: Decision) -> None:
        with self._lock:
            self._entries.append(decision)
            self._expire()

    def recent(self, mode: str | None = None, model: str | None = None, limit: int | None = None
               ) -> list[Decision]:
        """Newest first, filtered by mode and by chosen model when given."""
        with self._lock:
            self._expire()
            entries = list(self._entries)
        out = [d for d in reversed(entries) if (not mode or d.mode == mode) and (not model or d.model == model)]
        return out[:limit] if limit else out

    def _expire(self) -> None:
        # entries arrive in completion order, not arrival order: check each (there are few)
        oldest = self._clock() - self.retention_s
        if any(d.timestamp < oldest for d in self._entries):
            self._entries = deque((d for d in self._entries if d.timestamp >= oldest), maxlen=self._entries.maxlen)
