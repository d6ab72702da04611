# syntax=docker/dockerfile:1
# trove-rs images. UNTESTED: Docker was not available where this file was written; it follows
# the code's requirements but has never been built. Fix and remove this note once it has.
#
# Targets:
#   runtime     trove-api, trove-taskmanager, trove-manage (debian:bookworm-slim)
#   guestagent  trove-guestagent plus PostgreSQL 15 server binaries and zstd (debian:bookworm)
#
#   docker build --target runtime    -t trove-rs .
#   docker build --target guestagent -t trove-rs-guestagent .
#
# The build context is the workspace root; keep target/ out of it (a .dockerignore with
# "target" saves copying gigabytes into the builder).

# ---- build -------------------------------------------------------------------------------
# Cargo.toml declares rust-version 1.88 (edition 2024); the workspace is developed with 1.95,
# so build with that rather than risk a dependency needing a newer compiler than 1.88.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY tests tests
# sqlx::migrate! embeds migrations/ into the binaries at compile time.
COPY migrations migrations
RUN cargo build --release --locked --workspace --bins \
 && mkdir -p /out \
 && cp target/release/trove-api target/release/trove-taskmanager \
       target/release/trove-manage target/release/trove-guestagent /out/

# ---- api, taskmanager, manage ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/trove /var/lib/trove/store
COPY --from=build /out/trove-api /out/trove-taskmanager /out/trove-manage /usr/local/bin/
COPY etc/ /etc/trove/examples/
EXPOSE 8779
# Choose the daemon with the compose `command:`; the API is the default.
CMD ["trove-api"]

# ---- guest agent ------------------------------------------------------------------------------
# Needs the PostgreSQL 15 server binaries (initdb, pg_ctl, postgres, pg_basebackup) under
# /usr/lib/postgresql/15/bin, zstd, tar and runuser, and the OS user `postgres`, which the
# package creates. It runs as root and starts each managed server as `postgres` via runuser.
FROM debian:bookworm AS guestagent
# Do not let the package create and start its own "main" cluster: the agent runs its own.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 zstd tar ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/trove /var/lib/trove/instances
COPY --from=build /out/trove-guestagent /usr/local/bin/
COPY etc/ /etc/trove/examples/
USER root
CMD ["trove-guestagent"]
