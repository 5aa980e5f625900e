#!/usr/bin/env bash
# PhotoStack photo-server benchmark. Usage (as root on Debian, from anywhere):
#
#   bash bench/run.sh
#
# Installs what it needs (wrk, nginx-light, libvips-tools, valgrind, time, curl, python3), fetches a
# real camera photo from Debian's mate-backgrounds package into bench/work/, builds
# photo-server in release mode, and prints a table of figures with targets and PASS/FAIL.
# Everything runs on 127.0.0.1 only; every server started here is stopped on exit.
#
# Knobs (environment):
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   PHOTO_SERVER_BIN   use this binary instead of <target>/release/photo-server
#   BENCH_SKIP_BUILD=1 do not run cargo build
#   BENCH_DURATION     wrk duration per run (default 10s)
#   BENCH_ROUNDS       wrk rounds per configuration, interleaved; the median is kept (default 3)
#   BENCH_COLD_RUNS    cold renders per size and photo, median kept (default 5)
#   BENCH_UPLOADS      uploads per upload test (default 20)
#   BENCH_RSS_N        concurrent cold renders in the memory test (default 32)
#   BENCH_INSTR_N      cached hits counted under callgrind (default 2000; 0 skips test 5)
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
WORK="$BENCH/work"
SRC="$WORK/src"
RUN="$WORK/run"
OUT="$WORK/results"
LIB=(python3 "$BENCH/lib.py")

DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-3}"
COLD_RUNS="${BENCH_COLD_RUNS:-5}"
UPLOADS="${BENCH_UPLOADS:-20}"
RSS_N="${BENCH_RSS_N:-32}"
INSTR_N="${BENCH_INSTR_N:-2000}"
SIZES=(240 640 1440 2048)
PASSWORD=benchpass

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- 0. tools
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v vipsthumbnail >/dev/null || need+=(libvips-tools)
command -v callgrind_control >/dev/null || [ "$INSTR_N" = 0 ] || need+=(valgrind)
[ -x /usr/bin/time ] || need+=(time)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
    log "installing: ${need[*]}"
    [ "$(id -u)" = 0 ] || die "missing ${need[*]} and not root; install them first"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
command -v cargo >/dev/null || [ -n "${PHOTO_SERVER_BIN:-}" ] || die "cargo not found (install Rust, or set PHOTO_SERVER_BIN)"

mkdir -p "$SRC" "$RUN" "$OUT" "$WORK/logs" "$WORK/tmp"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
put() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; }

# ---------------------------------------------------------------- 1. photos
# mate-backgrounds ships abstract/Elephants_5640x3172.jpg: a 17.9 MP JPEG straight from a
# Sony DSC-RX100M4 (EXIF intact, quality 100), GPL-2+. No 24 MP camera JPEG is in Debian's
# wallpaper packages, so the 24 MP test photo is this one upscaled with vips, and the
# 12 MP one is it downscaled; both re-encoded at quality 92 (camera-like).
ORIG="$SRC/Elephants_5640x3172.jpg"
if [ ! -s "$ORIG" ]; then
    log "fetching mate-backgrounds (Debian) for a 17.9 MP camera JPEG"
    chmod 755 "$SRC"
    if ! (cd "$SRC" && ls mate-backgrounds_*.deb >/dev/null 2>&1) ; then
        (cd "$SRC" && apt-get download mate-backgrounds 2>/dev/null) ||
            { apt-get update -qq && (cd "$SRC" && apt-get download mate-backgrounds 2>/dev/null); } ||
            die "cannot download mate-backgrounds"
    fi
    dpkg-deb --fsys-tarfile "$(ls "$SRC"/mate-backgrounds_*.deb | head -1)" |
        tar -xO ./usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg >"$ORIG.part"
    mv "$ORIG.part" "$ORIG"
fi
P12="$SRC/p12.jpg"
P24="$SRC/p24.jpg"
if [ ! -s "$P12" ]; then vips resize "$ORIG" "$P12.part.jpg[Q=92]" 0.81986; mv "$P12.part.jpg" "$P12"; fi
if [ ! -s "$P24" ]; then vips resize "$ORIG" "$P24.part.jpg[Q=92]" 1.15816; mv "$P24.part.jpg" "$P24"; fi
dims() { vipsheader -f width "$1" | tr -d '\n'; printf x; vipsheader -f height "$1"; }
D12="$(dims "$P12")"; D24="$(dims "$P24")"
S12=$(stat -c %s "$P12"); S24=$(stat -c %s "$P24")
UPFILE="$P12"; UPSIZE=$S12
log "photos: 12 MP $D12 ($S12 B), 24 MP $D24 ($S24 B) from $(basename "$ORIG")"
put note.photos "Photos: Debian mate-backgrounds abstract/Elephants_5640x3172.jpg (17.9 MP, Sony DSC-RX100M4, GPL-2+). 12 MP = it DOWNscaled to $D12 ($((S12/1000)) kB), 24 MP = it UPscaled to $D24 ($((S24/1000)) kB) with vips resize, Q=92: the package has no 12/24 MP camera JPEG of its own."
put up.size_mb "$(python3 -c "print($UPSIZE/1e6)")"

# ---------------------------------------------------------------- 2. build
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${PHOTO_SERVER_BIN:-$TARGET_DIR/release/photo-server}"
if [ -z "${BENCH_SKIP_BUILD:-}" ] && [ -z "${PHOTO_SERVER_BIN:-}" ]; then
    log "cargo build --release -p photo-server (target dir $TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p photo-server 2>&1 | tail -3) >&2 || die "cargo build failed"
fi
[ -x "$BIN" ] || die "no server binary at $BIN (build failed?)"

# ---------------------------------------------------------------- servers
declare -A PORT PID JAR CSRF DATA ENVS
NGINX_PID=""
DEATHS=0
cleanup() {
    local p
    for p in "${PID[@]}" $NGINX_PID; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${PID[@]}" $NGINX_PID; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PID[@]}" $NGINX_PID; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME DATA_DIR [VAR=VALUE ...]: fresh cache dir under DATA_DIR/cache-NAME
start_server() {
    local name=$1 data=$2; shift 2
    DATA[$name]=$data; ENVS[$name]="$*"
    local port; port=$("${LIB[@]}" freeport)
    mkdir -p "$data"
    rm -rf "$data/cache-$name"
    env -u RUST_LOG PHOTO_DATA_DIR="$data" PHOTO_CACHE_DIR="$data/cache-$name" PHOTO_LISTEN="127.0.0.1:$port" \
        PHOTO_ADMIN_PASSWORD="$PASSWORD" PHOTO_LOG_FORMAT=json PHOTO_SHUTDOWN_DELAY=0s \
        "$@" "$BIN" >"$WORK/logs/$name.log" 2>&1 &
    PID[$name]=$!
    PORT[$name]=$port
    for _ in $(seq 300); do
        curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
        kill -0 "${PID[$name]}" 2>/dev/null || { tail -20 "$WORK/logs/$name.log" >&2; die "server $name exited"; }
        sleep 0.1
    done
    curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/healthz" || die "server $name did not become healthy"
    JAR[$name]="$RUN/$name.jar"
    local resp
    resp=$(curl -fsS -m 10 -c "${JAR[$name]}" -H 'content-type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" "http://127.0.0.1:$port/rest/login") ||
        die "login to $name failed"
    CSRF[$name]=$(printf '%s' "$resp" | "${LIB[@]}" json-get csrf)
    log "server $name pid ${PID[$name]} on 127.0.0.1:$port"
}

# alive NAME: true if the server still runs; otherwise logs how it ended (exit status or signal),
# restarts it on the same data dir (same photo ids, fresh cache dir) and returns false.
alive() {
    local name=$1 p=${PID[$1]} status=0
    kill -0 "$p" 2>/dev/null && return 0
    wait "$p" 2>/dev/null || status=$?
    DEATHS=$((DEATHS + 1))
    local how="exit status $status"
    [ "$status" -gt 128 ] && how="killed by signal $((status - 128)) ($(kill -l $((status - 128)) 2>/dev/null || echo ?))"
    log "  WARNING: server $name (pid $p) died: $how; last log lines:"
    tail -5 "$WORK/logs/$name.log" | cut -c1-300 >&2
    cp "$WORK/logs/$name.log" "$WORK/logs/$name.died.$DEATHS.log"
    put "death.$DEATHS" "server $name (pid $p): $how at $(date -u +%T)"
    # shellcheck disable=SC2086
    start_server "$name" "${DATA[$name]}" ${ENVS[$name]}
    return 1
}

stop_server() {
    local name=$1 p=${PID[$1]}
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset "PID[$name]"
}

# upload NAME FILE COUNT: uploads COUNT copies of FILE (4 parts per request), prints the ids
upload() {
    local name=$1 file=$2 count=$3 done=0
    while [ $done -lt "$count" ]; do
        local n=$((count - done)); [ $n -gt 4 ] && n=4
        local parts=() i
        for ((i = 0; i < n; i++)); do parts+=(-F "file=@$file;type=image/jpeg"); done
        local code
        code=$(curl -sS -m 300 -o "$RUN/upload.json" -w '%{http_code}' -b "${JAR[$name]}" \
            -H "X-CSRF-Token: ${CSRF[$name]}" "${parts[@]}" -F visibility=public \
            "http://127.0.0.1:${PORT[$name]}/rest/edit") || true
        [ "$code" = 201 ] || { cat "$RUN/upload.json" >&2; die "upload to $name: HTTP $code"; }
        "${LIB[@]}" ids <"$RUN/upload.json"
        done=$((done + n))
    done
}

# get NAME PATH -> "code time_total x-cache"
get() {
    local hdr="$RUN/h.$$"
    local out
    out=$(curl -sS -m 120 -o /dev/null -D "$hdr" -w '%{http_code} %{time_total}' "http://127.0.0.1:${PORT[$1]}$2") || out="000 nan"
    printf '%s %s\n' "$out" "$(tr -d '\r' <"$hdr" 2>/dev/null | awk -F': ' 'tolower($1)=="x-cache"{print $2}')"
}

put note.machine "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average at start $(cut -d' ' -f1-3 /proc/loadavg); photo-server $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); $(date -u +%FT%TZ)"

DATA_A="$RUN/a"; DATA_B="$RUN/b"; DATA_C="$RUN/c"
rm -rf "$DATA_A" "$DATA_B" "$DATA_C" "$WORK/www"

# ================================================================ 2. cold renders
start_server a "$DATA_A"
log "test 2: cold renders, $COLD_RUNS runs x ${#SIZES[@]} sizes x {12,24} MP (one fresh photo id per request)"
for mp in 12 24; do
    f=$P12; [ $mp = 24 ] && f=$P24
    mapfile -t ids < <(upload a "$f" $((COLD_RUNS * ${#SIZES[@]})))
    k=0
    declare -A httpt=() rendt=()
    for ((run = 0; run < COLD_RUNS; run++)); do
        for size in "${SIZES[@]}"; do
            id=${ids[$k]}; k=$((k + 1))
            alive a || true
            curl -sS -m 10 "http://127.0.0.1:${PORT[a]}/metrics" >"$RUN/m0"
            read -r code t cache < <(get a "/img/$size/$id.jpg")
            curl -sS -m 10 "http://127.0.0.1:${PORT[a]}/metrics" >"$RUN/m1"
            read -r s0 c0 < <("${LIB[@]}" metrics-render "$RUN/m0")
            read -r s1 c1 < <("${LIB[@]}" metrics-render "$RUN/m1")
            r=$(python3 -c "print('%.6f' % ($s1-$s0) if $c1-$c0 == 1 else 'nan')")
            [ "$code" = 200 ] || log "  WARNING: cold /img/$size/$id.jpg -> HTTP $code"
            [ "${cache:-}" = miss ] || log "  WARNING: cold /img/$size/$id.jpg x-cache=${cache:-none} (expected miss)"
            httpt[$size]+=" $t"; rendt[$size]+=" $r"
        done
    done
    for size in "${SIZES[@]}"; do
        h=$("${LIB[@]}" median ${httpt[$size]})
        rs=$(echo ${rendt[$size]} | tr ' ' '\n' | grep -v nan | tr '\n' ' ')
        if [ -n "$rs" ]; then r=$("${LIB[@]}" median $rs); else r=nan; fi
        v=$("${LIB[@]}" timecmd "$COLD_RUNS" vipsthumbnail "$f" -s "${size}x" -o "$WORK/tmp/vt.jpg[Q=82]")
        put "cold.$mp.$size.http" "$h"; put "cold.$mp.$size.render" "$r"; put "cold.$mp.$size.vips" "$v"
        log "  $mp MP -> $size: HTTP median ${h}s (all:${httpt[$size]}), render ${r}s, vipsthumbnail ${v}s"
    done
    unset httpt rendt
done

# ================================================================ 1. cached hits
log "test 1: cached hits, wrk -t2 -c32 -d$DURATION --latency, $ROUNDS interleaved rounds"
start_server b "$DATA_B" PHOTO_MEMORY_CACHE_BYTES=0
HID=$(upload a "$P12" 1)
HIDB=$(upload b "$P12" 1)
for size in 240 1440; do
    for srv in a b; do
        id=$HID; [ $srv = b ] && id=$HIDB
        get $srv "/img/$size/$id.jpg" >/dev/null
        read -r code _ cache < <(get $srv "/img/$size/$id.jpg")
        [ "$code" = 200 ] && [ "$cache" = hit ] || log "  WARNING: warm /img/$size on $srv: HTTP $code x-cache=$cache"
    done
    mkdir -p "$WORK/www/img/$size"
    curl -fsS -m 30 -o "$WORK/www/img/$size/$HID.jpg" "http://127.0.0.1:${PORT[a]}/img/$size/$HID.jpg"
    log "  /img/$size rendition: $(stat -c %s "$WORK/www/img/$size/$HID.jpg") bytes"
done
NPORT=$("${LIB[@]}" freeport)
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        root $WORK/www;
    }
}
EOF
"$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$NPORT/img/240/$HID.jpg" 2>/dev/null && break; sleep 0.1; done
curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$NPORT/img/240/$HID.jpg" || die "nginx did not start (see $WORK/nginx/error.log)"
cmp -s <(curl -fsS "http://127.0.0.1:${PORT[b]}/img/1440/$HIDB.jpg") "$WORK/www/img/1440/$HID.jpg" ||
    log "  note: server b's 1440 rendition differs in bytes from server a's"
rm -f "$RUN"/rounds.*
for ((round = 1; round <= ROUNDS; round++)); do
    for size in 240 1440; do
        for tgt in nginx mem disk; do
            case $tgt in
                nginx) url="http://127.0.0.1:$NPORT/img/$size/$HID.jpg" ;;
                mem) url="http://127.0.0.1:${PORT[a]}/img/$size/$HID.jpg" ;;
                disk) url="http://127.0.0.1:${PORT[b]}/img/$size/$HIDB.jpg" ;;
            esac
            for srv in a b; do
                if ! alive $srv; then
                    id=$HID; [ $srv = b ] && id=$HIDB
                    for s in 240 1440; do get $srv "/img/$s/$id.jpg" >/dev/null; done
                fi
            done
            case $tgt in nginx) spid=$NGINX_PID ;; mem) spid=${PID[a]} ;; disk) spid=${PID[b]} ;; esac
            wout="$OUT/wrk.$tgt.$size.$round.txt"
            cpu0=$("${LIB[@]}" cpu "$spid")
            timeout 120 wrk -t2 -c32 -d"$DURATION" --timeout 5s --latency "$url" >"$wout" 2>&1 || true
            cpu1=$("${LIB[@]}" cpu "$spid")
            read -r rps p50 p99 non2xx errs < <("${LIB[@]}" wrk "$wout")
            if [ "$tgt" != nginx ] && ! kill -0 "$spid" 2>/dev/null; then
                log "  round $round /img/$size $tgt: server died during the run, run discarded"
                continue
            fi
            nreq=$(awk '/requests in/{print $1}' "$wout")
            cpu_us=$(python3 -c "print('%.1f' % (($cpu1-$cpu0)*1e6/max(1,${nreq:-0})))")
            log "  round $round /img/$size $tgt: $rps req/s p50 ${p50}ms p99 ${p99}ms, server CPU ${cpu_us}us/req, non2xx $non2xx errors $errs"
            [ "$non2xx" = 0 ] || log "  WARNING: $non2xx non-2xx responses from $tgt"
            echo "$rps $p50 $p99 $cpu_us" >>"$RUN/rounds.$tgt.$size"
        done
    done
done
# Per configuration, the round with the median req/s (lower middle for an even count).
for f in "$RUN"/rounds.*; do
    key=${f#"$RUN"/rounds.}
    n=$(grep -vc "^nan" "$f" || true)
    [ "$n" -gt 0 ] || continue
    read -r rps p50 p99 cpu_us < <(grep -v '^nan' "$f" | sort -g | sed -n "$(((n + 1) / 2))p")
    put "hit.$key.rps" "$rps"; put "hit.$key.p50" "$p50"; put "hit.$key.p99" "$p99"; put "hit.$key.cpu_us" "$cpu_us"
done
put note.method "Method: wrk/nginx/servers share the same 2 cores; photo-server logs JSON at the default info level, as in a cluster; cached-hit figures are from the median (by req/s) of $ROUNDS interleaved ${DURATION} wrk runs per configuration; nginx: worker_processes auto, sendfile on, access_log off, keepalive_requests 1e6, same rendition bytes. Cold = first request for a fresh photo id (x-cache: miss), median of $COLD_RUNS; 'render' = delta of photo_render_duration_seconds_sum; vipsthumbnail timed as a process (median of $COLD_RUNS after 1 warm-up)."
kill -TERM "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; NGINX_PID=""
stop_server b

# ================================================================ 3. uploads
alive a || true
log "test 3: $UPLOADS uploads of $UPSIZE bytes, sequential then 4 in parallel"
upload_one() { # prints the HTTP code
    curl -sS -m 300 -o /dev/null -w '%{http_code}\n' -b "$1" -H "X-CSRF-Token: $2" \
        -F "file=@$3;type=image/jpeg" -F visibility=public "$4/rest/edit" || echo 000
}
export -f upload_one
for mode in seq par4; do
    P=1; [ $mode = par4 ] && P=4
    t0=$(date +%s.%N)
    seq "$UPLOADS" | timeout 900 xargs -P $P -I{} bash -c 'upload_one "$@"' _ "${JAR[a]}" "${CSRF[a]}" "$UPFILE" "http://127.0.0.1:${PORT[a]}" >"$RUN/codes.$mode" || true
    t1=$(date +%s.%N)
    ok=$(grep -c '^201$' "$RUN/codes.$mode" || true)
    read -r mbps ups wall < <(python3 -c "w=$t1-$t0; print('%.3f %.3f %.3f' % ($ok*$UPSIZE/1e6/w, $ok/w, w))")
    put "up.$mode.n" "$UPLOADS"; put "up.$mode.ok" "$ok"; put "up.$mode.mbps" "$mbps"; put "up.$mode.ups" "$ups"
    log "  $mode: $ok/$UPLOADS ok in ${wall}s: $mbps MB/s, $ups uploads/s ($(sort "$RUN/codes.$mode" | uniq -c | tr '\n' ' '))"
done
stop_server a

# ================================================================ 4. memory
log "test 4: peak RSS under $RSS_N concurrent cold renders of /img/1440 of the 24 MP photo"
start_server c "$DATA_C"
mapfile -t rids < <(upload c "$P24" "$RSS_N")
sleep 1
alive c || true
CPID=${PID[c]}
put rss.n "$RSS_N"
UPHWM=$("${LIB[@]}" vmhwm "$CPID")
put rss.upload_hwm_kib "$UPHWM"
# Reset the peak so that VmHWM covers only the render phase (Linux >= 4.0).
echo 5 >"/proc/$CPID/clear_refs" 2>/dev/null || log "  cannot reset VmHWM; the figure includes the uploads"
t0=$(date +%s.%N)
printf '%s\n' "${rids[@]}" | timeout 600 xargs -P "$RSS_N" -I{} \
    curl -sS -m 300 -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:${PORT[c]}/img/1440/{}.jpg" >"$RUN/rss.codes" || true
t1=$(date +%s.%N)
hwm=$("${LIB[@]}" vmhwm "$CPID")
put rss.render_hwm_kib "$hwm"
put rss.200 "$(grep -c '^200 ' "$RUN/rss.codes" || true)"
put rss.503 "$(grep -c '^503 ' "$RUN/rss.codes" || true)"
put rss.other "$(grep -vcE '^(200|503) ' "$RUN/rss.codes" || true)"
put rss.wall "$(python3 -c "print($t1-$t0)")"
log "  VmHWM during renders: $hwm KiB; codes: $(cut -d' ' -f1 "$RUN/rss.codes" | sort | uniq -c | tr '\n' ' ')"
alive c || log "  server c died during the memory test; the figures above are suspect"
put deaths "$DEATHS"
curl -sS -m 10 "http://127.0.0.1:${PORT[c]}/metrics" >"$OUT/metrics.c.txt" || true
stop_server c

# ================================================================ 5. instructions per hit
# req/s on a shared 2-core machine swings with whatever else runs; instructions counted by
# callgrind do not. Both servers answer the same cached 240-px file INSTR_N times on one
# keep-alive connection; counters are zeroed after a warm-up. User space only: the kernel's
# share (photo-server makes 2 syscalls per hit, nginx about 7) is not in these figures.
if [ "$INSTR_N" != 0 ]; then
    log "test 5: user-space instructions per cached /img/240 hit under callgrind, $INSTR_N hits"
    DATA_D="$RUN/d"; rm -rf "$DATA_D"
    rm -f "$OUT"/callgrind.*
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file="%s" "%s" "$@"\n' \
        "$OUT/callgrind.photo-server.out" "$BIN" >"$RUN/callgrind-server.sh"
    chmod +x "$RUN/callgrind-server.sh"
    REAL_BIN=$BIN; BIN="$RUN/callgrind-server.sh"
    start_server d "$DATA_D"
    BIN=$REAL_BIN
    IID=$(upload d "$P12" 1)
    get d "/img/240/$IID.jpg" >/dev/null
    mkdir -p "$WORK/www/img/240"
    curl -fsS -m 30 -o "$WORK/www/img/240/$IID.jpg" "http://127.0.0.1:${PORT[d]}/img/240/$IID.jpg"
    CGPORT=$("${LIB[@]}" freeport)
    sed -e "s/^worker_processes auto;/worker_processes 1; master_process off;/" \
        -e "s/listen 127.0.0.1:$NPORT;/listen 127.0.0.1:$CGPORT;/" \
        -e "s|pid $WORK/nginx/nginx.pid;|pid $WORK/nginx/nginx-cg.pid;|" \
        "$WORK/nginx/nginx.conf" >"$WORK/nginx/nginx-cg.conf"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.nginx.out" \
        "$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx-cg.conf" 2>"$WORK/logs/nginx-cg.log" &
    NGINX_PID=$!
    for _ in $(seq 300); do curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$CGPORT/img/240/$IID.jpg" 2>/dev/null && break; sleep 0.1; done
    # count NAME PID URL: instructions per request, from the dump taken right after the hits
    count() {
        local name=$1 pid=$2 url=$3 i total
        : >"$RUN/hits.warm"
        : >"$RUN/hits"
        for ((i = 0; i < 200; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url" >>"$RUN/hits.warm"; done
        for ((i = 0; i < INSTR_N; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url" >>"$RUN/hits"; done
        curl -sS -K "$RUN/hits.warm"
        callgrind_control -z "$pid" >/dev/null 2>&1
        curl -sS -w '%{http_code}\n' -K "$RUN/hits" | sort | uniq -c | tr '\n' ' ' >"$RUN/hits.codes"
        callgrind_control -d "$pid" >/dev/null 2>&1
        total=$(awk '/^(summary|totals):/{print $2; exit}' "$OUT/callgrind.$name.out.1" 2>/dev/null || true)
        log "  $name: ${total:-?} instructions for $INSTR_N hits (HTTP codes: $(cat "$RUN/hits.codes"))"
        if [ -n "$total" ]; then
            put "instr.$name" "$(python3 -c "print('%.0f' % ($total / $INSTR_N))")"
        fi
    }
    count photo-server "${PID[d]}" "http://127.0.0.1:${PORT[d]}/img/240/$IID.jpg"
    count nginx "$NGINX_PID" "http://127.0.0.1:$CGPORT/img/240/$IID.jpg"
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
    stop_server d
fi

put deaths "$DEATHS"

# ================================================================ report
echo
echo "photo-server benchmark ($(date -u +%FT%TZ))"
"${LIB[@]}" report "$RESULTS" | tee "$OUT/summary.txt"
log "raw results in $RESULTS, wrk outputs and logs in $OUT and $WORK/logs"
