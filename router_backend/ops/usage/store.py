"""The embedded SQLite store of request records, feedback and experiments, shared by processes.

    store = StateStore(default_db_path())      # $POINTSMAN_STATE_DIR/pointsman.db
    store.insert_records([record]); store.records(since=time.time() - 3600)

The router and the usage and experiments models run in separate Triton stub processes:
WAL mode lets them read while one writes, and a busy timeout makes writers wait their turn
instead of failing. One connection per store, guarded by a lock, so a store may be shared
by threads of one process. The schema version is SQLite's user_version; MIGRATIONS[n]
takes a database from version n - 1 to n, inside the transaction that creates it.
One machine only: replicas share a PostgreSQL database instead (pg_store.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pointsman.ops.usage.records import RequestRecord
from pointsman.ops.usage.storage import ExperimentRow, StoreError

__all__ = ["DB_NAME", "ExperimentRow", "MIGRATIONS", "SCHEMA_VERSION", "StateStore", "StoreError", "default_db_path",
           "record_from_row", "record_to_row"]

LOGGER = logging.getLogger(__name__)
DB_NAME = "pointsman.db"
STATE_DIR_ENV = "POINTSMAN_STATE_DIR"
BUSY_TIMEOUT_S = 10.0

_RECORD_COLUMNS = tuple(RequestRecord.__dataclass_fields__)
MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT NOT NULL, timestamp REAL NOT NULL, selection_mode TEXT NOT NULL,
    selected_model TEXT NOT NULL, task TEXT NOT NULL, analyzer TEXT NOT NULL, fallback_used INTEGER NOT NULL,
    fallback_reason TEXT, selection_ms REAL NOT NULL, ttft_s REAL, duration_s REAL NOT NULL,
    tokens INTEGER NOT NULL, error_kind TEXT, user TEXT, experiment TEXT, arm TEXT, mean_logprob REAL,
    candidates_busy TEXT, preferred_model TEXT
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (timestamp);
CREATE INDEX IF NOT EXISTS requests_by_id ON requests (request_id);
CREATE INDEX IF NOT EXISTS requests_by_experiment ON requests (experiment, arm);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY, score REAL NOT NULL, timestamp REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY, definition TEXT NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('experiments_version', 0);
""",
    # which replica (or machine) served the request: summaries say whose records they hold
    2: "ALTER TABLE requests ADD COLUMN replica TEXT;",
}
SCHEMA_VERSION = max(MIGRATIONS)
assert len(_RECORD_COLUMNS) == 19, "keep the requests table in step with RequestRecord"


def _owner_only(path: Path) -> None:
    """Create the database file readable by its owner only; SQLite gives its -wal and -shm files the same mode.

    It holds prompt previews and feedback: nobody else on the machine should read it.
    """
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)


def default_db_path(state_dir: str | os.PathLike | None = None) -> Path:
    """state_dir if given, else $POINTSMAN_STATE_DIR, else .pointsman under the working directory."""
    folder = state_dir or os.environ.get(STATE_DIR_ENV) or ".pointsman"
    return Path(folder) / DB_NAME


def record_to_row(record: RequestRecord) -> tuple:
    values = []
    for name in _RECORD_COLUMNS:
        value = getattr(record, name)
        if name == "candidates_busy" and value is not None:
            value = json.dumps(value, sort_keys=True)
        elif name == "fallback_used":
            value = int(value)
        values.append(value)
    return tuple(values)


def record_from_row(row: Sequence) -> RequestRecord:
    data = dict(zip(_RECORD_COLUMNS, row, strict=True))
    data["fallback_used"] = bool(data["fallback_used"])
    if data["candidates_busy"] is not None:
        data["candidates_busy"] = json.loads(data["candidates_busy"])
    return RequestRecord(**data)


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL, waiting out other connections that are creating or switching it.

    SQLite answers "database is locked" at once, without its busy handler, when another
    connection holds the file while it is created or its journal mode changes: routers
    starting together on one state file would otherwise fail to start.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)  # back off before trying again; the other connection is mid-switch


class StateStore:
    """Request records, feedback scores and experiment definitions in one SQLite file."""

    def __init__(self, path: str | os.PathLike, replica: str = "local") -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.replica = replica
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(self.path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                                     isolation_level=None)
        _enable_wal(self._conn, BUSY_TIMEOUT_S)
        # NORMAL is durable across process crashes in WAL mode; a power cut may lose the last commits
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._transaction() as conn:  # IMMEDIATE: two processes may race to create or migrate
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}, newer than this pointsman's "
                                 f"{SCHEMA_VERSION}: upgrade pointsman")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in filter(str.strip, MIGRATIONS[step].split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step}")
                if version:
                    LOGGER.info("migrated %s to schema version %d", self.path, step)

    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _write(self, sql: str, params: Iterable | Sequence = (), many: bool = False) -> int:
        with self._transaction() as conn:
            cursor = conn.executemany(sql, params) if many else conn.execute(sql, params)
            return cursor.rowcount

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # request records -------------------------------------------------------------------
    def insert_records(self, records: Sequence[RequestRecord]) -> None:
        if not records:
            return
        marks = ", ".join("?" * (len(_RECORD_COLUMNS) + 1))
        self._write(f"INSERT INTO requests ({', '.join(_RECORD_COLUMNS)}, replica) VALUES ({marks})",
                    [(*record_to_row(r), self.replica) for r in records], many=True)

    def records(self, since: float | None = None, until: float | None = None, experiment: str | None = None,
                limit: int | None = None) -> list[RequestRecord]:
        """Records in time order; with limit, the most recent ones."""
        where, params = [], []
        if since is not None:
            where.append("timestamp >= ?")
            params.append(since)
        if until is not None:
            where.append("timestamp <= ?")
            params.append(until)
        if experiment is not None:
            where.append("experiment = ?")
            params.append(experiment)
        sql = f"SELECT {', '.join(_RECORD_COLUMNS)} FROM requests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY timestamp DESC, rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [record_from_row(row) for row in reversed(self._read(sql, params))]

    def replica_counts(self, since: float | None = None, until: float | None = None) -> dict[str, int]:
        """Records per replica in the window (records from before schema version 2 count under "unknown")."""
        rows = self._read("SELECT COALESCE(replica, 'unknown'), COUNT(*) FROM requests "
                          "WHERE timestamp >= ? AND timestamp <= ? GROUP BY 1",
                          (-math.inf if since is None else since, math.inf if until is None else until))
        return dict(rows)

    def has_request(self, request_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM requests WHERE request_id = ? LIMIT 1", (request_id,)))

    def prune(self, before: float) -> int:
        """Delete records (and their feedback) older than `before`; returns the records deleted."""
        self._write("DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM requests WHERE timestamp < ?)",
                    (before,))
        return self._write("DELETE FROM requests WHERE timestamp < ?", (before,))

    # feedback --------------------------------------------------------------------------
    def put_feedback(self, request_id: str, score: float, timestamp: float) -> None:
        """The latest score for a request wins."""
        self._write("INSERT OR REPLACE INTO feedback (request_id, score, timestamp) VALUES (?, ?, ?)",
                    (request_id, score, timestamp))

    def feedback(self, experiment: str) -> dict[str, float]:
        rows = self._read("SELECT f.request_id, f.score FROM feedback f JOIN requests r ON r.request_id = f.request_id "
                          "WHERE r.experiment = ?", (experiment,))
        return dict(rows)

    # experiments -----------------------------------------------------------------------
    def insert_experiment(self, name: str, definition: dict, status: str, source: str, now: float) -> bool:
        """Add an experiment unless one of that name exists; True when added."""
        with self._transaction() as conn:
            added = conn.execute(
                "INSERT OR IGNORE INTO experiments (name, definition, status, source, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, json.dumps(definition, sort_keys=True), status, source, now, now)).rowcount == 1
            if added:
                self._bump_version(conn)
        return added

    def set_experiment_status(self, name: str, status: str, now: float) -> bool:
        with self._transaction() as conn:
            changed = conn.execute("UPDATE experiments SET status = ?, updated_at = ? WHERE name = ?",
                                   (status, now, name)).rowcount == 1
            if changed:
                self._bump_version(conn)
        return changed

    @staticmethod
    def _bump_version(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'experiments_version'")

    def experiments_version(self) -> int:
        """Changes whenever any process adds an experiment or changes a status: a cheap poll."""
        return int(self._read("SELECT value FROM meta WHERE key = 'experiments_version'")[0][0])

    def experiments(self) -> list[ExperimentRow]:
        """Every experiment, in the order it was added."""
        rows = self._read("SELECT name, definition, status, source, created_at, updated_at FROM experiments "
                          "ORDER BY rowid")
        return [ExperimentRow(name, json.loads(defn), status, source, created, updated)
                for name, defn, status, source, created, updated in rows]

    def experiment(self, name: str) -> ExperimentRow | None:
        return next((row for row in self.experiments() if row.name == name), None)

    def arm_counts(self, experiment: str) -> dict[str, int]:
        return dict(self._read("SELECT arm, COUNT(*) FROM requests WHERE experiment = ? GROUP BY arm", (experiment,)))
