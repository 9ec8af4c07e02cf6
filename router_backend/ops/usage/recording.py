"""What usage analytics have not seen: records the router lost or still holds, from its metrics.

    recording_status(metrics_text)
    # {"complete": False, "records_lost": {"database_unavailable": 12, "queue_full": 0}, "records_waiting": 40, ...}

The router writes usage records off the request path; when the database refuses them
(down, disk full) requests are still served and the records wait, then are counted as
lost. A summary read meanwhile is missing them, and says so. The figures are this
server's (one replica's) only.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

LOST = "pointsman_usage_records_lost_total"
WAITING = "pointsman_usage_records_waiting"


def recording_status(metrics_text: str | None) -> dict[str, Any]:
    """The router's recording figures; `complete` is None when its metrics could not be read."""
    if metrics_text is None:
        return {"complete": None, "records_lost": None, "records_waiting": None,
                "note": "the router's metrics were unreachable: records lost or waiting are unknown"}
    wanted = tuple(f"{name}{{" for name in (LOST, WAITING)) + (f"{WAITING} ",)
    lines = "\n".join(line for line in metrics_text.splitlines() if line.startswith(wanted))
    lost: dict[str, int] = {}
    waiting = 0
    for family in text_string_to_metric_families(lines):
        for sample in family.samples:
            if sample.name == LOST:
                reason = sample.labels.get("reason", "unknown")
                lost[reason] = lost.get(reason, 0) + int(sample.value)
            elif sample.name == WAITING:
                waiting += int(sample.value)
    missing = sum(lost.values()) + waiting
    note = ("every record reached the database" if not missing else
            f"this summary is missing {missing} requests: {sum(lost.values())} records lost "
            f"(database unavailable or queue full), {waiting} not yet stored")
    return {"complete": missing == 0, "records_lost": lost, "records_waiting": waiting, "note": note}
