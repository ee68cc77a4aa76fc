#!/usr/bin/env bash
# A Docker daemon of its own for the compose test: its data, state, socket and pidfile all
# live under DIR, its containerd namespace and its address pools are its own, so it touches no
# other daemon on the machine. Usage:
#   private-dockerd.sh start DIR   prints the DOCKER_HOST to use once the daemon answers
#   private-dockerd.sh stop DIR    stops it (by its pidfile) and removes DIR
set -euo pipefail

cmd=${1:?usage: private-dockerd.sh start|stop DIR}
dir=${2:?usage: private-dockerd.sh start|stop DIR}
dockerd=${DOCKERD:-/usr/sbin/dockerd}
docker=${DOCKER:-/usr/bin/docker}

case "$cmd" in
start)
    mkdir -p "$dir"/data "$dir"/exec
    host="unix://$dir/docker.sock"
    # Its own bridge instead of docker0, and its own addresses (private ranges unlikely to
    # clash with a host network), so neither a system daemon nor another run of this script
    # shares them: instance N takes bridge warrenctN, 10.213.N.1/24 and 10.214.8N.0/21.
    n=0
    until ip link add name "warrenct$n" type bridge 2>/dev/null; do
        n=$((n + 1))
        ((n < 32)) || { echo "private-dockerd: no free warrenct bridge (0-31)" >&2; exit 1; }
    done
    bridge=warrenct$n
    echo "$bridge" >"$dir/bridge"
    ip addr add "10.213.$n.1/24" dev "$bridge"
    ip link set "$bridge" up
    pool="10.214.$((n * 8)).0/21"
    # setsid: the daemon outlives the shell that started it, not the test (stop kills it).
    setsid "$dockerd" \
        --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
        -H "$host" --bridge "$bridge" --default-address-pool "base=$pool,size=24" \
        --containerd-namespace warren-ct --containerd-plugins-namespace warren-ct-plugins \
        --storage-driver overlay2 \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        if DOCKER_HOST=$host "$docker" version >/dev/null 2>&1; then
            echo "$host"
            exit 0
        fi
        sleep 0.5
    done
    tail -n 30 "$dir/dockerd.log" >&2 || true
    echo "private-dockerd: the daemon did not answer on $host within 60 s (log: $dir/dockerd.log)" >&2
    exit 1
    ;;
stop)
    if [[ -f $dir/docker.pid ]]; then
        pid=$(cat "$dir/docker.pid")
        host="unix://$dir/docker.sock"
        # Containers first, so none is left running under a daemon that is gone.
        ids=$(DOCKER_HOST=$host timeout 60 "$docker" ps -aq 2>/dev/null || true)
        if [[ -n $ids ]]; then
            # shellcheck disable=SC2086
            DOCKER_HOST=$host timeout 120 "$docker" rm -f $ids >/dev/null 2>&1 || true
        fi
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [[ -f $dir/bridge ]]; then
        ip link delete "$(cat "$dir/bridge")" 2>/dev/null || true
    fi
    # Mounts the daemon left behind (overlay layers, netns) would keep rm from finishing.
    if [[ -d $dir ]]; then
        { grep -F " $dir/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
        rm -rf "$dir"
    fi
    ;;
*)
    echo "usage: private-dockerd.sh start|stop DIR" >&2
    exit 2
    ;;
esac
