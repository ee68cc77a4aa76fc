#!/bin/sh
# Like the official image's entrypoint: the broker runs as rabbitmq, owning its data.
set -e
if [ "$(id -u)" = "0" ]; then
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$@"
fi
exec "$@"
