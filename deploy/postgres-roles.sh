#!/bin/sh
# PostgreSQL's first start, on an empty data directory: one role per user of the server,
# none a superuser. Temporal's role may create its databases (temporal-schema.sh does).
set -eu
: "${PARTNERS_DB_PASSWORD:?}" "${TEMPORAL_DB_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v partners_password="$PARTNERS_DB_PASSWORD" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE partners LOGIN PASSWORD :'partners_password';
CREATE DATABASE partners OWNER partners;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
SQL
