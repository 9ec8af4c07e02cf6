"""The PostgreSQL store: every replica's records, feedback and experiments in one shared database.

    store = PostgresStore("postgresql://pointsman:secret@db:5432/pointsman", replica="pod-a")
    store.insert_records(records)      # one round trip per batch (psycopg pipeline)

Connections come from a psycopg_pool pool, checked before use, so a restarted database
is reconnected without a restart of ours. The schema is created or migrated lazily, on
the first operation that reaches the database, under an advisory lock: replicas starting
together migrate once, and a replica that starts while the database is down still
serves. The schema version is the meta row 'schema_version'; MIGRATIONS[n] takes a
database from version n - 1 to n. Every driver error surfaces as StoreError.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from pointsman.ops.usage.records import RequestRecord
from pointsman.ops.usage.storage import ExperimentRow, StoreError
from pointsman.ops.usage.store import record_from_row, record_to_row

LOGGER = logging.getLogger(__name__)
POOL_TIMEOUT_S = 5.0  # how long an operation waits for a connection before it fails
CONNECT_TIMEOUT_S = 3
# the pool retries a failed connection at 1, 2, 4, ... s: giving up after 5 s and starting
# over when an operation next asks keeps the gap between tries, so the reconnect lag, short
RECONNECT_TIMEOUT_S = 5.0
MIGRATION_LOCK = 0x706F696E  # pg_advisory_xact_lock key: one migrating replica at a time

_RECORD_COLUMNS = tuple(RequestRecord.__dataclass_fields__)
_QUOTED = ", ".join(f'"{c}"' for c in _RECORD_COLUMNS)  # "user" is a reserved word here
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE requests (
            id BIGSERIAL PRIMARY KEY, request_id TEXT NOT NULL, "timestamp" DOUBLE PRECISION NOT NULL,
            selection_mode TEXT NOT NULL, selected_model TEXT NOT NULL, task TEXT NOT NULL, analyzer TEXT NOT NULL,
            fallback_used INTEGER NOT NULL, fallback_reason TEXT, selection_ms DOUBLE PRECISION NOT NULL,
            ttft_s DOUBLE PRECISION, duration_s DOUBLE PRECISION NOT NULL, tokens INTEGER NOT NULL,
            error_kind TEXT, "user" TEXT, experiment TEXT, arm TEXT, mean_logprob DOUBLE PRECISION,
            candidates_busy TEXT, preferred_model TEXT)""",
        'CREATE INDEX requests_by_time ON requests ("timestamp")',
        "CREATE INDEX requests_by_id ON requests (request_id)",
        "CREATE INDEX requests_by_experiment ON requests (experiment, arm)",
        "CREATE TABLE feedback (request_id TEXT PRIMARY KEY, score DOUBLE PRECISION NOT NULL, "
        '"timestamp" DOUBLE PRECISION NOT NULL)',
        "CREATE TABLE experiments (id BIGSERIAL, name TEXT PRIMARY KEY, definition TEXT NOT NULL, "
        "status TEXT NOT NULL, source TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('experiments_version', 0), ('schema_version', 0)",
    ),
    # which replica served the request: summaries say whose records they hold
    2: ("ALTER TABLE requests ADD COLUMN replica TEXT",),
}
SCHEMA_VERSION = max(MIGRATIONS)


def redact(url: str) -> str:
    """The URL's host, port and database, never its password (for logs and errors)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    return f"postgresql://{parts.get('host', '')}:{parts.get('port', '5432')}/{parts.get('dbname', '')}"


class PostgresStore:
    """Request records, feedback and experiments in a PostgreSQL database shared by replicas."""

    def __init__(self, url: str, replica: str = "local", min_size: int = 1, max_size: int = 4,
                 timeout_s: float = POOL_TIMEOUT_S) -> None:
        self.location = redact(url)
        self.replica = replica
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, timeout=timeout_s, open=True,
            check=ConnectionPool.check_connection, name=f"pointsman-{replica}", reconnect_timeout=RECONNECT_TIMEOUT_S,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": f"pointsman-{replica}"[:63]},
        )
        try:
            self._ensure_schema()
        except StoreError as exc:  # served anyway; the next operation tries again
            LOGGER.warning("PostgreSQL at %s is not reachable yet (%s); retrying on use", self.location, exc)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # connections and schema ------------------------------------------------------------
    @contextmanager
    def _connection(self, migrate: bool = True) -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction, committed on success; driver errors become StoreError."""
        if migrate and not self._schema_ready:
            self._ensure_schema()
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {self.location}: {type(exc).__name__}: {exc}".strip()) from exc

    def _ensure_schema(self) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._connection(migrate=False) as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                version = _current_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.location} has schema version {version}, newer than this "
                                     f"pointsman's {SCHEMA_VERSION}: upgrade pointsman")
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step]:
                        conn.execute(statement)
                    conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (step,))
                    LOGGER.info("migrated %s to schema version %d", self.location, step)
            self._schema_ready = True

    def schema_version(self) -> int:
        with self._connection() as conn:
            return _current_version(conn)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._connection() as conn:
            return conn.execute(sql, params).rowcount

    # request records -------------------------------------------------------------------
    def insert_records(self, records: Sequence[RequestRecord]) -> None:
        if not records:
            return
        marks = ", ".join(["%s"] * (len(_RECORD_COLUMNS) + 1))
        with self._connection() as conn, conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO requests ({_QUOTED}, replica) VALUES ({marks})",
                               [(*record_to_row(r), self.replica) for r in records])

    def records(self, since: float | None = None, until: float | None = None, experiment: str | None = None,
                limit: int | None = None) -> list[RequestRecord]:
        """Records in time order; with limit, the most recent ones."""
        where, params = [], []
        for clause, value in (('"timestamp" >= %s', since), ('"timestamp" <= %s', until),
                              ("experiment = %s", experiment)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {_QUOTED} FROM requests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += ' ORDER BY "timestamp" DESC, id DESC'
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [record_from_row(row) for row in reversed(self._read(sql, params))]

    def replica_counts(self, since: float | None = None, until: float | None = None) -> dict[str, int]:
        """Records per replica in the window (records from before schema version 2 count under "unknown")."""
        rows = self._read("SELECT COALESCE(replica, 'unknown'), COUNT(*) FROM requests "
                          'WHERE "timestamp" >= %s AND "timestamp" <= %s GROUP BY 1',
                          (float("-inf") if since is None else since, float("inf") if until is None else until))
        return {name: int(count) for name, count in rows}

    def has_request(self, request_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM requests WHERE request_id = %s LIMIT 1", (request_id,)))

    def prune(self, before: float) -> int:
        """Delete records (and their feedback) older than `before`; returns the records deleted."""
        with self._connection() as conn:
            conn.execute('DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM requests '
                         'WHERE "timestamp" < %s)', (before,))
            return conn.execute('DELETE FROM requests WHERE "timestamp" < %s', (before,)).rowcount

    # feedback --------------------------------------------------------------------------
    def put_feedback(self, request_id: str, score: float, timestamp: float) -> None:
        """The latest score for a request wins, whichever replica received it."""
        self._write('INSERT INTO feedback (request_id, score, "timestamp") VALUES (%s, %s, %s) '
                    'ON CONFLICT (request_id) DO UPDATE SET score = EXCLUDED.score, "timestamp" = EXCLUDED."timestamp"',
                    (request_id, score, timestamp))

    def feedback(self, experiment: str) -> dict[str, float]:
        rows = self._read("SELECT f.request_id, f.score FROM feedback f WHERE EXISTS (SELECT 1 FROM requests r "
                          "WHERE r.request_id = f.request_id AND r.experiment = %s)", (experiment,))
        return dict(rows)

    # experiments -----------------------------------------------------------------------
    def insert_experiment(self, name: str, definition: dict, status: str, source: str, now: float) -> bool:
        """Add an experiment unless one of that name exists; True when added."""
        with self._connection() as conn:
            added = conn.execute(
                "INSERT INTO experiments (name, definition, status, source, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (name, json.dumps(definition, sort_keys=True), status, source, now, now)).rowcount == 1
            if added:
                _bump_version(conn)
        return added

    def set_experiment_status(self, name: str, status: str, now: float) -> bool:
        with self._connection() as conn:
            changed = conn.execute("UPDATE experiments SET status = %s, updated_at = %s WHERE name = %s",
                                   (status, now, name)).rowcount == 1
            if changed:
                _bump_version(conn)
        return changed

    def experiments_version(self) -> int:
        """Changes whenever any replica adds an experiment or changes a status: a cheap poll."""
        return int(self._read("SELECT value FROM meta WHERE key = 'experiments_version'")[0][0])

    def experiments(self) -> list[ExperimentRow]:
        """Every experiment, in the order it was added."""
        rows = self._read("SELECT name, definition, status, source, created_at, updated_at FROM experiments "
                          "ORDER BY id")
        return [ExperimentRow(name, json.loads(defn), status, source, created, updated)
                for name, defn, status, source, created, updated in rows]

    def experiment(self, name: str) -> ExperimentRow | None:
        return next((row for row in self.experiments() if row.name == name), None)

    def arm_counts(self, experiment: str) -> dict[str, int]:
        rows = self._read("SELECT arm, COUNT(*) FROM requests WHERE experiment = %s GROUP BY arm", (experiment,))
        return {arm: int(count) for arm, count in rows}


def _current_version(conn: psycopg.Connection) -> int:
    """0 for an empty database; else the meta row."""
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _bump_version(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'experiments_version'")
