# Warren: one build, one small image per service (targets submitter, scheduler, worker,
# dashboard, and cli for the `warren` command line). docker-compose.yml builds each service
# from its target, so a change to one binary recreates only the containers that run it.
#
# Needs BuildKit for the cache mounts below: the default builder since Docker 23; with older
# engines set DOCKER_BUILDKIT=1, and for docker-compose 1.29 also COMPOSE_DOCKER_CLI_BUILD=1
# (without it the build fails with "the --mount option requires BuildKit"). The mounts are
# the dependency cache: the cargo registry and target dir survive between builds, so a
# source change recompiles only the workspace crates, not every dependency. No syntax
# directive on purpose: it would pull a frontend image, and the builtin one supports mounts.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The target dir is a cache mount, so the binaries are copied out within the same step.
# Stripped: symbols are most of an unstripped binary, and backtraces keep function names.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked \
        --bin warren-submitter \
        --bin warren-scheduler \
        --bin warren-worker \
        --bin warren-dashboard \
        --bin warren \
    && mkdir -p /out \
    && cp target/release/warren-submitter target/release/warren-scheduler \
          target/release/warren-worker target/release/warren-dashboard target/release/warren /out/

FROM debian:bookworm-slim AS runtime-base
# curl for the HTTP healthchecks. (This build speaks plain amqp:// and redis:// only: TLS
# is not compiled in.)
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
# Jobs run as this user too: a `command` job gets no more rights than the worker has.
RUN groupadd --system --gid 10001 warren \
    && useradd --system --uid 10001 --gid warren --create-home --home-dir /home/warren \
        --shell /usr/sbin/nologin warren
USER 10001:10001
WORKDIR /home/warren

# Each target copies only its own binary: BuildKit keys the copy on the file's content, so an
# unchanged binary gives the same image and compose leaves its containers alone.
FROM runtime-base AS submitter
COPY --from=builder /out/warren-submitter /usr/local/bin/
EXPOSE 8080
CMD ["warren-submitter"]

FROM runtime-base AS scheduler
COPY --from=builder /out/warren-scheduler /usr/local/bin/
CMD ["warren-scheduler"]

FROM runtime-base AS worker
COPY --from=builder /out/warren-worker /usr/local/bin/
CMD ["warren-worker"]

FROM runtime-base AS dashboard
COPY --from=builder /out/warren-dashboard /usr/local/bin/
EXPOSE 8081
CMD ["warren-dashboard"]

# The command line, for `docker compose run --rm cli ...` (no service runs it).
FROM runtime-base AS cli
COPY --from=builder /out/warren /usr/local/bin/
ENTRYPOINT ["warren"]
CMD ["--help"]
