#!/bin/sh
# Like the official image's entrypoint: `redis-server ARGS` runs as redis, owning /data, and
# listening to other containers (the official build turns protected mode off by default).
set -e
if [ "$1" = "redis-server" ]; then
    shift
    conf=""
    case "$1" in
    "" | -*) ;;
    *)
        conf=$1
        shift
        ;;
    esac
    if [ "$(id -u)" = "0" ]; then
        chown -R redis:redis /data
        # shellcheck disable=SC2086
        exec setpriv --reuid=redis --regid=redis --init-groups \
            redis-server $conf --protected-mode no --bind "* -::*" "$@"
    fi
    # shellcheck disable=SC2086
    exec redis-server $conf --protected-mode no --bind "* -::*" "$@"
fi
exec "$@"
