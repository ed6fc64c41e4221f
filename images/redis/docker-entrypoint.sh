#!/bin/sh
# Entrypoint of the orderops redis stand-in: the documented behaviour of the official image's.
set -e

# first arg is `-f` or `--some-option`, or a config file: run redis-server with them
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ]; then
    # Like the official image: protected mode off unless configured. The container network is the
    # boundary, and the orderops stack sets --requirepass.
    protected=1
    case " $* " in *" --protected-mode "*) protected= ;; esac
    if [ -n "${2:-}" ] && [ -f "$2" ] && grep -q '^protected-mode' "$2"; then protected= ; fi
    if [ -n "$protected" ]; then
        set -- "$@" --protected-mode no
    fi
    if [ "$(id -u)" = '0' ]; then
        find . \! -user redis -exec chown redis '{}' +
        exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
    fi
fi

if [ "$(umask)" = '0022' ]; then
    umask 0077
fi
exec "$@"
