#!/usr/bin/env python3
"""Cached-hit rates of two or more photo-server builds against nginx, in
interleaved rounds of one run: the A/B behind a change to the hit path.

    python3 bench/ab-hits.py "old=/path/to/old/photo-server;new=target/release/photo-server" [rounds] [seconds]

Each build gets its own server over one shared data directory (uploaded
once by the first build), every rendition rendered and hit once, then wrk
(64 connections over the 60 URLs, as bench/mixed.py) runs on each server and
on nginx serving the same bytes, in turn, the order reversed every other
round. A build may carry environment settings: `name=binary:VAR=value,...`.
AB_MEMORY sets PHOTO_MEMORY_CACHE_BYTES for every server ("default" keeps
the server's default; 0, the default here, measures disk-cache hits).

Needs the photos of `bash bench/mixed.sh` (bench/work/mixed/photos), wrk and
nginx. Prints each round and the medians with their ratio to nginx.
"""
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mixed import SIZES, Server, start_nginx, wrk_round, wrk_script  # noqa: E402

PHOTOS = os.path.join(HERE, "work", "mixed", "photos")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if not os.path.isdir(PHOTOS):
        sys.exit("no photos in %s: run `bash bench/mixed.sh` once first" % PHOTOS)
    specs = []
    for spec in sys.argv[1].split(";"):
        name, rest = spec.split("=", 1)
        binary, _, envs = rest.partition(":")
        specs.append((name, binary, dict(e.split("=", 1) for e in envs.split(",") if e)))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    duration = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    memory = os.environ.get("AB_MEMORY", "0")
    base_env = {} if memory == "default" else {"PHOTO_MEMORY_CACHE_BYTES": memory}

    work = tempfile.mkdtemp(prefix="ab-hits-", dir=os.path.join(HERE, "work"))
    os.chmod(work, 0o755)
    data = os.path.join(work, "data")
    os.makedirs(data)
    names = sorted(n for n in os.listdir(PHOTOS) if n.endswith(".jpg"))
    setup = Server(specs[0][1], data, "setup")
    ids = setup.upload([os.path.join(PHOTOS, n) for n in names])
    setup.stop()
    servers = [Server(binary, data, name, dict(base_env, **env)) for name, binary, env in specs]
    www = os.path.join(work, "www")
    paths = []
    try:
        for photo in ids:
            for width in SIZES:
                path = "/img/%d/%s.jpg" % (width, photo)
                paths.append(path)
                for server in servers:
                    server.get(path)
                    status, body, cache = server.get(path)
                    assert status == 200 and cache == "hit", (server, path, status, cache)
                os.makedirs(os.path.join(www, "img", str(width)), exist_ok=True)
                with open(os.path.join(www, path.lstrip("/")), "wb") as f:
                    f.write(body)
        script = wrk_script(work, paths)
        nginx, port = start_nginx(work, www)
        results = {name: [] for name in ["nginx"] + [name for name, _, _ in specs]}
        try:
            for r in range(rounds):
                order = [(name, s.port) for (name, _, _), s in zip(specs, servers)] + [("nginx", port)]
                if r % 2:
                    order.reverse()
                for name, target in order:
                    out = os.path.join(work, "wrk.%s.%d.txt" % (name, r))
                    rps, p99 = wrk_round(target, script, duration, out)
                    results[name].append(rps)
                    print("round %d %-8s %8.0f req/s, p99 %.2f ms" % (r + 1, name, rps, p99), flush=True)
        finally:
            nginx.terminate()
            nginx.wait()
    finally:
        for server in servers:
            server.stop()
    reference = statistics.median(results["nginx"])
    for name, rates in results.items():
        median = statistics.median(rates)
        print("%-8s median %8.0f req/s (%s)  ratio to nginx %.3f"
              % (name, median, " ".join("%.0f" % x for x in rates), median / reference))


if __name__ == "__main__":
    main()
