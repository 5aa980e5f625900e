#!/usr/bin/env bash
# The pod the operator renders, run for real: `photo-operator render` (in the operator image)
# of tests/pod/site.yaml goes through `podman kube play` (its Deployment, ConfigMap and
# originals claim; the Secrets as podman secrets) with the photo-server image, its external
# database a throwaway PostgreSQL from this machine's binaries. Then, through the pod's ports:
# /healthz and /readyz on the metrics port, /metrics there only, a login, an upload (the
# original in the claim's volume), a rendition (in the cache emptyDir's volume), the rows in
# PostgreSQL; the container as the Deployment asks (uid/gid 65532, read-only root filesystem,
# no capabilities, no privilege escalation, seccomp, the memory limit); podman stop with the
# Deployment's grace period: /readyz fails first, then exit 0; no warning in the logs.
#
#   scripts/pod-check.sh SERVER_IMAGE OPERATOR_IMAGE   (scripts/images.sh runs it, as root)
#
# What kube play cannot express of the rendered objects is printed first ("not played: ...",
# from scripts/kube-play-filter.py, which finds it in the objects) and left out or checked
# otherwise. The pod runs in its own network namespace (--network none: nothing taken on this
# machine's ports); PostgreSQL is started inside it, on 127.0.0.1:5432, before photo-server;
# curl and psql reach the pod there through nsenter. Everything it makes (the pod and its
# volumes, the claim's volume, the secrets, PostgreSQL, the files) is removed on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 2 ] || { echo "usage: $0 SERVER_IMAGE OPERATOR_IMAGE"; exit 2; }
SERVER_IMAGE=$1 OPERATOR_IMAGE=$2
[ "$(id -u)" = 0 ] || { echo "$0 runs podman and PostgreSQL's user as root (scripts/images.sh does)"; exit 2; }

PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
pm() { "${PODMAN[@]}" "$@"; }
LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)
SITE_FILE=tests/pod/site.yaml
SITE=$(sed -n 's/^metadata: {name: \([a-z0-9-]*\),.*/\1/p' "$SITE_FILE" | head -1)  # the PhotoSite's
POD=$SITE-pod-0                # kube play's name for the Deployment's first pod
CTR=$POD-photo-server          # ... and for its container
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

WORK=$(mktemp -d)
PGDIR=$(mktemp -d)             # PostgreSQL's (owned by postgres: it refuses to run as root)
chown postgres:postgres "$PGDIR"
as_pg() { runuser -u postgres -- "$@"; }
claims=() secrets=()
remove_objects() {
  pm pod rm -f -t 0 "$POD" >/dev/null 2>&1 || true  # with its emptyDir volumes (anonymous)
  local v s
  for v in ${claims[@]+"${claims[@]}"}; do pm volume rm -f "$v" >/dev/null 2>&1 || true; done
  for s in ${secrets[@]+"${secrets[@]}"}; do pm secret rm "$s" >/dev/null 2>&1 || true; done
}
cleanup() {
  remove_objects
  [ ! -f "$PGDIR/data/postmaster.pid" ] || as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK" "$PGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
failed() {
  echo "FAIL: $*"
  if pm container exists "$CTR"; then echo "--- photo-server logs:"; pm logs "$CTR" 2>&1 | tail -30; fi
  if [ -f "$PGDIR/log" ]; then echo "--- PostgreSQL log:"; tail -10 "$PGDIR/log"; fi
  exit 1
}

# --- render, and what kube play is given ------------------------------------------------
mkdir "$WORK/site"
sed "s|^  image: .*|  image: $SERVER_IMAGE|" "$SITE_FILE" >"$WORK/site/site.yaml"
pm run --rm --network none "${LIMITS[@]}" --read-only --read-only-tmpfs=false --cap-drop ALL \
  --security-opt no-new-privileges \
  -v "$WORK/site:/site:ro" "$OPERATOR_IMAGE" render -f /site/site.yaml >"$WORK/rendered.yaml" \
  || failed "photo-operator render -f $SITE_FILE"
echo "ok: photo-operator render -f $SITE_FILE (in $OPERATOR_IMAGE):" \
  "$(grep '^kind:' "$WORK/rendered.yaml" | awk '{print $2}' | tr '\n' ' ')"
DB_PASSWORD=db-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
PASSWORD=check-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SESSION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
python3 scripts/kube-play-filter.py "$WORK/rendered.yaml" "$WORK/site/site.yaml" "$WORK/play" \
  "$SITE-database/uri=postgres://photo:$DB_PASSWORD@127.0.0.1:5432/photos" \
  "$SITE-credentials/admin-password=$PASSWORD" "$SITE-credentials/session-key=$SESSION_KEY" \
  >"$WORK/notes" || failed "scripts/kube-play-filter.py"
sed 's/^/kube play: /' "$WORK/notes"
# shellcheck source=/dev/null
. "$WORK/play/expect.env"  # CLAIMS, USER_ID, GROUP_ID, MEMORY_{LIMIT,REQUEST}_BYTES, GRACE_SECONDS
read -ra claims <<<"$CLAIMS"
for f in "$WORK"/play/secrets/*.json; do secrets+=("$(basename "$f" .json)"); done
remove_objects  # what an earlier run killed before its cleanup left

# --- play ----------------------------------------------------------------------------------
# The limits every podman command here is given, for the pod's containers too (kube play has
# no --ulimit): podman's defaults exceed what such machines allow.
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n' >"$WORK/containers.conf"
for s in "${secrets[@]}"; do pm secret create "$s" "$WORK/play/secrets/$s.json" >/dev/null; done
CONTAINERS_CONF=$WORK/containers.conf timeout 120 "${PODMAN[@]}" kube play --start=false --network none \
  "$WORK/play/play.yaml" >"$WORK/play.log" 2>&1 || { cat "$WORK/play.log"; failed "podman kube play"; }
infra=$(pm pod inspect --format '{{.InfraContainerID}}' "$POD")
pm start "$infra" >/dev/null
netns=/proc/$(pm inspect --format '{{.State.Pid}}' "$infra")/ns/net
in_pod() { nsenter --net="$netns" "$@"; }
pod_curl() { in_pod curl --max-time 10 "$@"; }
copy_in() { # copy_in DIR FILE: the file under DIR, owned by the pod's user, with FILE's bytes
  find "$1" -type f -user "$USER_ID" -size "$(stat -c %s "$2")c" -exec cmp -s {} "$2" \; -print -quit
}

# The external database, in the pod's network namespace (where the URI says: 127.0.0.1:5432)
as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --locale=C >"$PGDIR/initdb.log" 2>&1 || { cat "$PGDIR/initdb.log"; failed "initdb"; }
in_pod runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 \
  -o "-p 5432 -c listen_addresses=127.0.0.1 -k $PGDIR" start >/dev/null || failed "PostgreSQL did not start"
psql() { as_pg "$PG_BIN/psql" -h "$PGDIR" -p 5432 -U postgres -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
psql -c "CREATE ROLE photo LOGIN PASSWORD '$DB_PASSWORD'" -c "CREATE DATABASE photos OWNER photo" >/dev/null
echo "ok: PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') in the pod's network namespace, 127.0.0.1:5432"

pm pod start "$POD" >/dev/null 2>"$WORK/start.log" || { cat "$WORK/start.log"; failed "podman pod start"; }
echo "ok: podman kube play: pod $POD, container $CTR, claim volume(s) ${claims[*]}, secrets ${secrets[*]}"
for _ in $(seq 150); do
  pod_curl -fs -o /dev/null http://127.0.0.1:9090/readyz && break
  [ "$(pm inspect --format '{{.State.Running}}' "$CTR")" = true ] || failed "photo-server exited"
  sleep 0.2
done

# --- the container as the Deployment asks ----------------------------------------------------
pid=$(pm inspect --format '{{.State.Pid}}' "$CTR")
[ "$(pm inspect --format '{{.Config.User}}' "$CTR")" = "$USER_ID:$GROUP_ID" ] \
  || failed "podman inspect: user $(pm inspect --format '{{.Config.User}}' "$CTR"), not $USER_ID:$GROUP_ID"
status=$(cat "/proc/$pid/status")
for want in "Uid:	$USER_ID	$USER_ID	$USER_ID	$USER_ID" "Gid:	$GROUP_ID	$GROUP_ID	$GROUP_ID	$GROUP_ID" \
  'CapEff:	0000000000000000' 'CapBnd:	0000000000000000' 'NoNewPrivs:	1' 'Seccomp:	2'; do
  grep -qF "$want" <<<"$status" || failed "/proc/<photo-server>/status has no '$want'"
done
[ "$(pm inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$CTR")" = true ] || failed "podman inspect: root filesystem not read-only"
awk '$5 == "/" && $6 ~ /(^|,)ro(,|$)/ {ro = 1} END {exit !ro}' "/proc/$pid/mountinfo" \
  || failed "the container's root filesystem is not mounted ro (/proc/<photo-server>/mountinfo)"
memory=$(pm inspect --format '{{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}}' "$CTR")
[ "$memory" = "$MEMORY_LIMIT_BYTES $MEMORY_REQUEST_BYTES" ] \
  || failed "podman inspect: memory limit and reservation $memory, not $MEMORY_LIMIT_BYTES $MEMORY_REQUEST_BYTES"
echo "ok: podman inspect and /proc: uid and gid $USER_ID, read-only root filesystem, no capabilities," \
  "no new privileges, seccomp filtering, memory limit $MEMORY_LIMIT_BYTES and reservation $MEMORY_REQUEST_BYTES bytes"

# --- through the pod's ports ---------------------------------------------------------------
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
echo "ok: POST /rest/login as admin, with the password from the credentials secret"
fixture=photo-server/tests/fixtures/landscape.jpg  # 1200x800
upload=$(pod_curl -sS -w '\n%{http_code}' -b "$WORK/jar" -H "X-CSRF-Token: $csrf" \
  -F "file=@$fixture;type=image/jpeg" -F visibility=public http://127.0.0.1:8080/rest/edit)
[ "$(tail -1 <<<"$upload")" = 201 ] || failed "POST /rest/edit: $upload"
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$upload" | head -1)
[ -n "$id" ] || failed "no id in the upload answer: $upload"
originals=$(pm volume inspect --format '{{.Mountpoint}}' "$SITE-originals")
original=$(copy_in "$originals" "$fixture")
[ -n "$original" ] || failed "the upload is not in the volume of claim $SITE-originals ($originals), as $USER_ID"
rows=$(psql -d photos -c "SELECT count(*) FROM photos WHERE id = '$id'") || failed "psql: photos"
[ "$rows" = 1 ] || failed "photo $id is not in PostgreSQL's photos table"
echo "ok: POST /rest/edit stored $id: the original in claim $SITE-originals's volume" \
  "(${original#"$originals"/}), its row in PostgreSQL"
pod_curl -fsS -o "$WORK/240.jpg" "http://127.0.0.1:8080/img/240/$id.jpg" || failed "GET /img/240/$id.jpg"
file -b "$WORK/240.jpg" | grep -q '^JPEG image data.* 240x160,' \
  || failed "/img/240/$id.jpg is not a 240x160 JPEG: $(file -b "$WORK/240.jpg")"
cache=$(pm inspect --format '{{range .Mounts}}{{if eq .Destination "/var/cache/photo"}}{{.Name}} {{.Source}}{{end}}{{end}}' "$CTR")
[ -n "$cache" ] || failed "no volume at /var/cache/photo"
cached=$(copy_in "${cache#* }" "$WORK/240.jpg")
[ -n "$cached" ] || failed "the rendition is not in the cache emptyDir's volume ${cache% *} (${cache#* })"
echo "ok: GET /img/240/$id.jpg: a 240x160 JPEG, the same bytes in the cache emptyDir's volume" \
  "${cache% *} (${cached#"${cache#* }"/})"

# --- stop, as the kubelet does: SIGTERM, the grace period, then SIGKILL -----------------------
# Readiness fails first (PHOTO_SHUTDOWN_DELAY, 5 s by default), then the server drains and
# exits 0. podman stop (unlike kill) also keeps the Deployment's restartPolicy Always away.
start=$SECONDS
timeout $((GRACE_SECONDS + 30)) "${PODMAN[@]}" stop -t "$GRACE_SECONDS" "$CTR" >/dev/null 2>&1 &
stopper=$!
sleep 1
shutting=$(pod_curl -s -w ' %{http_code}' http://127.0.0.1:9090/readyz) || true
grep -q '"shutting_down":true.* 503$' <<<"$shutting" || failed "/readyz after SIGTERM: $shutting (wanted 503, shutting_down)"
echo "ok: /readyz after SIGTERM: $shutting"
wait "$stopper" || failed "podman stop -t $GRACE_SECONDS did not return"
code=$(pm inspect --format '{{.State.ExitCode}}' "$CTR")
[ "$code" = 0 ] || failed "exit code $code after SIGTERM"
echo "ok: exit code 0, $((SECONDS - start)) s after SIGTERM (grace period $GRACE_SECONDS s)"
if grep -iE '"level":"(WARN|ERROR)"' <(pm logs "$CTR" 2>&1); then
  failed "photo-server logged warnings or errors (above)"
fi
echo "ok: no warnings or errors in photo-server's logs"
