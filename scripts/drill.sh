#!/usr/bin/env bash
# The PhotoStack drills (issue 11): a local stack of photo-server replicas in
# two zones behind HAProxy, a PostgreSQL primary and streaming standby, one
# originals volume, under the seeds' traffic while parts of it fail.
#
#   bash scripts/drill.sh short [drill args]   # a few seconds per drill; exits 1 if a rule fails
#   bash scripts/drill.sh long  [drill args]   # minutes at the seeds' rates; report in drill/out/long/
#   bash scripts/drill.sh up                   # the stack alone, until Ctrl-C
#
# Installs what is missing (haproxy, PostgreSQL), builds drill and photo-server
# (debug for short, release for long; CARGO_TARGET_DIR is honoured), and for the
# long form fetches camera photos from Debian's mate-backgrounds package into
# drill/out/photos/ (as bench/run.sh does). Run as root: PostgreSQL then runs as
# the postgres user and the originals volume is a tmpfs (without root the
# volume drills are skipped, with a printed line). `drill <form> --help` lists
# the options (--only, --replicas, --rps, --photos, --keep, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-short}
shift || true
case "$mode" in short | long | up) ;; *) echo "usage: $0 short|long|up [drill args]" >&2; exit 2 ;; esac

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
  echo "drill: installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ "$(id -u)" = 0 ] || echo "drill: SKIP volume-full, volume-read-only: not root (a tmpfs cannot be mounted)"

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
profile=debug
build=()
if [ "$mode" = long ]; then profile=release; build=(--release); fi
if [ -z "${DRILL_SKIP_BUILD:-}" ]; then
  cargo build --locked "${build[@]}" -p drill -p photo-server
fi
bin="$target_dir/$profile/drill"
export PHOTO_SERVER_BIN="${PHOTO_SERVER_BIN:-$target_dir/$profile/photo-server}"

args=()
if [ "$mode" = long ] && [[ " $* " != *" --photos "* ]]; then
  # Real camera photos, fetched at run time (never committed): Debian's
  # mate-backgrounds (GPL-2+), 0.2 to 16 MB, up to 17.9 MP.
  photos=drill/out/photos
  mkdir -p "$photos"
  if ! ls "$photos"/*.jpg >/dev/null 2>&1; then
    echo "drill: fetching mate-backgrounds (Debian) for camera photos"
    work=$(mktemp -d)
    chmod 755 "$work"
    (cd "$work" && apt-get download mate-backgrounds 2>/dev/null) ||
      { as_root apt-get update -qq && (cd "$work" && apt-get download mate-backgrounds 2>/dev/null); }
    dpkg-deb --fsys-tarfile "$work"/mate-backgrounds_*.deb |
      tar -x -C "$work" --wildcards './usr/share/backgrounds/mate/nature/*.jpg' \
        ./usr/share/backgrounds/mate/abstract/Elephants_3840x2160.jpg \
        ./usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg
    cp "$work"/usr/share/backgrounds/mate/nature/*.jpg "$work"/usr/share/backgrounds/mate/abstract/*.jpg "$photos"/
    rm -rf "$work"
  fi
  args+=(--photos "$photos")
fi
exec "$bin" "$mode" "${args[@]}" "$@"
