"""Usage analytics say what they have not seen: records lost or still waiting, from the router's metrics."""

from __future__ import annotations

from pointsman.ops.usage.recording import recording_status
from pointsman.ops.usage.writer import RecordWriter

METRICS = """# HELP pointsman_usage_records_lost_total Usage records never stored
# TYPE pointsman_usage_records_lost_total counter
pointsman_usage_records_lost_total{reason="queue_full"} 0
pointsman_usage_records_lost_total{reason="database_unavailable"} 12
# TYPE pointsman_usage_records_waiting gauge
pointsman_usage_records_waiting 40
nv_inference_count{model="gpt2",version="1"} 7
"""


def test_a_summary_missing_records_says_how_many_and_why():
    status = recording_status(METRICS)
    assert status["complete"] is False
    assert status["records_lost"] == {"queue_full": 0, "database_unavailable": 12}
    assert status["records_waiting"] == 40
    assert status["note"] == ("this summary is missing 52 requests: 12 records lost (database unavailable or "
                              "queue full), 40 not yet stored")


def test_a_summary_with_every_record_stored_says_it_is_complete():
    text = METRICS.replace("} 12", "} 0").replace("waiting 40", "waiting 0")
    assert recording_status(text)["complete"] is True


def test_unreachable_metrics_make_completeness_unknown_not_true():
    assert recording_status(None)["complete"] is None


class RefusingStore:
    location = "disk-full.db"

    def insert_records(self, records):
        import sqlite3

        raise sqlite3.OperationalError("database or disk is full")


def test_the_writer_counts_records_waiting_for_a_refusing_database_then_lost_after_the_hold():
    lost = []
    writer = RecordWriter(RefusingStore(), flush_interval_s=0.01, retry_s=0.01, hold_s=0.2,
                          on_lost=lambda n, reason: lost.append((n, reason)))
    for _ in range(5):
        writer.record(object())
    writer.flush(timeout=5)
    assert writer.waiting == 0
    assert sum(n for n, _ in lost) == 5 and {reason for _, reason in lost} == {"database_unavailable"}
    writer.close()
