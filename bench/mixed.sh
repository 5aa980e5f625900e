#!/usr/bin/env bash
# The mixed-photo benchmark (bench/mixed.py): photo-server against pyvips in-process and
# nginx with sendfile, over 20 real photos (0.1 to 20 MP) at 240, 640 and 1440 px. As root
# on Debian 12 (a fresh machine is fine):
#
#   bash bench/mixed.sh            # about 15 minutes on 2 cores, prints the table
#
# Installs wrk, nginx-light, libvips42, nasm, curl and python3-venv from Debian and pyvips
# from PyPI (into bench/work/venv), fetches Debian's mate-backgrounds into bench/work/ (git
# ignored), builds photo-server in release mode and runs every phase on 127.0.0.1.
# Knobs: MIXED_ROUNDS (5), MIXED_DURATION (10 s per wrk round), MIXED_COLD_RUNS (3),
# MIXED_COPIES (10 uploads of each photo for the throughput phase), BENCH_SKIP_BUILD=1,
# PHOTO_SERVER_BIN=path.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
WORK=$BENCH/work/mixed
log() { printf '[mixed %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

need=()
for tool in wrk curl nasm; do command -v $tool >/dev/null || need+=("$tool"); done
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
ldconfig -p | grep -q 'libvips.so.42 ' || need+=(libvips42)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  [ "$(id -u)" = 0 ] || { log "missing ${need[*]}: install them or run as root"; exit 1; }
  log "installing ${need[*]} (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin
VENV=$BENCH/work/venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import pyvips' 2>/dev/null || "$VENV/bin/pip" install -q 'pyvips==3.2.0'

mkdir -p "$WORK"
PHOTOS=$WORK/photos
if [ ! -s "$PHOTOS/camera-12mp-rotated.jpg" ]; then
  log "fetching mate-backgrounds (Debian) and making the mixed set"
  deb=$(ls "$WORK"/mate-backgrounds_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    (cd "$WORK" && apt-get download -q -o APT::Sandbox::User=root mate-backgrounds >/dev/null)
    deb=$(ls "$WORK"/mate-backgrounds_*.deb | head -1)
  fi
  rm -rf "$WORK/deb" "$PHOTOS"
  dpkg-deb -x "$deb" "$WORK/deb"
  "$VENV/bin/python" "$BENCH/mixed.py" prepare "$WORK/deb/usr/share/backgrounds/mate" "$PHOTOS"
fi

BIN=${PHOTO_SERVER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/photo-server}
if [ -z "${BENCH_SKIP_BUILD:-}" ] && [ -z "${PHOTO_SERVER_BIN:-}" ]; then
  log "cargo build --release -p photo-server"
  (cd "$ROOT" && cargo build --release -p photo-server 2>&1 | tail -2) >&2
fi
[ -x "$BIN" ] || { log "no server binary at $BIN"; exit 1; }

rm -rf "$WORK"/data-* "$WORK"/run
mkdir -p "$WORK/run"
"$VENV/bin/python" "$BENCH/mixed.py" --server "$BIN" --work "$WORK/run" --photos "$PHOTOS" \
  --rounds "${MIXED_ROUNDS:-5}" --duration "${MIXED_DURATION:-10}" --cold-runs "${MIXED_COLD_RUNS:-3}" \
  | tee "$WORK/summary.md"
log "table saved in $WORK/summary.md; wrk outputs and server logs in $WORK/run"
