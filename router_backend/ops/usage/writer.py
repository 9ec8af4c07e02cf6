"""Write request records off the request path: a queue and one thread that inserts in batches.

    writer = RecordWriter(open_store(), on_lost=metrics.count_lost)
    writer.record(record)     # never blocks, never raises
    writer.close()            # flushes what is queued

When the database is unreachable the batch in hand is retried every retry_s while new
records wait in the queue, so a restart or a fail-over loses nothing as long as the queue
holds the records meanwhile (max_queue bounds the memory: 100,000 records, minutes of
traffic). A full queue drops new records rather than slow the router down. With hold_s
set, a batch is given up after failing that long; at close, one last try. Every record
lost is counted in `dropped` (queue full) or `lost` (given up) and reported to
on_lost(n, reason), which the router turns into pointsman_usage_records_lost_total.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from pointsman.ops.usage.records import RequestRecord
from pointsman.ops.usage.storage import STORE_ERRORS, Store

LOGGER = logging.getLogger(__name__)
QUEUE_FULL, DATABASE_UNAVAILABLE = "queue_full", "database_unavailable"
LOST_REASONS = (QUEUE_FULL, DATABASE_UNAVAILABLE)
_STOP = object()


class RecordWriter:
    """Batches records into the store from a daemon thread."""

    def __init__(self, store: Store, flush_interval_s: float = 0.1, max_batch: int = 512,
                 max_queue: int = 100_000, hold_s: float | None = None, retry_s: float = 0.5,
                 on_lost: Callable[[int, str], None] | None = None) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.hold_s = hold_s
        self.retry_s = retry_s
        self.on_lost = on_lost
        self.dropped = 0  # queue full
        self.lost = 0  # given up: failing for hold_s, or still failing at close
        self.written = 0
        self._in_hand = 0  # records of the batch being written (or retried)
        self._closing = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="pointsman-record-writer", daemon=True)
        self._thread.start()

    def record(self, record: RequestRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            self._report_lost(1, QUEUE_FULL)
            if self.dropped == 1 or self.dropped % 1000 == 0:
                LOGGER.warning("usage record queue full: %d records dropped so far", self.dropped)

    @property
    def waiting(self) -> int:
        """Records not stored yet: queued, or in the batch being written (analytics miss them meanwhile)."""
        return self._queue.qsize() + self._in_hand

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is written or given up (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued; while the database is away, each batch gets one last try, then is lost."""
        if self._thread.is_alive():
            self._closing.set()
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                LOGGER.error("closing with %d usage records queued and the store unreachable", self._queue.qsize())
                return
            self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                continue
            batch, events = [], []
            item = first
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._in_hand = len(batch)
            self._write(batch)
            self._in_hand = 0
            for event in events:
                event.set()

    def _write(self, batch: list[RequestRecord]) -> None:
        if not batch:
            return
        failing_since = None
        while True:
            try:
                self.store.insert_records(batch)
            except STORE_ERRORS as exc:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    LOGGER.warning("could not write %d usage records to %s (%s); retrying every %.1f s, "
                                   "new records queue meanwhile", len(batch), self.store.location, exc,
                                   self.retry_s)
                held_too_long = self.hold_s is not None and now - failing_since >= self.hold_s
                if held_too_long or self._closing.is_set():
                    self.lost += len(batch)
                    self._report_lost(len(batch), DATABASE_UNAVAILABLE)
                    LOGGER.error("lost %d usage records: %s unreachable for %.1f s (%d lost so far)",
                                 len(batch), self.store.location, now - failing_since, self.lost)
                    return
                self._closing.wait(self.retry_s)  # back off; close() cuts the wait short
                continue
            self.written += len(batch)
            if failing_since is not None:
                LOGGER.warning("usage records reach %s again after %.1f s", self.store.location,
                               time.monotonic() - failing_since)
            return

    def _report_lost(self, count: int, reason: str) -> None:
        if self.on_lost is not None:
            try:
                self.on_lost(count, reason)
            except Exception:
                LOGGER.exception("could not count %d lost usage records", count)
