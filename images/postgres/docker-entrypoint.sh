#!/usr/bin/env bash
# Entrypoint of the orderops postgres stand-in: the documented behaviour of the official image's
# docker-entrypoint.sh, written for Debian's postgresql-15.
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*"; }
die() { log "error: $*" >&2; exit 1; }

# file_env VAR [default]: VAR or VAR_FILE (contents of that file), not both
file_env() {
    local var="$1" fileVar="${1}_FILE" def="${2:-}"
    if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
        die "both $var and $fileVar are set (but are exclusive)"
    fi
    local val="$def"
    if [ "${!var:-}" ]; then
        val="${!var}"
    elif [ "${!fileVar:-}" ]; then
        val="$(< "${!fileVar}")"
    fi
    export "$var"="$val"
    unset "$fileVar"
}

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

# `postgres --version`, `--help`, `-C name`, ... only print: no initialisation
want_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?'|--help|--describe-config|-V|--version|-C) return 0 ;;
        esac
    done
    return 1
}

if [ "$1" != 'postgres' ] || want_help "$@"; then
    exec "$@"
fi

# As root: own the data dir and socket dir, then re-run this script as postgres.
if [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 00700 "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

process_init_file() {
    local f="$1"
    case "$f" in
        *.sh)
            if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
        *.sql)    log "running $f"; psql_init -f "$f"; echo ;;
        *.sql.gz) log "running $f"; gunzip -c "$f" | psql_init; echo ;;
        *.sql.xz) log "running $f"; xzcat "$f" | psql_init; echo ;;
        *)        log "ignoring $f" ;;
    esac
}

psql_init() {
    PGHOST= PGHOSTADDR= psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc \
        --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" "$@"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
        die "Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.
       You may also use POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password."
    fi
    log "initialising database in $PGDATA"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" $POSTGRES_INITDB_ARGS -D "$PGDATA"
    rm -f "$pwfile"
    # network clients: the chosen method (default scram-sha-256), as the official image
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"

    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        PGHOST= PGHOSTADDR= psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc \
            --username "$POSTGRES_USER" --dbname postgres \
            --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
    fi
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
        process_init_file "$f"
    done
    shopt -u nullglob
    pg_ctl -D "$PGDATA" -m fast -w stop
    log "PostgreSQL init process complete; ready for start up."
else
    log "PostgreSQL database directory appears to contain a database; skipping initialisation"
fi

exec "$@"
