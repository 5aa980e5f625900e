# syntax=docker/dockerfile:1.7
# photo-server image. Build from the repository root:
#   docker build -f docker/photo-server.Dockerfile -t ghcr.io/photostack/photo-server:0.1.0 .
#
# Reproducible: base images pinned by tag (CI may override RUST_IMAGE / RUNTIME_IMAGE with
# an @sha256 digest), dependencies pinned by Cargo.lock (--locked). Small: a static-ish
# release binary on distroless/cc (glibc, libgcc, CA certificates; no shell, no package
# manager). JPEG/PNG/WebP decoding, SQLite and TLS (rustls) are compiled in; the static
# assets and SQL migrations are embedded in the binary.
#
# No HEALTHCHECK: the image has no shell or curl to run one, and Kubernetes ignores
# HEALTHCHECK anyway. The operator's Deployment probes /healthz (liveness) and /readyz
# (readiness) on port 8080; /metrics is scraped by Prometheus.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# Users get a release build of this image's package. The test command (scripts/images.sh)
# passes CARGO_PROFILE=dev, CARGO_PACKAGES=--workspace and its own target directory, mounted
# at the same path: the very build it has just made, so cargo finds nothing to compile.
ARG CARGO_PROFILE=release
ARG CARGO_PACKAGES=--package=photo-server
ARG CARGO_TARGET_DIR=/src/target
WORKDIR /src
# nasm: libjpeg-turbo's SIMD code (the mozjpeg crate builds it from source; without nasm it
# builds, but decodes JPEGs about twice as slowly). Pinned to bookworm's version.
RUN command -v nasm >/dev/null || { apt-get update \
    && apt-get install -y --no-install-recommends nasm=2.16.01-1 && rm -rf /var/lib/apt/lists/*; }
# The whole workspace (cargo loads every member); .dockerignore keeps target directories,
# data, .git and what is not Rust out of the context.
COPY . ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile "$CARGO_PROFILE" "$CARGO_PACKAGES" --bins \
    && dir=$([ "$CARGO_PROFILE" = dev ] && echo debug || echo "$CARGO_PROFILE") \
    && install -D -m 0755 "$CARGO_TARGET_DIR/$dir/photo-server" /out/photo-server \
    && install -d -o 65532 -g 65532 /out/var/lib/photo /out/var/cache/photo

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="photo-server" \
      org.opencontainers.image.description="PhotoStack image server" \
      org.opencontainers.image.source="https://github.com/photostack/photostack" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/photo-server /usr/local/bin/photo-server
# Writable data and cache directories owned by the nonroot user (65532); in Kubernetes they
# are volumes (originals claim, cache emptyDir), locally they keep `docker run` working.
COPY --from=build --chown=65532:65532 /out/var/lib/photo /var/lib/photo
COPY --from=build --chown=65532:65532 /out/var/cache/photo /var/cache/photo
# Metrics and probes on a port of their own: never on the public one.
ENV PHOTO_LISTEN=0.0.0.0:8080 \
    PHOTO_METRICS_LISTEN=0.0.0.0:9090 \
    PHOTO_DATA_DIR=/var/lib/photo \
    PHOTO_CACHE_DIR=/var/cache/photo
USER 65532:65532
EXPOSE 8080 9090
VOLUME ["/var/lib/photo"]
ENTRYPOINT ["/usr/local/bin/photo-server"]
