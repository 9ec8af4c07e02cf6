"""The usage endpoint's logic: read a window of records from the store and summarise it.

    analytics = UsageAnalytics(open_store(), lambda: specialists_from_catalog(catalog))
    analytics.summary(window_s=3600)

With a shared PostgreSQL store the summary covers every replica; its "replicas" field
counts the window's records by the replica that served them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from pointsman.errors import InvalidRequest
from pointsman.ops.usage.analytics import summarize
from pointsman.ops.usage.storage import Store
from pointsman.ops.usage.suggestions import Thresholds

MAX_RECORDS = 200_000  # the most recent ones; bounds the memory and time of one summary


class UsageAnalytics:
    def __init__(self, store: Store, specialists: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
                 thresholds: Thresholds | None = None, max_records: int = MAX_RECORDS) -> None:
        self.store = store
        # a callable: task -> specialist among the models the repository has now
        self._specialists = specialists if callable(specialists) else dict(specialists or {})
        self.thresholds = thresholds or Thresholds()
        self.max_records = max_records

    @property
    def specialists(self) -> dict[str, str]:
        return dict(self._specialists()) if callable(self._specialists) else self._specialists

    def summary(self, window_s: float | None = None, now: float | None = None) -> dict[str, Any]:
        """Summary of the last window_s seconds (all records when None)."""
        window_s = parse_window(window_s)
        now = time.time() if now is None else now
        since = None if window_s is None else now - window_s
        records = self.store.records(since=since, until=now, limit=self.max_records)
        summary = summarize(records, window_s=window_s, now=now, specialists=self.specialists,
                            thresholds=self.thresholds)
        summary["truncated"] = len(records) >= self.max_records
        summary["replicas"] = self.store.replica_counts(since=since, until=now)
        return summary


    def prune(self, retention_days: float, now: float | None = None) -> int:
        """Delete records older than retention_days (0 keeps everything); returns how many went."""
        if retention_days <= 0:
            return 0
        now = time.time() if now is None else now
        return self.store.prune(before=now - retention_days * 86_400.0)


def parse_window(value: Any) -> float | None:
    """None or a positive finite number of seconds; 0 also means every record."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidRequest("window_s", "must be a number of seconds > 0 (absent or 0: every record)", got=value)
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidRequest("window_s", "must be a number of seconds > 0 (absent or 0: every record)",
                             got=value) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidRequest("window_s", "must be a number of seconds > 0 (absent or 0: every record)", got=value)
    return seconds or None
