#!/usr/bin/env bash
# Builds both container images from docker/*.Dockerfile with podman and runs them:
# photo-operator's --help, then the pod the operator renders run for real
# (scripts/pod-check.sh): `render` of tests/pod/site.yaml in the operator image goes through
# `podman kube play` (Deployment, ConfigMap, claim, Secrets) with the photo-server image and an
# external database (a throwaway PostgreSQL), through /healthz, /readyz, a login, an upload, a
# rendition and SIGTERM, with the Deployment's user 65532, read-only root filesystem and
# volumes checked in podman inspect, /proc and the volumes. What kube play cannot express of the
# rendered objects is printed ("kube play: ...") and handled there.
#
#   scripts/images.sh            the test command's form (scripts/test-all.sh): the dev
#                                profile, built into the test command's own target directory
#                                and cargo registry, mounted at the same paths, so that cargo
#                                finds every dependency compiled and only relinks
#   scripts/images.sh --release  what users get: the Dockerfiles' release builds with their
#                                cache mounts (about 25 minutes on 2 cores); prints the sizes
#
# No registry is reachable here, so the two images the Dockerfiles pull are replaced, through
# their RUST_IMAGE and RUNTIME_IMAGE build arguments and nothing else, by stand-ins made once
# from Debian 12 packages: rust:1.95.0-slim-bookworm by Debian's minbase with gcc and
# libc6-dev (as the official image) plus this machine's Rust toolchain; distroless
# cc-debian12:nonroot by the Debian packages distroless is made of and its nonroot user.
#
# Runs podman as root (through sudo if needed), with runc and cgroupfs (crun refuses a hybrid
# cgroup layout) and explicit limits (podman's defaults exceed what such machines allow).
# Installs podman, runc, catatonit, mmdebstrap, curl, python3-yaml and PostgreSQL from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=dev
case "${1:-}" in
  "") ;;
  --release) PROFILE=release ;;
  *) echo "usage: $0 [--release]"; exit 2 ;;
esac

TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
if [ "$(id -u)" != 0 ]; then  # podman and mmdebstrap as root; keep this user's toolchain and dirs
  exec sudo env CARGO_TARGET_DIR="$TARGET_DIR" CARGO_HOME="$CARGO_HOME" CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-}" \
    RUST_SYSROOT="$(rustc --print sysroot)" "$0" "$@"
fi
RUST_SYSROOT=${RUST_SYSROOT:-$(rustc --print sysroot)}
RUST_VERSION=$("$RUST_SYSROOT/bin/rustc" --version | cut -d' ' -f2)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

# The tag names the recipe (with nasm): a stand-in made by an older recipe is not reused.
RUST_STANDIN=localhost/photostack-standin/rust:$RUST_VERSION-slim-bookworm-nasm
RUNTIME_STANDIN=localhost/photostack-standin/distroless-cc-debian12:nonroot
if [ "$PROFILE" = release ]; then TAG=$VERSION; else TAG=dev; fi
SERVER_IMAGE=ghcr.io/photostack/photo-server:$TAG
OPERATOR_IMAGE=ghcr.io/photostack/photo-operator:$TAG

step() { printf '\n== %s ==\n' "$*"; }
apt_updated=
apt_update() { [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }; }
apt_install() { apt_update; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
pm() { "${PODMAN[@]}" "$@"; }
LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

WORK=$(mktemp -d)
cleanup() {
  rm -rf "$WORK"
  # files the build wrote as root into a sudo user's target directory go back to that user
  if [ -n "${SUDO_UID:-}" ]; then chown -R --from=0:0 "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$TARGET_DIR"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
step "tools"
command -v podman >/dev/null || { echo "installing podman"; apt_install podman; }
command -v runc >/dev/null || apt_install runc
command -v mmdebstrap >/dev/null || apt_install mmdebstrap
command -v curl >/dev/null || apt_install curl
command -v file >/dev/null || apt_install file
command -v catatonit >/dev/null || apt_install catatonit  # the pause image kube play makes
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
podman --version

# ---------------------------------------------------------------------------------------
step "stand-in base images (made once per machine)"
# rust:1.95.0-slim-bookworm: debian:bookworm-slim + ca-certificates gcc libc6-dev + a Rust
# toolchain in /usr/local (rustc, cargo, the standard library; rustup itself is left out),
# plus the nasm the Dockerfile would install (the build runs without a network).
if ! pm image exists "$RUST_STANDIN"; then
  echo "making $RUST_STANDIN (mmdebstrap + $RUST_SYSROOT)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev,nasm \
    --customize-hook="copy-in $RUST_SYSROOT/bin $RUST_SYSROOT/lib /usr/local" \
    bookworm "$WORK/rust.tar"
  pm import --quiet --change 'ENV CARGO_HOME=/usr/local/cargo' "$WORK/rust.tar" "$RUST_STANDIN" >/dev/null
  rm "$WORK/rust.tar"
fi
# distroless cc-debian12:nonroot: the same Debian packages, unpacked (no package manager, no
# shell), the CA bundle update-ca-certificates would make, the users root, nobody and
# nonroot (65532). glibc's iconv modules (gconv, 8 MB) are left out: no Rust binary loads them.
if ! pm image exists "$RUNTIME_STANDIN"; then
  echo "making $RUNTIME_STANDIN (Debian packages)"
  grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release \
    || { echo "the runtime stand-in is made from this machine's apt sources: needs Debian 12"; exit 1; }
  mkdir -p "$WORK/runtime/root"
  apt_update
  (cd "$WORK/runtime" && apt-get download -q -o APT::Sandbox::User=root \
    base-files netbase tzdata libc6 libgcc-s1 libgomp1 libstdc++6 libssl3 ca-certificates >/dev/null)
  root=$WORK/runtime/root
  for deb in "$WORK"/runtime/*.deb; do dpkg-deb -x "$deb" "$root"; done
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' root:x:0:0:root:/root:/sbin/nologin nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin \
    nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin >"$root/etc/passwd"
  printf '%s\n' root:x:0: nobody:x:65534: nonroot:x:65532: >"$root/etc/group"
  install -d -m 0700 -o 65532 -g 65532 "$root/home/nonroot"
  rm -rf "$root/usr/lib/x86_64-linux-gnu/gconv"
  tar -C "$root" --numeric-owner -cf "$WORK/runtime.tar" .
  pm import --quiet --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    "$WORK/runtime.tar" "$RUNTIME_STANDIN" >/dev/null
fi
echo "$RUST_STANDIN: $(pm image inspect --format '{{.Size}}' "$RUST_STANDIN" | numfmt --to=si)B"
echo "$RUNTIME_STANDIN: $(pm image inspect --format '{{.Size}}' "$RUNTIME_STANDIN" | numfmt --to=si)B"

# ---------------------------------------------------------------------------------------
step "build (profile $PROFILE)"
if [ "$PROFILE" = dev ]; then
  # The build the test command has just made, seen at the same paths: the target directory,
  # and the registry under a CARGO_HOME where this machine's is (cargo's fingerprint of a
  # dependency holds the path of its sources). No network: nothing is to be downloaded.
  builder=localhost/photostack-standin/rust:$RUST_VERSION-slim-bookworm-dev
  mkdir "$WORK/empty"
  # CARGO_INCREMENTAL too (CI turns it off): it is part of what cargo compares.
  { printf 'FROM %s\nENV CARGO_HOME=%s\n' "$RUST_STANDIN" "$CARGO_HOME"
    [ -z "${CARGO_INCREMENTAL:-}" ] || printf 'ENV CARGO_INCREMENTAL=%s\n' "$CARGO_INCREMENTAL"
  } | pm build --pull=never --quiet -t "$builder" -f - "$WORK/empty" >/dev/null
  BUILD_ARGS=(--network none --build-arg CARGO_PROFILE=dev --build-arg CARGO_PACKAGES=--workspace
    --build-arg "CARGO_TARGET_DIR=$TARGET_DIR" -v "$TARGET_DIR:$TARGET_DIR"
    -v "$CARGO_HOME/registry:$CARGO_HOME/registry")
else
  # crates.io through this machine's CA certificates (a proxy may intercept TLS here)
  builder=$RUST_STANDIN
  BUILD_ARGS=(--network host -v /etc/ssl/certs:/etc/ssl/certs:ro)
fi
build() { # build NAME IMAGE: docker/NAME.Dockerfile -> IMAGE
  local start=$SECONDS
  pm rmi -f "$2" >/dev/null 2>&1 || true  # no dangling copy of the last build
  pm build --pull=never --layers=false "${LIMITS[@]}" "${BUILD_ARGS[@]}" \
    --build-arg "RUST_IMAGE=$builder" --build-arg "RUNTIME_IMAGE=$RUNTIME_STANDIN" \
    -f "docker/$1.Dockerfile" -t "$2" . >"$WORK/build-$1.log" 2>&1 \
    || { tail -40 "$WORK/build-$1.log"; echo "FAIL: podman build -f docker/$1.Dockerfile"; return 1; }
  echo "$2: $(grep -c '^ *Compiling' "$WORK/build-$1.log") crates compiled," \
    "$(pm image inspect --format '{{.Size}}' "$2" | numfmt --to=si)B, built in $((SECONDS - start)) s"
}
build photo-server "$SERVER_IMAGE"
build photo-operator "$OPERATOR_IMAGE"

# ---------------------------------------------------------------------------------------
step "photo-operator image: --help"
# As the chart's Deployment runs it: non-root, read-only, no capabilities; no network needed.
pm run --rm --network none "${LIMITS[@]}" --read-only --read-only-tmpfs=false --cap-drop ALL \
  --security-opt no-new-privileges "$OPERATOR_IMAGE" --help >"$WORK/help.txt"
grep -q 'render' "$WORK/help.txt" || { cat "$WORK/help.txt"; echo "FAIL: photo-operator --help lists no render"; exit 1; }
echo "ok: photo-operator --help"

# ---------------------------------------------------------------------------------------
step "photo-server image: the pod the operator renders, through podman kube play"
# The operator image renders tests/pod/site.yaml; its Deployment, ConfigMap, claim and
# Secrets run with the photo-server image and a throwaway PostgreSQL (scripts/pod-check.sh).
# Bounded: it cleans up after itself when the timeout stops it.
timeout --kill-after=30 300 bash scripts/pod-check.sh "$SERVER_IMAGE" "$OPERATOR_IMAGE" \
  || { echo "FAIL: scripts/pod-check.sh $SERVER_IMAGE $OPERATOR_IMAGE"; exit 1; }

step "images"
pm images --filter reference='ghcr.io/photostack/*' --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ":$TAG "
echo "images built and checked (profile $PROFILE)"
