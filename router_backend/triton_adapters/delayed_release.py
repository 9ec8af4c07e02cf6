"""Keep finished BLS response iterators alive a while, so that Python, not a Triton stub thread, frees them.

    RELEASE = DelayedRelease(hold_s=10.0)
    RELEASE.keep(responses)   # once the call's last response was read, or its reader stopped

Triton 2.51's Python stub holds a decoupled BLS call's response iterator twice: from
Python, and from a map that its stub-to-parent thread clears once the last response has
been read (pb_stub.cc `SendCleanupId`), without holding the GIL. If Python let go first,
that thread frees the responses' numpy arrays with no GIL, racing the Python threads over
the interpreter's allocator, and the stub dies later, somewhere else (docs/faults.md).
Kept here for `hold_s`, long after that cleanup, the last reference is Python's, and the
responses are freed with the GIL. No Triton import: the caller hands over the iterator.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

HOLD_S = 10.0  # the stub's cleanup is one round trip to the server process: milliseconds, even under load


class DelayedRelease:
    """Holds objects for at least `hold_s`; each `keep` lets go of those held longer (thread-safe)."""

    def __init__(self, hold_s: float = HOLD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self._clock = clock
        self._held: collections.deque[tuple[float, object]] = collections.deque()
        self._lock = threading.Lock()

    def keep(self, thing: object) -> None:
        now = self._clock()
        released = []  # freed after the lock is let go: a release may take a while
        with self._lock:
            while self._held and now - self._held[0][0] >= self.hold_s:
                released.append(self._held.popleft()[1])
            self._held.append((now, thing))
        released.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)
