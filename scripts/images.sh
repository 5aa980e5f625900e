#!/usr/bin/env bash
# Builds both container images from docker/*.Dockerfile with podman and runs them:
# photo-server as the operator's Deployment runs it (user 65532, read-only root filesystem,
# the Deployment's writable mounts, no capabilities, no privilege escalation) through
# /healthz, /readyz, a login, an upload, a rendition and SIGTERM; photo-operator's --help and
# `render` of a sample.
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
# Installs podman, runc, mmdebstrap and curl from Debian.
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
SERVER=photostack-images-server  # the photo-server container under test

step() { printf '\n== %s ==\n' "$*"; }
apt_updated=
apt_update() { [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }; }
apt_install() { apt_update; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
pm() { "${PODMAN[@]}" "$@"; }
LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

WORK=$(mktemp -d)
cleanup() {
  pm rm -f "$SERVER" >/dev/null 2>&1 || true
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
step "photo-operator image: --help, render"
# As the chart's Deployment runs it: non-root, read-only, no capabilities; no network needed.
operator() {
  pm run --rm --network none "${LIMITS[@]}" --read-only --read-only-tmpfs=false --cap-drop ALL \
    --security-opt no-new-privileges -v "$PWD/manifests/samples:/samples:ro" "$OPERATOR_IMAGE" "$@"
}
operator --help >"$WORK/help.txt"
grep -q 'render' "$WORK/help.txt" || { cat "$WORK/help.txt"; echo "FAIL: photo-operator --help lists no render"; exit 1; }
echo "ok: photo-operator --help"
operator render -f /samples/demo.yaml >"$WORK/demo.yaml"
echo "ok: photo-operator render -f manifests/samples/demo.yaml:" \
  "$(grep '^kind:' "$WORK/demo.yaml" | awk '{print $2}' | tr '\n' ' ')"

# The photo-server container below copies what that Deployment sets; check it still does.
deployment_sets() {
  local want
  for want in 'runAsUser: 65532' 'runAsGroup: 65532' 'readOnlyRootFilesystem: true' \
    'allowPrivilegeEscalation: false' '- ALL' 'mountPath: /var/lib/photo' \
    'mountPath: /var/lib/photo/originals' 'mountPath: /var/cache/photo' 'mountPath: /tmp' \
    'PHOTO_LISTEN: 0.0.0.0:8080' 'PHOTO_METRICS_LISTEN: 0.0.0.0:9090' \
    'PHOTO_DATA_DIR: /var/lib/photo' 'PHOTO_ORIGINALS_DIR: /var/lib/photo/originals' \
    'PHOTO_CACHE_DIR: /var/cache/photo' 'name: PHOTO_ADMIN_PASSWORD' 'name: PHOTO_SESSION_KEY'; do
    grep -qF -- "$want" "$WORK/demo.yaml" || { echo "the rendered Deployment no longer has '$want': update scripts/images.sh"; return 1; }
  done
}
deployment_sets
echo "ok: the rendered Deployment's user, mounts and settings are the ones used below"

# ---------------------------------------------------------------------------------------
step "photo-server image: run as the operator's Deployment runs it"
# Volumes as the kubelet makes them with fsGroup 65532: root-owned, group 65532, setgid.
vols=$WORK/volumes
for v in data originals cache tmp; do install -d -m 2770 -g 65532 "$vols/$v"; done
PASSWORD=check-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SESSION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Its own network namespace (--network none) with the Deployment's ports; curl reaches them
# from inside that namespace (nsenter), so nothing on this machine's ports is in the way.
pm run -d --name "$SERVER" --network none "${LIMITS[@]}" \
  --user 65532:65532 --read-only --read-only-tmpfs=false --cap-drop ALL \
  --security-opt no-new-privileges \
  -v "$vols/data:/var/lib/photo" -v "$vols/originals:/var/lib/photo/originals" \
  -v "$vols/cache:/var/cache/photo" -v "$vols/tmp:/tmp" \
  -e PHOTO_LISTEN=0.0.0.0:8080 -e PHOTO_METRICS_LISTEN=0.0.0.0:9090 \
  -e PHOTO_DATA_DIR=/var/lib/photo -e PHOTO_ORIGINALS_DIR=/var/lib/photo/originals \
  -e PHOTO_CACHE_DIR=/var/cache/photo -e PHOTO_LOG_FORMAT=json \
  -e PHOTO_ADMIN_PASSWORD="$PASSWORD" -e PHOTO_SESSION_KEY="$SESSION_KEY" \
  "$SERVER_IMAGE" >/dev/null
pid=$(pm inspect --format '{{.State.Pid}}' "$SERVER")
pod_curl() { nsenter --net="/proc/$pid/ns/net" curl --max-time 10 "$@"; }
failed() { echo "FAIL: $*"; echo "--- photo-server logs:"; pm logs "$SERVER" 2>&1 | tail -30; exit 1; }

for _ in $(seq 100); do
  pod_curl -fs -o /dev/null http://127.0.0.1:9090/readyz && break
  [ "$(pm inspect --format '{{.State.Running}}' "$SERVER")" = true ] || failed "photo-server exited"
  sleep 0.2
done
health=$(pod_curl -fsS http://127.0.0.1:9090/healthz) || failed "/healthz on :9090"
echo "ok: /healthz on :9090: $health"
ready=$(pod_curl -fsS http://127.0.0.1:9090/readyz) || failed "/readyz on :9090 not ready: $ready"
for want in '"ready":true' '"originals":"ok"' '"cache":"ok"' '"database":"ok"'; do
  grep -qF "$want" <<<"$ready" || failed "/readyz: $ready (wanted $want)"
done
echo "ok: /readyz on :9090: $ready"
code=$(pod_curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/metrics)
[ "$code" = 404 ] || failed "/metrics on the public port answered $code, not 404"
metrics=$(pod_curl -fsS http://127.0.0.1:9090/metrics) || failed "/metrics on :9090"
grep -q '^photo_http_requests_total' <<<"$metrics" || failed "/metrics on :9090 has no photo_http_requests_total"
echo "ok: /metrics on :9090 only"

login=$(pod_curl -fsS -c "$WORK/jar" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" http://127.0.0.1:8080/rest/login) \
  || failed "POST /rest/login"
csrf=$(sed -n 's/.*"csrf":"\([^"]*\)".*/\1/p' <<<"$login")
[ -n "$csrf" ] || failed "no csrf in the login answer: $login"
echo "ok: POST /rest/login"
fixture=photo-server/tests/fixtures/landscape.jpg  # 1200x800
upload=$(pod_curl -sS -w '\n%{http_code}' -b "$WORK/jar" -H "X-CSRF-Token: $csrf" \
  -F "file=@$fixture;type=image/jpeg" -F visibility=public http://127.0.0.1:8080/rest/edit)
[ "$(tail -1 <<<"$upload")" = 201 ] || failed "POST /rest/edit: $upload"
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$upload" | head -1)
[ -n "$id" ] || failed "no id in the upload answer: $upload"
[ -n "$(find "$vols/originals" -type f -user 65532)" ] || failed "no original written as 65532 in the originals volume"
echo "ok: POST /rest/edit stored $id in the originals volume"
pod_curl -fsS -o "$WORK/240.jpg" "http://127.0.0.1:8080/img/240/$id.jpg" || failed "GET /img/240/$id.jpg"
file -b "$WORK/240.jpg" | grep -q '^JPEG image data.* 240x160,' \
  || failed "/img/240/$id.jpg is not a 240x160 JPEG: $(file -b "$WORK/240.jpg")"
[ -n "$(find "$vols/cache" -type f)" ] || failed "the rendition was not written to the cache volume"
echo "ok: GET /img/240/$id.jpg: a 240x160 JPEG, cached in the cache volume"

# SIGTERM, as the kubelet sends it: readiness fails first (PHOTO_SHUTDOWN_DELAY, 5 s by
# default), then the server drains and exits 0.
pm kill --signal TERM "$SERVER" >/dev/null
sleep 1
shutting=$(pod_curl -s -w ' %{http_code}' http://127.0.0.1:9090/readyz) || true
grep -q '"shutting_down":true.* 503$' <<<"$shutting" || failed "/readyz after SIGTERM: $shutting (wanted 503, shutting_down)"
echo "ok: /readyz after SIGTERM: $shutting"
start=$SECONDS
code=$(timeout 60 "${PODMAN[@]}" wait "$SERVER") || failed "no exit within 60 s of SIGTERM"
[ "$code" = 0 ] || failed "exit code $code after SIGTERM"
echo "ok: exit code 0, $((SECONDS - start + 1)) s after SIGTERM"
if grep -iE '"level":"(WARN|ERROR)"' <(pm logs "$SERVER" 2>&1); then
  failed "photo-server logged warnings or errors (above)"
fi
echo "ok: no warnings or errors in photo-server's logs"

step "images"
pm images --filter reference='ghcr.io/photostack/*' --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ":$TAG "
echo "images built and checked (profile $PROFILE)"
