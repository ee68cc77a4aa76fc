# Warren: one image with every binary; docker-compose.yml picks the one each service runs.
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts below. They are
# the dependency cache: the cargo registry and target dir survive between builds, so a
# source change recompiles only the workspace crates, not every dependency. No syntax
# directive on purpose: it would pull a frontend image, and the builtin one supports mounts.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The target dir is a cache mount, so the binaries are copied out within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin warren-submitter \
        --bin warren-scheduler \
        --bin warren-worker \
        --bin warren-dashboard \
        --bin warren \
    && mkdir -p /out \
    && cp target/release/warren-submitter target/release/warren-scheduler \
          target/release/warren-worker target/release/warren-dashboard target/release/warren /out/

FROM debian:bookworm-slim AS runtime
# curl for the compose healthchecks. (This build speaks plain amqp:// and redis:// only: TLS
# is not compiled in.)
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
# Jobs run as this user too: a `command` job gets no more rights than the worker has.
RUN groupadd --system --gid 10001 warren \
    && useradd --system --uid 10001 --gid warren --create-home --home-dir /home/warren \
        --shell /usr/sbin/nologin warren
COPY --from=builder /out/warren-submitter /out/warren-scheduler /out/warren-worker \
    /out/warren-dashboard /out/warren \
    /usr/local/bin/
USER 10001:10001
WORKDIR /home/warren
EXPOSE 8080 8081
# Compose sets the command of each service; alone, the image shows what it contains.
CMD ["warren", "--help"]
