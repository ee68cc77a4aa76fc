#!/usr/bin/env bash
# Builds local stand-ins for the images Warren's Dockerfile and docker-compose.yml name, for a
# machine that cannot pull from a registry (see README.md). A machine that can pull never
# needs this. Builds into the daemon DOCKER_HOST names, and skips an image that is already
# there. Each built image is also saved under WARREN_STANDIN_CACHE (default
# /var/cache/warren-compose-test), keyed by a hash of what it was built from, and loaded from
# there next time instead of being built again. Needs root (debootstrap), debootstrap, and
# /usr/bin/docker. Usage: standins.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
docker=${DOCKER:-/usr/bin/docker}
cache=${WARREN_STANDIN_CACHE:-/var/cache/warren-compose-test}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export DOCKER_BUILDKIT=1

# The tags, read from the files that use them so they cannot drift apart.
base_tag=$(awk '$1 == "FROM" && $3 == "AS" && $4 == "runtime-base" {print $2}' "$repo/Dockerfile")
rust_tag=$(awk '$1 == "FROM" && $3 == "AS" && $4 == "builder" {print $2}' "$repo/Dockerfile")
redis_tag=$(awk '$1 == "image:" && $2 ~ /^redis:/ {print $2; exit}' "$repo/docker-compose.yml")
rabbitmq_tag=$(awk '$1 == "image:" && $2 ~ /^rabbitmq:/ {print $2; exit}' "$repo/docker-compose.yml")
for t in base_tag rust_tag redis_tag rabbitmq_tag; do
    [[ -n ${!t} ]] || { echo "standins: could not find the $t in Dockerfile/docker-compose.yml" >&2; exit 1; }
done

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { printf 'standins: %s\n' "$*" >&2; }
have() { "$docker" image inspect "$1" >/dev/null 2>&1; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# load_or_build TAG KEY BUILD_FUNCTION: the image from the daemon, the cache, or a build.
load_or_build() {
    local tag=$1 key=$2 build=$3 file
    file="$cache/$(tr ':/' '__' <<<"$tag")-$key.tar"
    if have "$tag"; then
        log "$tag is already in the daemon"
        return
    fi
    if [[ -f $file ]]; then
        log "$tag: loading $(basename "$file") from $cache"
        "$docker" load -i "$file" >/dev/null
        return
    fi
    local started=$SECONDS
    log "$tag: building"
    "$build" "$tag"
    log "$tag: built in $((SECONDS - started)) s; saving to $file"
    rm -f "$cache/$(tr ':/' '__' <<<"$tag")"-*.tar
    "$docker" save -o "$file.part" "$tag"
    mv "$file.part" "$file"
}

build_base() {
    local root="$work/rootfs"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        return 1
    }
    # As in Debian's official images: no daemon starts while packages install, and no stale
    # package lists ship.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
        "$mirror" "$mirror" >"$root/etc/apt/sources.list"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/tmp/*
    mkdir -p "$root/var/lib/apt/lists/partial"
    tar -C "$root" --numeric-owner -c . | "$docker" import --change 'CMD ["bash"]' - "$1" >/dev/null
}

build_rust() {
    local ctx="$work/rust" toolchain
    toolchain=$(rustc --print sysroot)
    mkdir -p "$ctx/toolchain"
    cp "$here/rust/Dockerfile" "$ctx/"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
    # rustc, cargo and the standard library; not the documentation.
    cp -a "$toolchain/bin" "$toolchain/lib" "$toolchain/libexec" "$ctx/toolchain/" 2>/dev/null ||
        cp -a "$toolchain/bin" "$toolchain/lib" "$ctx/toolchain/"
    "$docker" build -q -t "$1" "$ctx" >/dev/null
}

build_redis() { "$docker" build -q -t "$1" "$here/redis" >/dev/null; }
build_rabbitmq() { "$docker" build -q -t "$1" "$here/rabbitmq" >/dev/null; }

base_key=$(hash_of "$here/standins.sh")
load_or_build "$base_tag" "$base_key" build_base
rust_key=$(hash_of <(echo "$base_key") "$here/rust/Dockerfile" <(rustc -vV) /etc/ssl/certs/ca-certificates.crt)
load_or_build "$rust_tag" "$rust_key" build_rust
load_or_build "$redis_tag" "$(hash_of <(echo "$base_key") "$here"/redis/*)" build_redis
load_or_build "$rabbitmq_tag" "$(hash_of <(echo "$base_key") "$here"/rabbitmq/*)" build_rabbitmq
