"""Both stores behind one interface, against a real SQLite file and a real PostgreSQL database.

    make test        # or: export POINTSMAN_TEST_DATABASE_URL="$(tests/postgres/start_postgres.sh)"
    .venv/bin/pytest tests/postgres -q

Every contract test runs on both backends. The migration tests build a database at the
old schema version 1 with its own DDL and data, then open it with the current code: the
schema moves to the latest version and the old rows stay. The outage tests make the
PostgreSQL database refuse connections (ALLOW_CONNECTIONS false, sessions terminated),
a real "database unreachable", and let it back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from pointsman.ops.experiments import ExperimentManager
from pointsman.ops.usage import pg_store, store
from pointsman.ops.usage.pg_store import PostgresStore
from pointsman.ops.usage.storage import Store, StoreError, open_store
from pointsman.ops.usage.writer import DATABASE_UNAVAILABLE, RecordWriter
from tests.postgres.database import create_database, drop_database
from tests.unit.conftest import build_record

MODELS = {"gpt2", "distilgpt2"}
OUTAGE_POOL_TIMEOUT_S = 1.0  # how long an operation waits for a connection while the database is away
EXPERIMENT = {"name": "ab", "arms": [{"name": "a", "model": "gpt2"}, {"name": "b", "model": "distilgpt2"}]}


def wait_until(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> object:
    """Poll condition until it returns something true; fail with a message at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.0f} s")
        time.sleep(interval)  # polling interval of the wait, not a stand-in for synchronisation


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request, tmp_path) -> Iterator[Callable[..., Store]]:
    """A factory of stores on one database: several of them are several processes or replicas."""
    opened: list[Store] = []
    if request.param == "sqlite":
        target = str(tmp_path / "pointsman.db")
    else:
        target = request.getfixturevalue("postgres_database")

    def make(replica: str = "r1") -> Store:
        made = store.StateStore(target, replica=replica) if request.param == "sqlite" else PostgresStore(
            target, replica=replica)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


def test_records_round_trip_in_time_order_with_filters_and_limit(make_store) -> None:
    db = make_store()
    full = build_record(timestamp=5.5, selection_mode="hybrid", fallback_used=True, fallback_reason="x",
                        preferred_model="codegen", candidates_busy={"gpt2": 2}, ttft_s=None, error_kind="unavailable",
                        user="alice", experiment="e", arm="b", mean_logprob=-1.25)
    records = [build_record(timestamp=float(t), experiment="e" if t % 2 else None) for t in range(5)] + [full]
    db.insert_records(records[::-1])
    assert db.records() == sorted(records, key=lambda r: r.timestamp)
    assert [r.timestamp for r in db.records(since=2, until=4)] == [2, 3, 4]
    assert [r.timestamp for r in db.records(experiment="e")] == [1, 3, 5.5]
    assert [r.timestamp for r in db.records(limit=2)] == [4, 5.5]
    assert db.schema_version() == store.SCHEMA_VERSION == pg_store.SCHEMA_VERSION


def test_feedback_for_a_request_reaches_it_from_another_replica(make_store) -> None:
    served_by, told = make_store("a"), make_store("b")
    record = build_record(experiment="e", arm="a")
    served_by.insert_records([record])
    told.put_feedback(record.request_id, 0.5, 1.0)
    told.put_feedback(record.request_id, 0.75, 2.0)  # the latest wins
    assert served_by.feedback("e") == {record.request_id: 0.75}
    assert told.has_request(record.request_id) and not told.has_request("nobody")


def test_replica_counts_cover_every_replica_in_the_window(make_store) -> None:
    a, b = make_store("a"), make_store("b")
    a.insert_records([build_record(timestamp=float(t)) for t in range(3)])
    b.insert_records([build_record(timestamp=float(t)) for t in range(2, 6)])
    assert a.replica_counts() == b.replica_counts() == {"a": 3, "b": 4}
    assert a.replica_counts(since=2, until=3) == {"a": 1, "b": 2}


def test_prune_deletes_old_records_and_their_feedback(make_store) -> None:
    db = make_store()
    old, new = build_record(timestamp=1.0, experiment="e"), build_record(timestamp=100.0, experiment="e")
    db.insert_records([old, new])
    db.put_feedback(old.request_id, 1.0, 1.0)
    db.put_feedback(new.request_id, 0.0, 1.0)
    assert db.prune(before=50.0) == 1
    assert db.records() == [new] and db.feedback("e") == {new.request_id: 0.0}


def test_experiment_changes_move_the_version_another_replica_polls(make_store) -> None:
    writer, reader = make_store("a"), make_store("b")
    start = reader.experiments_version()
    assert writer.insert_experiment("e", {"name": "e"}, "active", "runtime", 1.0)
    assert not writer.insert_experiment("e", {"name": "e"}, "active", "runtime", 2.0)
    assert writer.insert_experiment("d", {"name": "d"}, "paused", "file", 2.0)
    assert reader.experiments_version() == start + 2
    assert writer.set_experiment_status("e", "stopped", 3.0)
    assert not writer.set_experiment_status("missing", "paused", 3.0)
    assert reader.experiments_version() == start + 3
    assert [(r.name, r.status) for r in reader.experiments()] == [("e", "stopped"), ("d", "paused")]
    assert reader.experiment("e").definition == {"name": "e"} and reader.experiment("x") is None


def test_a_polling_manager_applies_another_replicas_changes_within_its_refresh(make_store) -> None:
    admin = ExperimentManager(make_store("a"), known_models=MODELS)
    router = ExperimentManager(make_store("b"), refresh_s=0.2)
    router.start_polling()
    try:
        admin.create(EXPERIMENT)
        arm = wait_until(lambda: router.assign("auto", None, "alice"), timeout=10).arm
        assert arm == admin.assign("auto", None, "alice").arm  # sticky by user across replicas
        admin.pause("ab")
        wait_until(lambda: router.assign("auto", None, "alice") is None, timeout=10)
    finally:
        router.close()


def test_the_first_replica_creates_the_schema_and_the_others_reuse_it(make_store) -> None:
    stores = []
    threads = [threading.Thread(target=lambda: stores.append(make_store())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(stores) == 3 and all(s.schema_version() == 2 for s in stores)
    stores[0].insert_records([build_record()])
    assert len(stores[2].records()) == 1


# -- migrations -------------------------------------------------------------------------------


def build_sqlite_v1(path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(store.MIGRATIONS[1] + "PRAGMA user_version = 1;")
    return conn


def build_postgres_v1(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    for statement in pg_store.MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
    return conn


def old_rows(record) -> tuple:
    return store.record_to_row(record)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_version_1_database_migrates_on_start_and_keeps_its_data(backend, tmp_path, request) -> None:
    old = [build_record(timestamp=float(t), experiment="e", arm="a") for t in range(3)]
    columns = ", ".join(f'"{c}"' for c in store.RequestRecord.__dataclass_fields__)
    if backend == "sqlite":
        target = str(tmp_path / "pointsman.db")
        conn = build_sqlite_v1(target)
        marks = ", ".join("?" * len(old_rows(old[0])))
        conn.executemany(f"INSERT INTO requests ({columns}) VALUES ({marks})", [old_rows(r) for r in old])
        conn.execute("INSERT INTO experiments VALUES ('e', '{}', 'active', 'file', 1.0, 1.0)")
        conn.close()
        opened = store.StateStore(target, replica="new")
    else:
        target = request.getfixturevalue("postgres_database")
        conn = build_postgres_v1(target)
        marks = ", ".join(["%s"] * len(old_rows(old[0])))
        conn.cursor().executemany(f"INSERT INTO requests ({columns}) VALUES ({marks})", [old_rows(r) for r in old])
        conn.execute("INSERT INTO experiments (name, definition, status, source, created_at, updated_at) "
                     "VALUES ('e', '{}', 'active', 'file', 1.0, 1.0)")
        conn.close()
        opened = PostgresStore(target, replica="new")
    with opened:
        assert opened.schema_version() == 2
        assert opened.records() == old
        assert [e.name for e in opened.experiments()] == ["e"]
        opened.insert_records([build_record(timestamp=9.0)])
        assert opened.replica_counts() == {"unknown": 3, "new": 1}


def test_a_database_from_a_newer_pointsman_is_refused_by_name(tmp_path) -> None:
    path = tmp_path / "pointsman.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99, newer than this pointsman's 2: upgrade pointsman"):
        store.StateStore(path)


# -- selection and outages -----------------------------------------------------------------------


def test_open_store_picks_postgres_from_the_url_and_sqlite_otherwise(postgres_database, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("POINTSMAN_DATABASE_URL", postgres_database)
    with open_store(replica="x") as shared:
        assert isinstance(shared, PostgresStore) and shared.replica == "x"
    monkeypatch.delenv("POINTSMAN_DATABASE_URL")
    with open_store(tmp_path) as local:
        assert isinstance(local, store.StateStore) and local.path == tmp_path / "pointsman.db"
    with pytest.raises(ValueError, match="invalid POINTSMAN_DATABASE_URL: must start with postgresql://"):
        open_store(url="mysql://u:secret@db/x")


@pytest.fixture
def blockable_database(postgres_url) -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A database and block(True/False): refuse every connection to it (ending open ones), or allow them."""
    name, url = create_database(postgres_url)

    def block(refuse: bool) -> None:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}')
            if refuse:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    try:
        yield url, block
    finally:
        block(False)
        drop_database(postgres_url, name)


def test_writer_counts_records_lost_while_the_database_is_unreachable_and_reconnects(blockable_database) -> None:
    url, block = blockable_database
    lost: list[tuple[int, str]] = []
    db = PostgresStore(url, replica="w", timeout_s=OUTAGE_POOL_TIMEOUT_S)
    writer = RecordWriter(db, flush_interval_s=0.01, hold_s=0.5, retry_s=0.1,
                          on_lost=lambda n, reason: lost.append((n, reason)))
    try:
        block(True)
        writer.record(build_record())
        assert writer.flush(timeout=30)
        assert writer.lost == 1 and lost == [(1, DATABASE_UNAVAILABLE)]
        with pytest.raises(StoreError, match="PostgreSQL at postgresql://"):
            db.records()
        block(False)
        kept = build_record()
        writer.record(kept)
        assert writer.flush(timeout=30)
        assert db.records() == [kept] and writer.written == 1 and writer.lost == 1
    finally:
        writer.close()
        db.close()


def test_writer_keeps_a_batch_through_an_outage_shorter_than_its_hold(blockable_database) -> None:
    url, block = blockable_database
    db = PostgresStore(url, replica="w", timeout_s=OUTAGE_POOL_TIMEOUT_S)
    writer = RecordWriter(db, flush_interval_s=0.01, hold_s=60.0, retry_s=0.1)
    try:
        block(True)
        record = build_record()
        writer.record(record)
        wait_until(lambda: not writer._queue.qsize())  # the writer holds the batch, retrying
        block(False)
        assert writer.flush(timeout=60)
        assert db.records() == [record] and writer.lost == 0
    finally:
        writer.close()
        db.close()


def test_a_store_opened_while_the_database_is_down_serves_once_it_is_up(blockable_database) -> None:
    url, block = blockable_database
    block(True)
    db = PostgresStore(url, replica="late", timeout_s=OUTAGE_POOL_TIMEOUT_S)
    try:
        with pytest.raises(StoreError):
            db.experiments_version()
        block(False)
        assert wait_until(lambda: _reachable(db), timeout=30)
        assert db.schema_version() == 2
    finally:
        db.close()


def _reachable(db: PostgresStore) -> bool:
    try:
        db.experiments_version()
    except StoreError:
        return False
    return True


def test_experiments_seeded_while_the_database_is_down_are_added_by_the_first_action_after(blockable_database,
                                                                                          tmp_path) -> None:
    url, block = blockable_database
    seed = tmp_path / "experiments.toml"
    seed.write_text('[[experiments]]\nname = "seeded"\n[[experiments.arms]]\nname = "a"\nmodel = "gpt2"\n'
                    '[[experiments.arms]]\nname = "b"\nmodel = "distilgpt2"\n')
    block(True)
    db = PostgresStore(url, replica="late", timeout_s=OUTAGE_POOL_TIMEOUT_S)
    try:
        manager = ExperimentManager(db, known_models=MODELS)  # loads with nothing: the database is away
        assert manager.seed(seed) == []
        with pytest.raises(StoreError):
            manager.handle("list")
        block(False)
        listed = wait_until(lambda: _listed(manager), timeout=30)
        assert [e["name"] for e in listed] == ["seeded"]
    finally:
        db.close()


def _listed(manager: ExperimentManager) -> list[dict] | None:
    try:
        return manager.handle("list")["experiments"]
    except StoreError:
        return None
