#!/bin/sh
# Temporal's schema on PostgreSQL, set up by temporal-sql-tool as Temporal's own guides do
# (not the auto-setup image): each database created on the first run, then every
# versioned schema update applied, which does nothing once it is up to date. Run before
# the server starts, and again before a newer server image starts.
set -eu
: "${TEMPORAL_DB_PASSWORD:?}"
SCHEMA=/etc/temporal/schema/postgresql/v12

sql() {
  temporal-sql-tool --plugin postgres12 --ep postgres --port 5432 \
    --user temporal --password "$TEMPORAL_DB_PASSWORD" --db "$@"
}

for database in temporal temporal_visibility; do
  case "$database" in
    temporal) versioned="$SCHEMA/temporal/versioned" ;;
    *) versioned="$SCHEMA/visibility/versioned" ;;
  esac
  sql "$database" create-database || echo "database $database: already there"
  sql "$database" setup-schema -v 0.0
  sql "$database" update-schema -d "$versioned"
done
