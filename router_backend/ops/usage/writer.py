"""Write request records off the request path: a queue and one thread that inserts in batches.

    writer = RecordWriter(StateStore(default_db_path()))
    writer.record(record)     # never blocks, never raises
    writer.close()            # flushes what is queued

A full queue drops records (counted in `dropped`) rather than slow the router down; a
database error loses that batch and is logged, and the writer goes on.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading

from pointsman.ops.usage.records import RequestRecord
from pointsman.ops.usage.store import StateStore

LOGGER = logging.getLogger(__name__)
_STOP = object()


class RecordWriter:
    """Batches records into the store from a daemon thread."""

    def __init__(self, store: StateStore, flush_interval_s: float = 0.1, max_batch: int = 512,
                 max_queue: int = 100_000) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="pointsman-record-writer", daemon=True)
        self._thread.start()

    def record(self, record: RequestRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                LOGGER.warning("usage record queue full: %d records dropped so far", self.dropped)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is written (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
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
            self._write(batch)
            for event in events:
                event.set()

    def _write(self, batch: list[RequestRecord]) -> None:
        if not batch:
            return
        try:
            self.store.insert_records(batch)
            self.written += len(batch)
        except sqlite3.Error:
            LOGGER.exception("could not write %d usage records to %s", len(batch), self.store.path)
