"""The router's bound on work in flight, and each request's deadline.

    admission = Admission(max_in_flight=256, default_timeout_s=120)
    ticket = admission.admit()            # raises Overloaded past the bound
    deadline, note = admission.deadline_for(max_response_time=2.0)
    ...; admission.release()

Past the bound a request is refused at once with "overloaded, retry" instead of waiting in
an unbounded queue; every admitted request carries a deadline, `max_response_time` when the
caller gave one, else the default. No Triton import.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from pointsman.errors import Overloaded

DEFAULT_MAX_IN_FLIGHT = 256  # requests running or waiting for a router worker
DEFAULT_TIMEOUT_S = 120.0  # deadline of a request that gives no max_response_time


@dataclass
class Admission:
    """Counts admitted requests; thread-safe."""

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    default_timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.default_timeout_s <= 0:
            raise ValueError(f"router parameters: max_in_flight must be >= 1 and request_timeout_s > 0 "
                             f"(got {self.max_in_flight}, {self.default_timeout_s})")
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def admit(self) -> None:
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                raise Overloaded(f"overloaded, retry: the router already has {self._in_flight} requests in "
                                 f"flight (max_in_flight {self.max_in_flight})")
            self._in_flight += 1

    def release(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def deadline_for(self, max_response_time: float | None, arrived: float | None = None) -> tuple[float, str]:
        """(monotonic deadline, how to name it in an error)."""
        start = time.monotonic() if arrived is None else arrived
        if max_response_time is not None:
            return start + max_response_time, f"max_response_time {max_response_time:g} s"
        return start + self.default_timeout_s, f"the router's request_timeout_s {self.default_timeout_s:g} s"
