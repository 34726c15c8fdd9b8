#!/usr/bin/env bash
# Installs and starts PostgreSQL with a role and database for the store tests.
# Idempotent: a running cluster, an existing role or database are left as they are.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

apt_install postgresql
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  log "starting PostgreSQL $version"
  pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 50); do su postgres -c "pg_isready -q" && break; sleep 0.2; done
psql_as_postgres() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
[ "$(psql_as_postgres "SELECT 1 FROM pg_roles WHERE rolname='affinetes'")" = "1" ] ||
  psql_as_postgres "CREATE ROLE affinetes LOGIN PASSWORD 'affinetes'"
[ "$(psql_as_postgres "SELECT 1 FROM pg_database WHERE datname='affinetes_test'")" = "1" ] ||
  psql_as_postgres "CREATE DATABASE affinetes_test OWNER affinetes"
log "PostgreSQL ready: postgres://affinetes:affinetes@127.0.0.1:5432/affinetes_test"
