#!/usr/bin/env bash
# Make sure a local PostgreSQL runs and has the tests' role and database; print their URL.
#
#     export POINTSMAN_TEST_DATABASE_URL="$(tests/postgres/start_postgres.sh)"
#
# Idempotent, for `make test` and CI (root, Debian): installs the server from Debian's
# packages when missing, starts the first cluster when it is down, creates a role named
# after the current OS user (peer authentication over the Unix socket: no password) with
# CREATEDB, so tests can make a database of their own (and drop them, pg_signal_backend),
# and a database pointsman_test.
set -euo pipefail
log() { echo "start_postgres: $*" >&2; }
SOCKET_DIR=/var/run/postgresql
DB=pointsman_test
ROLE="$(id -un)"

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    log "PostgreSQL is not installed; installing it from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
fi
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -n 1) || true
if [ -z "${VERSION:-}" ]; then
    VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    log "no cluster; creating $VERSION/main"
    pg_createcluster "$VERSION" main >&2
    read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -n 1)
fi
if [ "$STATUS" != "online" ]; then
    log "starting cluster $VERSION/$CLUSTER on port $PORT"
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start >&2
fi
for _ in $(seq 1 60); do
    runuser -u postgres -- pg_isready -q -h "$SOCKET_DIR" -p "$PORT" && break
    sleep 0.5  # waiting for the server's socket; no event to wait on from a shell
done
as_postgres() { runuser -u postgres -- psql -h "$SOCKET_DIR" -p "$PORT" -v ON_ERROR_STOP=1 -qtAc "$1"; }
if [ -z "$(as_postgres "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" ]; then
    as_postgres "CREATE ROLE \"$ROLE\" LOGIN CREATEDB" >&2
fi
# a test's DROP DATABASE ... WITH (FORCE) must end every session on that database,
# autovacuum's worker included, which runs as no role: only pg_signal_backend may end it
as_postgres "GRANT pg_signal_backend TO \"$ROLE\"" >&2
if [ -z "$(as_postgres "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    as_postgres "CREATE DATABASE $DB OWNER \"$ROLE\"" >&2
fi
echo "postgresql:///$DB?host=$SOCKET_DIR&port=$PORT"
