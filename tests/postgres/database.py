"""Fixtures for tests against a real PostgreSQL: the server `make test` starts, one database per test.

    def test_x(postgres_database):         # a fresh, empty database's URL; dropped afterwards
        store = PostgresStore(postgres_database)

`make test` runs tests/postgres/start_postgres.sh, which starts (or installs) a local
PostgreSQL and exports POINTSMAN_TEST_DATABASE_URL; without it these tests fail with the
command to run, rather than skip: a skipped database test would look like a passed one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

TEST_DATABASE_ENV = "POINTSMAN_TEST_DATABASE_URL"


def database_url(server_url: str, name: str) -> str:
    """The server's URL with another database name."""
    parts = urlsplit(server_url)  # geturl() would drop the empty host of postgresql:///db?host=/socket
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


def create_database(server_url: str, prefix: str = "pointsman_t") -> tuple[str, str]:
    """A new empty database on the server; (name, URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> str:
    import os

    url = os.environ.get(TEST_DATABASE_ENV)
    if not url:
        pytest.fail(f"{TEST_DATABASE_ENV} is not set: run `make test`, or "
                    f'`export {TEST_DATABASE_ENV}="$(tests/postgres/start_postgres.sh)"`', pytrace=False)
    return url


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    name, url = create_database(postgres_url)
    try:
        yield url
    finally:
        drop_database(postgres_url, name)
