# syntax=docker/dockerfile:1
#
# Tollgate's container image: `tollgate` built with the locked dependencies,
# run as a non-root user on a minimal base (glibc, libgcc, CA certificates
# and nothing else: no shell, no package manager).
#
#   docker build -t tollgate:0.1.0 .
#
# The Helm chart (helm/tollgate) relies on what this file sets, and
# gateway/tests/helm/test_image.py checks that the two agree: the binary's
# path, the user, the port, the entrypoint and command, the config path and
# the data directory.

ARG RUST_VERSION=1.95

# ---- build ---------------------------------------------------------------
# Debian 12 (bookworm) like the runtime image, so the binary links against
# the same glibc.
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# The sources are bind-mounted (no layer of their own) and cargo's registry
# and target directory live in BuildKit cache mounts: a rebuild after a
# source change recompiles only the workspace's own crates, not the
# dependencies, and the lockfile alone decides what is fetched.
RUN --mount=type=bind,source=Cargo.toml,target=Cargo.toml \
    --mount=type=bind,source=Cargo.lock,target=Cargo.lock \
    --mount=type=bind,source=gateway,target=gateway \
    --mount=type=bind,source=router,target=router \
    --mount=type=bind,source=billing,target=billing \
    --mount=type=bind,source=loadtest,target=loadtest \
    --mount=type=bind,source=migrations,target=migrations \
    --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git/db,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p tollgate --bin tollgate \
    && install -D -m 0755 target/release/tollgate /out/tollgate

# The data directory (spool, and the SQLite file when no Postgres is
# configured), owned by the runtime user; the runtime image has no shell to
# make it with.
RUN install -d -m 0750 /out/var/lib/tollgate

# ---- runtime -------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Tollgate: a token-metering LLM gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /out/tollgate /usr/local/bin/tollgate
COPY --from=build --chown=65532:65532 /out/var/lib/tollgate /var/lib/tollgate

# The config file: mounted here (the chart mounts its ConfigMap), or another
# path given with TOLLGATE_CONFIG. Relative paths in it (spool_dir,
# sqlite://tollgate.db) resolve against the working directory, the data
# directory.
ENV TOLLGATE_CONFIG=/etc/tollgate/tollgate.toml
WORKDIR /var/lib/tollgate
VOLUME ["/var/lib/tollgate"]

# The listen address comes from the config; the chart renders
# listen = "${TOLLGATE_LISTEN:-0.0.0.0:8080}".
EXPOSE 8080

# distroless's "nonroot", by number, so Kubernetes' runAsNonRoot can check it.
USER 65532:65532

ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve"]
