"""Wait on a condition, never on the clock alone.

    assert wait_until(lambda: server_reports_it(), timeout=10)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def _poll(condition: Callable[[], T], timeout: float, interval: float) -> T:
    """Call `condition` until it returns something true or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)  # the polling interval, not a stand-in for synchronisation


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last verdict."""
    return bool(_poll(predicate, timeout, interval))


def wait_for(condition: Callable[[], T], timeout: float = 30.0, what: str = "the condition",
             interval: float = 0.05) -> T:
    """Poll `condition` until it returns something true and return that; else fail the test naming `what`."""
    value = _poll(condition, timeout, interval)
    if not value:
        pytest.fail(f"not within {timeout:.0f} s: {what}")
    return value
