"""Wait on a condition, never on the clock alone.

    assert wait_until(lambda: server_reports_it(), timeout=10)
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
