#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the tests and print its URL.
# Usage: eval "$(bash .ci/postgres.sh)"   (exports OPTUNA_PANDALM_TEST_POSTGRES_URL)
set -euo pipefail
port="${PGPORT_TEST:-54329}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
data=$(mktemp -d /tmp/optuna-pandalm-pg.XXXXXX)
chown postgres "$data" 2>/dev/null || true
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
as_pg "'$bin/initdb' -D '$data' -U postgres --auth=trust -E UTF8 >/dev/null"
as_pg "'$bin/pg_ctl' -D '$data' -o \"-c listen_addresses=127.0.0.1 -p $port -k '$data' -c max_connections=200 -c fsync=off\" -l '$data/log' -w start >/dev/null"
echo "export OPTUNA_PANDALM_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "export OPTUNA_PANDALM_TEST_POSTGRES_DATA=$data"
echo "export OPTUNA_PANDALM_TEST_POSTGRES_BIN=$bin"
