#!/usr/bin/env python3
"""Helpers for bench/run.sh: parsing, timing, statistics and the final report.

Results are appended by run.sh to a TSV file (key<TAB>value); `report` reads it back.

Subcommands:
  freeport                          print a free TCP port on 127.0.0.1
  wrk FILE                          parse `wrk --latency` output -> "rps p50_ms p99_ms non2xx errors"
  json-get KEY [KEY...]             read JSON from stdin, print the value at the path (e.g. photos 0 id)
  ids                               read an upload response from stdin, print one photo id per line
  metrics-render FILE [SIZE]        sum of photo_render_duration_seconds _sum and _count (optionally one size)
  timecmd N CMD...                  run CMD N times (after 1 warm-up), print the median wall time in seconds
  median V...                       median of the numbers
  stats V...                        "median min max" of the numbers
  vmhwm PID                         VmHWM of PID in KiB
  cpu PID...                        CPU seconds (user+system) used so far by the PIDs and their children
  report RESULTS_TSV                print the summary table
"""
import json
import re
import socket
import statistics
import subprocess
import sys
import time


def freeport():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(path):
    out = open(path).read()
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    nerr = sum(int(x) for x in errs.groups()) if errs else 0
    print(
        "%s %s %s %d %d"
        % (
            rps.group(1) if rps else "nan",
            "%.3f" % _ms(p50.group(1)) if p50 else "nan",
            "%.3f" % _ms(p99.group(1)) if p99 else "nan",
            int(non2xx.group(1)) if non2xx else 0,
            nerr,
        )
    )


def json_get(keys):
    v = json.load(sys.stdin)
    for k in keys:
        v = v[int(k)] if isinstance(v, list) else v[k]
    print(v if not isinstance(v, (dict, list)) else json.dumps(v))


def ids():
    v = json.load(sys.stdin)
    for p in v["photos"]:
        print(p["id"])


def metrics_render(path, size=None):
    total = 0.0
    count = 0.0
    for line in open(path):
        if not line.startswith("photo_render_duration_seconds_"):
            continue
        m = re.match(r"photo_render_duration_seconds_(sum|count)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        labels = m.group(2) or ""
        if size is not None and not re.search(r'="%s"' % re.escape(size), labels):
            continue
        if m.group(1) == "sum":
            total += float(m.group(3))
        else:
            count += float(m.group(3))
    print("%.6f %d" % (total, count))


def timecmd(n, cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    print("%.6f" % statistics.median(times))


def cputicks(pids):
    """utime+stime (all threads) of the PIDs and of their direct children, in seconds."""
    import os
    want = set(pids)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open("/proc/%s/stat" % entry).read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] in pids:  # ppid
                want.add(entry)
    total = 0
    for pid in want:
        try:
            fields = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    print("%.3f" % (total / os.sysconf("SC_CLK_TCK")))


def vmhwm(pid):
    try:
        lines = open("/proc/%s/status" % pid).readlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("VmHWM:"):
            print(line.split()[1])
            return
    print("nan")


def _f(x, fmt="%.1f"):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if v != v:
        return "n/a"
    return fmt % v


def _ratio(a, b):
    try:
        a, b = float(a), float(b)
        if b == 0 or a != a or b != b:
            return float("nan")
        return a / b
    except (TypeError, ValueError):
        return float("nan")


def report(path):
    r = {}
    for line in open(path):
        line = line.rstrip("\n")
        if "\t" in line:
            k, v = line.split("\t", 1)
            r[k] = v
    g = r.get
    rows = []  # (section, measure, photo-server, reference, ratio, target, verdict)
    verdicts = []

    def verdict(ok):
        if ok is None:
            return "n/a"
        verdicts.append(ok)
        return "PASS" if ok else "FAIL"

    # 1. cached hits
    for size in ("240", "1440"):
        for variant, label in (("mem", "memory cache (default)"), ("disk", "PHOTO_MEMORY_CACHE_BYTES=0")):
            ps = g("hit.%s.%s.rps" % (variant, size))
            ng = g("hit.nginx.%s.rps" % size)
            ratio = _ratio(ps, ng)
            ok = None if ratio != ratio else ratio >= 0.90
            rows.append(
                (
                    "1 cached hit" if (size, variant) == ("240", "mem") else "",
                    "/img/%s req/s, %s" % (size, label),
                    _f(ps, "%.0f"),
                    _f(ng, "%.0f") + " nginx",
                    _f(ratio, "%.2f"),
                    ">= 0.90",
                    verdict(ok) if variant == "mem" else ("info" if ok is None else ("ok" if ok else "below")),
                )
            )
            cpu_ps = g("hit.%s.%s.cpu_us" % (variant, size))
            cpu_ng = g("hit.nginx.%s.cpu_us" % size)
            rows.append(
                (
                    "",
                    "  server CPU us/request (ratio nginx/ps)",
                    _f(cpu_ps, "%.0f"),
                    _f(cpu_ng, "%.0f"),
                    _f(_ratio(cpu_ng, cpu_ps), "%.2f"),
                    "",
                    "",
                )
            )
            rows.append(
                (
                    "",
                    "  p50 / p99 latency ms",
                    "%s / %s" % (_f(g("hit.%s.%s.p50" % (variant, size)), "%.2f"), _f(g("hit.%s.%s.p99" % (variant, size)), "%.2f")),
                    "%s / %s" % (_f(g("hit.nginx.%s.p50" % size), "%.2f"), _f(g("hit.nginx.%s.p99" % size), "%.2f")),
                    "",
                    "",
                    "",
                )
            )
    # 2. cold renders
    for mp in ("12", "24"):
        for size in ("240", "640", "1440", "2048"):
            http = g("cold.%s.%s.http" % (mp, size))
            srv = g("cold.%s.%s.render" % (mp, size))
            vips = g("cold.%s.%s.vips" % (mp, size))
            ratio = _ratio(http, vips)
            target = ""
            v = ""
            if mp == "12" and size == "1440":
                target = "<= 1.50"
                v = verdict(None if ratio != ratio else ratio <= 1.5)
            rows.append(
                (
                    "2 cold render" if (mp, size) == ("12", "240") else "",
                    "%s MP -> %s px: HTTP ms (render ms)" % (mp, size),
                    "%s (%s)" % (_f(_ratio(http, 0.001), "%.0f"), _f(_ratio(srv, 0.001), "%.0f")),
                    _f(_ratio(vips, 0.001), "%.0f") + " vipsthumbnail",
                    "%s (%s)" % (_f(ratio, "%.2f"), _f(_ratio(srv, vips), "%.2f")),
                    target,
                    v,
                )
            )
    # 3. uploads
    for mode in ("seq", "par4"):
        rows.append(
            (
                "3 upload" if mode == "seq" else "",
                "%s x %s MB, %s" % (g("up.%s.n" % mode, "?"), _f(g("up.size_mb"), "%.1f"), "sequential" if mode == "seq" else "4 in parallel"),
                "%s MB/s, %s/s" % (_f(g("up.%s.mbps" % mode), "%.1f"), _f(g("up.%s.ups" % mode), "%.2f")),
                "",
                "",
                "",
                "%s/%s ok" % (g("up.%s.ok" % mode, "?"), g("up.%s.n" % mode, "?")),
            )
        )
    # 4. memory
    hwm = g("rss.render_hwm_kib")
    rows.append(
        (
            "4 memory",
            "peak RSS, %s concurrent cold 1440 of 24 MP" % g("rss.n", "32"),
            _f(_ratio(hwm, 1024), "%.0f") + " MB",
            "",
            "",
            "< 300 MB",
            verdict(None if hwm is None else float(hwm) / 1024 < 300),
        )
    )
    rows.append(
        (
            "",
            "  responses 200 / 503 / other; wall s",
            "%s / %s / %s; %s" % (g("rss.200", "?"), g("rss.503", "?"), g("rss.other", "?"), _f(g("rss.wall"), "%.1f")),
            "",
            "",
            "",
            "",
        )
    )
    rows.append(
        (
            "",
            "  peak RSS while uploading the %s photos" % g("rss.n", "32"),
            _f(_ratio(g("rss.upload_hwm_kib"), 1024), "%.0f") + " MB",
            "",
            "",
            "",
            "",
        )
    )

    # 5. instructions per cached hit
    if g("instr.photo-server"):
        rows.append(
            (
                "5 CPU work",
                "instructions per cached /img/240 hit (callgrind, user space)",
                _f(g("instr.photo-server"), "%.0f"),
                _f(g("instr.nginx"), "%.0f") + " nginx",
                _f(_ratio(g("instr.photo-server"), g("instr.nginx")), "%.2f"),
                "",
                "info",
            )
        )

    headers = ("test", "measure", "photo-server", "reference", "ratio", "target", "result")
    widths = [max(len(str(row[i])) for row in rows + [headers]) for i in range(len(headers))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print(line)
    for row in rows:
        if row[0] and row is not rows[0]:
            print(line)
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print(line)
    for note in ("note.photos", "note.machine", "note.method"):
        if g(note):
            print(g(note))
    if int(g("deaths", "0") or 0):
        print("WARNING: %s server process(es) died during the run and were restarted:" % g("deaths"))
        for k in sorted(r):
            if k.startswith("death."):
                print("  " + r[k])
    passed = sum(1 for v in verdicts if v)
    print("targets: %d PASS, %d FAIL" % (passed, len(verdicts) - passed))


def main(argv):
    cmd = argv[1]
    if cmd == "freeport":
        freeport()
    elif cmd == "wrk":
        wrk(argv[2])
    elif cmd == "json-get":
        json_get(argv[2:])
    elif cmd == "ids":
        ids()
    elif cmd == "metrics-render":
        metrics_render(argv[2], argv[3] if len(argv) > 3 else None)
    elif cmd == "timecmd":
        timecmd(int(argv[2]), argv[3:])
    elif cmd == "median":
        print("%.6f" % statistics.median(float(x) for x in argv[2:]))
    elif cmd == "stats":
        xs = [float(x) for x in argv[2:]]
        print("%.6f %.6f %.6f" % (statistics.median(xs), min(xs), max(xs)))
    elif cmd == "cpu":
        cputicks(argv[2:])
    elif cmd == "vmhwm":
        vmhwm(argv[2])
    elif cmd == "report":
        report(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
