"""Where request records, feedback and experiments live: SQLite (one machine) or PostgreSQL (replicas).

    store = open_store()    # $POINTSMAN_DATABASE_URL=postgresql://... else $POINTSMAN_STATE_DIR/pointsman.db
    store.insert_records([record]); store.records(since=time.time() - 3600)

Both stores implement `Store` and version their schema (the migrations are in each one's
module). A store's driver errors surface as `StoreError`, so the writer and the
experiments poller can treat "database unavailable" alike for both.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pointsman.errors import PointsmanError

if TYPE_CHECKING:
    from pointsman.ops.usage.records import RequestRecord

DATABASE_URL_ENV = "POINTSMAN_DATABASE_URL"
REPLICA_ENV = "POINTSMAN_REPLICA"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreError(PointsmanError):
    """The database could not be reached or refused an operation (a server-side fault)."""


STORE_ERRORS = (sqlite3.Error, StoreError)  # what a caller that goes on without the database catches


@dataclass(frozen=True)
class ExperimentRow:
    name: str
    definition: dict
    status: str
    source: str
    created_at: float
    updated_at: float


class Store(Protocol):
    """What the router, the usage model and the experiments model need from a database."""

    location: str  # for logs: a file path, or a URL without its password
    replica: str  # written with every record, so summaries show which replicas they cover

    def close(self) -> None: ...
    def schema_version(self) -> int: ...
    def insert_records(self, records: Sequence[RequestRecord]) -> None: ...
    def records(self, since: float | None = None, until: float | None = None, experiment: str | None = None,
                limit: int | None = None) -> list[RequestRecord]: ...
    def replica_counts(self, since: float | None = None, until: float | None = None) -> dict[str, int]: ...
    def has_request(self, request_id: str) -> bool: ...
    def prune(self, before: float) -> int: ...
    def put_feedback(self, request_id: str, score: float, timestamp: float) -> None: ...
    def feedback(self, experiment: str) -> dict[str, float]: ...
    def insert_experiment(self, name: str, definition: dict, status: str, source: str, now: float) -> bool: ...
    def set_experiment_status(self, name: str, status: str, now: float) -> bool: ...
    def experiments_version(self) -> int: ...
    def experiments(self) -> list[ExperimentRow]: ...
    def experiment(self, name: str) -> ExperimentRow | None: ...
    def arm_counts(self, experiment: str) -> dict[str, int]: ...


def replica_name() -> str:
    """$POINTSMAN_REPLICA, else the host name (a Kubernetes pod's name)."""
    return os.environ.get(REPLICA_ENV) or socket.gethostname()


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and url.startswith(POSTGRES_SCHEMES)


def open_store(state_dir: str | os.PathLike | None = None, url: str | None = None,
               replica: str | None = None) -> Store:
    """PostgreSQL when url (or $POINTSMAN_DATABASE_URL) is a postgresql:// URL, else the SQLite file.

    Raises ValueError, naming the variable, for a URL of another kind.
    """
    url = url if url is not None else os.environ.get(DATABASE_URL_ENV, "")
    replica = replica or replica_name()
    if is_postgres_url(url):
        from pointsman.ops.usage.pg_store import PostgresStore  # psycopg only when asked for

        return PostgresStore(url, replica=replica)
    if url:
        raise ValueError(f"invalid {DATABASE_URL_ENV}: must start with postgresql:// (or be unset for the "
                         f"embedded SQLite file) (got {url.split('://')[0]}://...)")
    from pointsman.ops.usage.store import StateStore, default_db_path

    return StateStore(default_db_path(state_dir), replica=replica)
