"""The mixed-photo benchmark: photo-server against libvips (in-process) and nginx, one run.

Run through bench/mixed.sh, which installs the tools, builds the server and calls:

    python3 bench/mixed.py --server BIN --work DIR --photos DIR [--rounds 5] [--duration 10]

Phases, each against a freshly started server so its peak memory (VmHWM) is the phase's own:
  1. cold renders: every photo at 240, 640 and 1440 px, one request at a time, each a miss
     (a fresh cache directory per run); pyvips' thumbnail of the same bytes in-process.
  2. render throughput: distinct never-rendered URLs at 2 and at 16 concurrent clients;
     pyvips in 2 processes over the same photos and sizes.
  3. cached hits over the 60 URLs (20 photos x 3 sizes): wrk, 64 connections, rounds
     interleaved with nginx (sendfile) serving the same rendition bytes, and with a
     server whose memory layer is off (disk-cache hits).
Prints one table with every figure next to its reference and the ratio.
"""

import argparse
import concurrent.futures
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SIZES = (240, 640, 1440)
PASSWORD = "bench-password-123"
QUALITY = 82  # photo-server's default PHOTO_JPEG_QUALITY


def log(msg):
    print("[mixed %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def freeport():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vmhwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_files_mib(pid):
    """Bytes the server keeps in memory files (large renditions its disk
    cache could not take, sent with sendfile; none when the disk cache
    works): memory the pod's cgroup counts but the process's resident set
    does not. Read at the end of a phase: the layer only grows while nothing
    is evicted."""
    total = 0
    fds = "/proc/%d/fd" % pid
    for fd in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, fd)).startswith("/memfd:"):
                total += os.stat(os.path.join(fds, fd)).st_size
        except OSError:
            pass
    return total / (1 << 20)


def pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def size_class(megapixels):
    if megapixels < 2.5:
        return "< 2.5 MP"
    if megapixels <= 7.5:
        return "2.5-7.5 MP"
    return "> 7.5 MP"


class Server:
    """One photo-server process on 127.0.0.1 with its own cache directory."""

    def __init__(self, binary, data, name, env=None):
        self.port = freeport()
        self.metrics_port = freeport()
        self.name = name
        cache = os.path.join(data, "cache-" + name)
        shutil.rmtree(cache, ignore_errors=True)
        environment = dict(os.environ)
        environment.pop("RUST_LOG", None)
        environment.update(
            PHOTO_DATA_DIR=data,
            PHOTO_CACHE_DIR=cache,
            PHOTO_LISTEN="127.0.0.1:%d" % self.port,
            PHOTO_METRICS_LISTEN="127.0.0.1:%d" % self.metrics_port,
            PHOTO_ADMIN_PASSWORD=PASSWORD,
            PHOTO_LOG_FORMAT="json",
            PHOTO_SHUTDOWN_DELAY="0s",
        )
        environment.update(env or {})
        self.log = open(os.path.join(data, name + ".log"), "ab")
        self.proc = subprocess.Popen([binary], env=environment, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while True:
            try:
                # Ready: the database is migrated and the admin account exists.
                conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("photo-server %s did not start; see %s" % (name, self.log.name))
            time.sleep(0.1)

    def get(self, path, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, body, resp.getheader("x-cache")
        finally:
            if own:
                conn.close()

    def upload(self, paths):
        """Uploads the files (public), returns their ids in order."""
        jar = os.path.join(os.path.dirname(self.log.name), "jar-" + self.name)
        login = subprocess.run(
            ["curl", "-fsS", "-m", "30", "-c", jar, "-H", "content-type: application/json",
             "-d", json.dumps({"username": "admin", "password": PASSWORD}),
             "http://127.0.0.1:%d/rest/login" % self.port],
            check=True, capture_output=True, text=True)
        csrf = json.loads(login.stdout)["csrf"]
        ids = []
        for path in paths:
            out = subprocess.run(
                ["curl", "-fsS", "-m", "600", "-b", jar, "-H", "X-CSRF-Token: " + csrf,
                 "-F", "file=@%s;type=image/jpeg" % path, "-F", "visibility=public",
                 "http://127.0.0.1:%d/rest/edit" % self.port],
                check=True, capture_output=True, text=True)
            ids.append(json.loads(out.stdout)["photos"][0]["id"])
        return ids

    def peak_mib(self):
        return vmhwm_mib(self.proc.pid) + memory_files_mib(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------- pyvips
def vips_render(data, width):
    import pyvips

    image = pyvips.Image.thumbnail_buffer(data, width, height=10_000_000, size="down")
    return image.jpegsave_buffer(Q=QUALITY, strip=True)


def vips_worker(job):
    path, width = job
    with open(path, "rb") as f:
        data = f.read()
    vips_render(data, width)
    return 1


def vips_cold(photos, runs):
    """Median seconds per (photo, size), in this process, after one warm-up call."""
    import pyvips

    pyvips.cache_set_max(0)
    result = {}
    for photo in photos:
        data = open(photo["path"], "rb").read()
        for width in SIZES:
            vips_render(data, width)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                vips_render(data, width)
                times.append(time.perf_counter() - t)
            result[(photo["name"], width)] = statistics.median(times)
    return result


def vips_throughput(photos, seconds, processes=2):
    """Renders per second of `processes` pyvips processes working through the mixed list."""
    jobs = [(p["path"], w) for p in photos for w in SIZES]
    done = 0
    with multiprocessing.get_context("spawn").Pool(processes, initializer=_vips_init) as pool:
        pool.map(vips_worker, jobs[:processes])  # load libvips in every process
        t = time.perf_counter()
        while time.perf_counter() - t < seconds:
            done += sum(pool.map(vips_worker, jobs, chunksize=1))
        elapsed = time.perf_counter() - t
    return done / elapsed


def _vips_init():
    import pyvips

    pyvips.cache_set_max(0)


# ---------------------------------------------------------------------------- phases
def cold_phase(binary, data, photos, ids, runs):
    """Median HTTP time per (photo, size), each request a miss; the phase's peak memory."""
    times = {(p["name"], w): [] for p in photos for w in SIZES}
    peak = 0.0
    for run in range(runs):
        server = Server(binary, data, "cold")
        try:
            for photo in photos:
                for width in SIZES:
                    path = "/img/%d/%s.jpg" % (width, ids[photo["name"]])
                    t = time.perf_counter()
                    status, body, cache = server.get(path)
                    elapsed = time.perf_counter() - t
                    if status != 200 or cache != "miss":
                        raise SystemExit("cold %s: HTTP %s x-cache %s" % (path, status, cache))
                    times[(photo["name"], width)].append(elapsed)
            peak = max(peak, server.peak_mib())
        finally:
            server.stop()
        log("  cold run %d/%d done" % (run + 1, runs))
    return {k: statistics.median(v) for k, v in times.items()}, peak


def throughput_phase(binary, data, urls, concurrency, seconds):
    """Every request renders (each URL requested once). Returns renders/s, p99 s, errors, peak MiB."""
    server = Server(binary, data, "render%d" % concurrency)
    lock = threading.Lock()
    queue = list(reversed(urls))
    latencies, errors = [], 0
    stop_at = time.perf_counter() + seconds

    def worker():
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        while time.perf_counter() < stop_at:
            with lock:
                if not queue:
                    return
                path = queue.pop()
            t = time.perf_counter()
            try:
                status, _, cache = server.get(path, conn)
            except OSError:
                status, cache = 0, None
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            with lock:
                if status == 200 and cache == "miss":
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    elapsed = time.perf_counter() - t0
    peak = server.peak_mib()
    server.stop()
    if not queue and elapsed < seconds * 0.9:
        log("  WARNING: ran out of distinct URLs after %.1f s" % elapsed)
    return len(latencies) / elapsed, pct(latencies, 0.99), errors, peak


WRK_LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def wrk_round(port, script, duration, out):
    cmd = ["wrk", "-t2", "-c64", "-d%ds" % duration, "--timeout", "5s", "--latency", "-s", script,
           "http://127.0.0.1:%d" % port]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    with open(out, "w") as f:
        f.write(text)
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    p99 = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s)", text, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if bad or errs:
        log("  WARNING: %s" % (bad.group(0) if bad else errs.group(0)))
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return (float(rps.group(1)) if rps else float("nan"),
            float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"))


def wrk_script(work, paths):
    """A wrk Lua script that cycles through `paths`; returns its file."""
    list_file = os.path.join(work, "paths.txt")
    with open(list_file, "w") as f:
        f.write("\n".join(paths) + "\n")
    script = os.path.join(work, "paths.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA % list_file)
    return script


def start_nginx(work, www):
    """nginx serving `www` with sendfile, once it accepts connections:
    (process, port)."""
    port = freeport()
    conf = os.path.join(work, "nginx.conf")
    os.makedirs(os.path.join(work, "nginx-tmp"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(NGINX_CONF % dict(work=work, www=www, port=port))
    nginx = subprocess.Popen(["nginx", "-c", conf, "-p", work, "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return nginx, port


def hits_phase(binary, data, photos, ids, work, rounds, duration):
    www = os.path.join(work, "www")
    shutil.rmtree(www, ignore_errors=True)
    memory = Server(binary, data, "hits-memory")
    disk = Server(binary, data, "hits-disk", {"PHOTO_MEMORY_CACHE_BYTES": "0"})
    paths, total = [], 0
    for photo in photos:
        for width in SIZES:
            path = "/img/%d/%s.jpg" % (width, ids[photo["name"]])
            paths.append(path)
            status, body, _ = memory.get(path)
            disk.get(path)
            for server in (memory, disk):
                status2, body2, cache = server.get(path)
                if status2 != 200 or cache != "hit":
                    raise SystemExit("warming %s on %s: HTTP %s x-cache %s" % (path, server.name, status2, cache))
            os.makedirs(os.path.join(www, "img", str(width)), exist_ok=True)
            with open(os.path.join(www, path.lstrip("/")), "wb") as f:
                f.write(body)
            total += len(body)
    script = wrk_script(work, paths)
    nginx, nginx_port = start_nginx(work, www)
    try:
        results = {"ours": [], "nginx": [], "disk": []}
        ports = {"ours": memory.port, "nginx": nginx_port, "disk": disk.port}
        for r in range(rounds):
            for target in ("ours", "nginx", "disk"):
                out = os.path.join(work, "wrk.%s.%d.txt" % (target, r))
                rps, p99 = wrk_round(ports[target], script, duration, out)
                results[target].append((rps, p99))
                log("  round %d %s: %.0f req/s, p99 %.2f ms" % (r + 1, target, rps, p99))
        peaks = (memory.peak_mib(), disk.peak_mib())
    finally:
        nginx.terminate()
        nginx.wait()
        memory.stop()
        disk.stop()
    return results, total / len(paths), peaks


NGINX_CONF = """
worker_processes auto;
pid %(work)s/nginx.pid;
error_log %(work)s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path %(work)s/nginx-tmp;
  proxy_temp_path %(work)s/nginx-tmp;
  fastcgi_temp_path %(work)s/nginx-tmp;
  uwsgi_temp_path %(work)s/nginx-tmp;
  scgi_temp_path %(work)s/nginx-tmp;
  types { image/jpeg jpg; }
  server {
    listen 127.0.0.1:%(port)d;
    root %(www)s;
  }
}
"""


# ---------------------------------------------------------------------------- report
def median_round(rounds):
    """The round with the median req/s (lower middle for an even count)."""
    ordered = sorted(rounds)
    return ordered[(len(ordered) - 1) // 2]


def prepare(src, dest):
    """The mixed set: Debian mate-backgrounds' 16 JPEGs (1.3 to 17.9 MP, progressive and
    baseline) and four made from them: a 0.1 MP one, 12 and 20 MP baseline camera-like
    re-encodes of the 17.9 MP photo, and the 12 MP one stored sideways with EXIF orientation 6."""
    import pyvips

    os.makedirs(dest, exist_ok=True)
    for root, _, files in os.walk(src):
        for name in files:
            if name.lower().endswith(".jpg"):
                shutil.copyfile(os.path.join(root, name), os.path.join(dest, name))
    big = pyvips.Image.new_from_file(os.path.join(dest, "Elephants_5640x3172.jpg"))
    garden = pyvips.Image.new_from_file(os.path.join(dest, "Garden.jpg"))
    garden.resize(400 / garden.width).jpegsave(os.path.join(dest, "small-0.1mp.jpg"), Q=85)
    twelve = big.resize(0.82, kernel="lanczos3")
    twelve.jpegsave(os.path.join(dest, "camera-12mp.jpg"), Q=92)
    big.resize(1.06, kernel="lanczos3").jpegsave(os.path.join(dest, "camera-20mp.jpg"), Q=90)
    sideways = twelve.rot270().copy()
    sideways.set_type(pyvips.GValue.gint_type, "orientation", 6)
    sideways.jpegsave(os.path.join(dest, "camera-12mp-rotated.jpg"), Q=92)
    check = pyvips.Image.new_from_file(os.path.join(dest, "camera-12mp-rotated.jpg"))
    if check.get("orientation") != 6:
        raise SystemExit("the rotated photo lost its EXIF orientation")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--photos", required=True, help="JPEGs to upload (the mixed set)")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--throughput-seconds", type=int, default=15)
    args = ap.parse_args()

    import pyvips

    photos = []
    for name in sorted(os.listdir(args.photos)):
        if not name.lower().endswith(".jpg"):
            continue
        path = os.path.join(args.photos, name)
        header = pyvips.Image.new_from_file(path)
        mp = header.width * header.height / 1e6
        photos.append(dict(name=name, path=path, mp=mp, bytes=os.path.getsize(path)))
    if len(photos) < 3:
        raise SystemExit("fewer than 3 photos in %s" % args.photos)
    log("%d photos, %.1f to %.1f MP" % (len(photos), min(p["mp"] for p in photos), max(p["mp"] for p in photos)))

    data = tempfile.mkdtemp(prefix="data-", dir=args.work)
    setup = Server(args.server, data, "setup")
    ids = dict(zip([p["name"] for p in photos], setup.upload([p["path"] for p in photos])))
    # Copies for the throughput phase: every URL there must be a first request.
    copies = max(1, int(os.environ.get("MIXED_COPIES", "10")))
    extra = setup.upload([p["path"] for p in photos for _ in range(copies)])
    setup.stop()
    urls = ["/img/%d/%s.jpg" % (w, i) for i in extra for w in SIZES]
    # Shuffled (the same way every run) so every slice of the list is the mix
    # pyvips renders: all photos and sizes in their proportions. Taken in
    # upload order, the copies of one photo and the sizes would come in runs
    # (the 2-client half nearly all 240 px, the 16-client half mostly 1440).
    random.Random(14).shuffle(urls)

    log("phase 1: cold renders, %d runs, and pyvips in-process" % args.cold_runs)
    ours_cold, cold_peak = cold_phase(args.server, data, photos, ids, args.cold_runs)
    vips_cold_t = vips_cold(photos, args.cold_runs)

    log("phase 2: render throughput")
    thr = {}
    for concurrency in (2, 16):
        half = len(urls) // 2
        part = urls[:half] if concurrency == 2 else urls[half:]
        thr[concurrency] = throughput_phase(args.server, data, part, concurrency, args.throughput_seconds)
        log("  %d concurrent: %.1f renders/s, p99 %.0f ms, %d errors, peak %.0f MiB"
            % (concurrency, thr[concurrency][0], thr[concurrency][1] * 1e3, thr[concurrency][2], thr[concurrency][3]))
    vips_rate = vips_throughput(photos, args.throughput_seconds)
    log("  pyvips, 2 processes: %.1f renders/s" % vips_rate)

    log("phase 3: cached hits, %d interleaved rounds of %d s" % (args.rounds, args.duration))
    hits, mean_body, hit_peaks = hits_phase(args.server, data, photos, ids, args.work, args.rounds, args.duration)

    # ------------------------------------------------------------------ table
    rows = []
    classes = ("< 2.5 MP", "2.5-7.5 MP", "> 7.5 MP")
    for width in SIZES:
        cells = []
        for cls in classes:
            members = [p for p in photos if size_class(p["mp"]) == cls]
            if not members:
                continue
            ours = statistics.median(ours_cold[(p["name"], width)] for p in members)
            ref = statistics.median(vips_cold_t[(p["name"], width)] for p in members)
            cells.append((cls, len(members), ours, ref))
        for cls, n, ours, ref in cells:
            rows.append(("cold render to %d px, median, %s (%d photos)" % (width, cls, n),
                         "%.1f ms" % (ours * 1e3), "pyvips %.1f ms" % (ref * 1e3), ref / ours))
    worst = max(photos, key=lambda p: ours_cold[(p["name"], 640)])
    rows.append(("slowest photo to 640 px (%s, %.1f MP, %.1f MB)" % (worst["name"], worst["mp"], worst["bytes"] / 1e6),
                 "%.0f ms" % (ours_cold[(worst["name"], 640)] * 1e3),
                 "pyvips %.0f ms" % (vips_cold_t[(worst["name"], 640)] * 1e3),
                 vips_cold_t[(worst["name"], 640)] / ours_cold[(worst["name"], 640)]))
    rows.append(("render throughput, 2 concurrent", "%.1f renders/s (p99 %.0f ms, %d errors)"
                 % (thr[2][0], thr[2][1] * 1e3, thr[2][2]), "pyvips 2 processes %.1f" % vips_rate, thr[2][0] / vips_rate))
    rows.append(("render throughput, 16 concurrent", "%.1f renders/s (p99 %.0f ms, %d errors)"
                 % (thr[16][0], thr[16][1] * 1e3, thr[16][2]), "pyvips 2 processes %.1f" % vips_rate, thr[16][0] / vips_rate))
    rows.append(("peak memory (VmHWM): cold renders / 2 / 16 concurrent", "%.0f / %.0f / %.0f MiB"
                 % (cold_peak, thr[2][3], thr[16][3]), "goal 200 MB", None))
    ours_rps, ours_p99 = median_round(hits["ours"])
    ng_rps, ng_p99 = median_round(hits["nginx"])
    disk_rps, disk_p99 = median_round(hits["disk"])
    rows.append(("cached hits, %d URLs, mean body %.0f KB, median of %d rounds" % (len(photos) * 3, mean_body / 1e3, args.rounds),
                 "%.0f req/s, p99 %.2f ms" % (ours_rps, ours_p99), "nginx sendfile %.0f req/s, p99 %.2f ms" % (ng_rps, ng_p99),
                 ours_rps / ng_rps))
    rows.append(("disk-cache hits (memory layer off)", "%.0f req/s, p99 %.2f ms" % (disk_rps, disk_p99),
                 "nginx sendfile %.0f req/s" % ng_rps, disk_rps / ng_rps))
    rows.append(("every round (req/s): ours / nginx / disk", " ".join("%.0f" % r for r, _ in hits["ours"]),
                 " ".join("%.0f" % r for r, _ in hits["nginx"]) + " / " + " ".join("%.0f" % r for r, _ in hits["disk"]), None))
    rows.append(("peak memory during hits (resident + memory files): memory layer / disk only", "%.0f / %.0f MiB" % hit_peaks, "", None))

    print("| figure | photo-server | reference | ratio (reference time / ours, or ours / reference rate) |")
    print("|---|---|---|---|")
    for name, ours, ref, ratio in rows:
        print("| %s | %s | %s | %s |" % (name, ours, ref, "" if ratio is None else "%.2f" % ratio))
    print()
    print("Machine: %d cores, load at end %s; photos: %d, %.1f-%.1f MP; ratios above 1 favour photo-server."
          % (os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3]), len(photos),
             min(p["mp"] for p in photos), max(p["mp"] for p in photos)))


if __name__ == "__main__":
    main()
