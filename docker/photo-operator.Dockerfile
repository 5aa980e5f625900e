# syntax=docker/dockerfile:1.7
# photo-operator image. Build from the repository root:
#   docker build -f docker/photo-operator.Dockerfile -t ghcr.io/photostack/photo-operator:0.1.0 .
#
# Reproducible: base images pinned by tag (CI may override RUST_IMAGE / RUNTIME_IMAGE with
# an @sha256 digest), dependencies pinned by Cargo.lock (--locked). Small: the release
# binary on distroless/cc, non-root (65532), no shell.
#
# No HEALTHCHECK: there is no shell to run one and Kubernetes ignores it; the chart's
# Deployment probes /healthz and /readyz on port 8080 (PHOTO_OPERATOR_METRICS_ADDR), which
# also serves /metrics.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# Users get a release build of this image's package. The test command (scripts/images.sh)
# passes CARGO_PROFILE=dev, CARGO_PACKAGES=--workspace and its own target directory, mounted
# at the same path: the very build it has just made, so cargo finds nothing to compile.
ARG CARGO_PROFILE=release
ARG CARGO_PACKAGES=--package=photo-operator
ARG CARGO_TARGET_DIR=/src/target
WORKDIR /src
# The whole workspace (cargo loads every member); .dockerignore keeps target directories,
# data, .git and what is not Rust out of the context.
COPY . ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile "$CARGO_PROFILE" "$CARGO_PACKAGES" --bins \
    && dir=$([ "$CARGO_PROFILE" = dev ] && echo debug || echo "$CARGO_PROFILE") \
    && install -D -m 0755 "$CARGO_TARGET_DIR/$dir/photo-operator" /out/photo-operator

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="photo-operator" \
      org.opencontainers.image.description="Kubernetes operator for PhotoSites" \
      org.opencontainers.image.source="https://github.com/photostack/photostack" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/photo-operator /usr/local/bin/photo-operator
ENV PHOTO_OPERATOR_METRICS_ADDR=0.0.0.0:8080 \
    PHOTO_OPERATOR_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
# On SIGTERM the operator finishes the reconciles under way and releases its Lease, so the
# standby takes over at once.
ENTRYPOINT ["/usr/local/bin/photo-operator"]
CMD ["run"]
