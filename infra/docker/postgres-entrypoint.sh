#!/bin/sh
# postgres-entrypoint: start PostgreSQL on $PGDATA the way the official image does. On an empty data
# directory: initdb with superuser $POSTGRES_USER (password $POSTGRES_PASSWORD, scram-sha-256 over TCP,
# trust on the container's own Unix socket), create $POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sql
# once. Then exec postgres on all addresses of the container and $PGPORT (default 5432); arguments are
# passed to postgres, as the official image does with `-c name=value` (a later -c wins).
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
USER_NAME=${POSTGRES_USER:-postgres}
DB_NAME=${POSTGRES_DB:-$USER_NAME}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$USER_NAME" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  if [ "$DB_NAME" != postgres ]; then  # initdb made `postgres` only
    createdb -U "$USER_NAME" "$DB_NAME"
  fi
  for script in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$script" ] || continue
    psql -v ON_ERROR_STOP=1 -U "$USER_NAME" -d "$DB_NAME" -f "$script"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec postgres -D "$PGDATA" -c "listen_addresses=*" "$@"
