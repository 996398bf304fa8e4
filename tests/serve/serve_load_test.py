#!/usr/bin/env python3
"""tests/serve/serve_load_test.py: a bounded load test of `attn serve`.

Proves that under concurrent load (--clients threads x --requests each, against --workers 1
--queue 64) every good upload is answered 200 with the same predictions as when the server was
idle, every /api/map on a returned id gives the idle server's map, every bad upload (garbage,
truncated PNG, empty body) is a 4xx JSON error, the server's memory stays flat (VmRSS after each
round within 1.2x of after the warm-up, which ends with a short concurrent round that fills the
LRU cache), and the server
still answers /api/health afterwards. Prints requests/s, p50/p99 latency per kind and RSS.
Separately, with --workers 1 --queue 0, concurrent analyses beyond the one slot get 503 with
Retry-After and a JSON error while the others get 200.

  /usr/bin/python3 tests/serve/serve_load_test.py --attn build/apps/attn --root . [--clients 8 --requests 50]
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_support import Checks, Server, compare_json, compare_predictions, parse_args, request  # noqa: E402

# Ten images to upload (the warm-up analyses each once): six items, four scenes.
GOOD_FILES = [f"samples/fashion/{n}" for n in ("test0000-ankle-boot.png", "test0001-pullover.png",
                                               "test0002-trouser.png", "test0004-shirt.png",
                                               "test0006-coat.png", "test0008-sandal.png")] + \
             [f"samples/scenes/scene_00000{i}.png" for i in range(4)]
# /api/map queries and the analysis map each must equal (None: only 200 and the method).
MAP_QUERIES = [("method=rollout", "rollout", "rollout"), ("method=grad-rollout", "grad-rollout", "grad-rollout"),
               ("method=cls&layer=all&head=all", "cls", "cls"), ("method=gradcam", "gradcam", None)]
REQUEST_TIMEOUT_S = 300  # a full queue under AddressSanitizer can be slow; a hang is still caught


def read(root, path):
    with open(os.path.join(root, path), "rb") as f:
        return f.read()


def bad_bodies(root):
    """The bad uploads: (kind, body). Each must give a 4xx JSON error."""
    garbage = bytes(random.Random(99).randrange(256) for _ in range(3000))
    return [("garbage", garbage), ("truncated PNG", read(root, GOOD_FILES[-1])[:100]), ("empty body", b"")]


class AnalysisCounter:
    """Analyses answered so far, over all clients: tells a legitimate LRU eviction (404 after at
    least `capacity` newer analyses) from an id the server lost too early."""

    def __init__(self):
        self.count, self.lock = 0, threading.Lock()

    def add(self, n=1):
        with self.lock:
            self.count += n
            return self.count


def client(srv, seed, count, files, warm, bad, counter, capacity, clients):
    """One client thread's requests; returns (latencies by kind, failures, evicted ids)."""
    rnd = random.Random(seed)
    lat, failures, last, evicted = {"good": [], "bad": [], "map": []}, [], None, 0
    for _ in range(count):
        roll = rnd.random()
        try:
            if roll < 0.5 or (roll >= 0.75 and last is None):
                path = rnd.choice(GOOD_FILES)
                r = request(srv, "POST", "/api/analyze?topk=5", files[path], timeout=REQUEST_TIMEOUT_S)
                lat["good"].append(r.elapsed)
                diffs = compare_predictions(r.json().get("predictions"), warm[path]["predictions"]) \
                    if r.status == 200 else [r.describe()]
                if diffs:
                    failures.append(f"good {path}: {diffs[:2]}")
                else:
                    last = (r.json()["id"], path, counter.add())
            elif roll < 0.75:
                kind, body = rnd.choice(bad)
                r = request(srv, "POST", "/api/analyze", body, timeout=REQUEST_TIMEOUT_S)
                lat["bad"].append(r.elapsed)
                if not (400 <= r.status < 500 and r.is_json_error()):
                    failures.append(f"bad {kind}: {r.describe()}")
            else:
                query, method, key = rnd.choice(MAP_QUERIES)
                r = request(srv, "GET", f"/api/map?id={last[0]}&{query}", timeout=REQUEST_TIMEOUT_S)
                lat["map"].append(r.elapsed)
                # Up to `clients` analyses may be answered but not yet counted by their threads.
                if r.status == 404 and counter.add(0) + clients - last[2] >= capacity and r.is_json_error():
                    evicted, last = evicted + 1, None  # fairly evicted by newer analyses: the contract's 404
                elif r.status != 200:
                    failures.append(f"map {query} on {last[1]} ({counter.add(0) - last[2]} analyses since "
                                    f"its last use, cache {capacity}): {r.describe()}")
                else:
                    doc = r.json()
                    diffs = compare_json(doc, warm[last[1]]["maps"][key], "$", 1e-5, 1e-6) if key else \
                        ([] if doc.get("method") == method else [f"method {doc.get('method')!r}"])
                    last = (last[0], last[1], counter.add(0))  # a map is a use: LRU keeps it longer
                    if diffs:
                        failures.append(f"map {query} on {last[1]}: {diffs[:2]}")
        except Exception as e:  # noqa: BLE001 - a timeout or a dropped connection is a failure
            failures.append(f"{type(e).__name__}: {e}")
    return lat, failures, evicted


def percentile(values, q):
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_round(c, srv, name, args, files, warm, bad, capacity):
    start, counter = time.monotonic(), AnalysisCounter()
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        results = list(pool.map(lambda i: client(srv, 1000 * i + 7, args.requests, files, warm, bad,
                                                 counter, capacity, args.clients), range(args.clients)))
    elapsed = time.monotonic() - start
    lat = {k: [x for r in results for x in r[0][k]] for k in ("good", "bad", "map")}
    failures = [f for r in results for f in r[1]]
    total = sum(len(v) for v in lat.values())
    print(f"{name}: {total} requests in {elapsed:.1f} s = {total / elapsed:.1f} requests/s "
          f"({sum(r[2] for r in results)} maps found their id evicted by {capacity}+ newer analyses: 404, fine)")
    for kind, values in lat.items():
        ms = [v * 1000 for v in values]
        print(f"  {kind:5s} n={len(ms):4d}  p50 {percentile(ms, 50):8.1f} ms  p99 {percentile(ms, 99):8.1f} ms")
    c.check(f"{name}: every request answered as expected ({total} requests)", not failures,
            f"{len(failures)} failures, first: {failures[:5]}")
    c.check(f"{name}: server alive", srv.alive(), srv.stderr_tail())


def load_test(c, args):
    files = {p: read(args.root, p) for p in GOOD_FILES}
    bad = bad_bodies(args.root)
    with Server(args.attn, args.root, ["--workers", "1", "--queue", "64"]) as srv:
        warm = {}
        for path in GOOD_FILES:  # the warm-up: ten analyses, one per file, the expected answers
            r = request(srv, "POST", "/api/analyze?topk=5", files[path], timeout=REQUEST_TIMEOUT_S)
            if r.status != 200:
                c.check(f"warm-up {path}", False, r.describe())
                return
            warm[path] = r.json()
        c.check("warm-up: 10 analyses", len(warm) == len(GOOD_FILES))
        capacity = request(srv, "GET", "/api/health").json()["cache"]["capacity"]
        # The warm-up ends with a short concurrent round: it fills the LRU cache and gives each
        # connection thread its allocator arena, the memory a long-running server holds anyway.
        run_round(c, srv, "warm-up round", argparse.Namespace(clients=args.clients, requests=10),
                  files, warm, bad, capacity)
        rss_warm = srv.rss_kb()
        run_round(c, srv, "round 1", args, files, warm, bad, capacity)
        rss1 = srv.rss_kb()
        run_round(c, srv, "round 2", args, files, warm, bad, capacity)
        rss2 = srv.rss_kb()
        print(f"VmRSS: after warm-up {rss_warm / 1024:.1f} MiB, after round 1 {rss1 / 1024:.1f} MiB, "
              f"after round 2 {rss2 / 1024:.1f} MiB ({rss2 / rss_warm:.3f}x warm-up, "
              f"{rss2 / rss1:.3f}x round 1)")
        c.check("memory flat: RSS after the rounds <= 1.2x RSS after warm-up",
                max(rss1, rss2) <= 1.2 * rss_warm, f"{rss_warm} KiB -> {rss1} KiB -> {rss2} KiB")
        r = request(srv, "GET", "/api/health")
        work = r.json().get("work", {}) if r.status == 200 else {}
        c.check("after the load: /api/health 200, nothing running or waiting",
                r.status == 200 and work.get("running") == 0 and work.get("waiting") == 0, r.describe())


def busy_test(c, args, concurrency=6, attempts=3):
    """--workers 1 --queue 0: one analysis at a time; the rest must be turned away with 503."""
    photo = read(args.root, "samples/astronaut.jpg")
    with Server(args.attn, args.root, ["--workers", "1", "--queue", "0"]) as srv:
        for attempt in range(1, attempts + 1):
            barrier = threading.Barrier(concurrency)

            def one(_):
                # Connect first, so all requests leave together after the barrier.
                conn = http.client.HTTPConnection(srv.host, srv.port, timeout=REQUEST_TIMEOUT_S)
                conn.connect()
                barrier.wait()
                conn.request("POST", "/api/analyze", photo, {"Content-Type": "image/jpeg"})
                resp = conn.getresponse()
                body, headers = resp.read(), {k.lower(): v for k, v in resp.getheaders()}
                conn.close()
                return resp.status, headers, body

            with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
                replies = list(pool.map(one, range(concurrency)))
            statuses = [s for s, _, _ in replies]
            print(f"busy attempt {attempt}: statuses {statuses}")
            if 503 in statuses:
                break
        busy = [(h, b) for s, h, b in replies if s == 503]
        c.check("queue 0: at least one 503 and one 200, nothing else", busy and 200 in statuses
                and set(statuses) <= {200, 503}, f"statuses {statuses}")

        def good_503(h, b):
            try:
                return (h.get("retry-after", "").strip().isdigit() and h.get("content-type", "").startswith(
                    "application/json") and isinstance(json.loads(b).get("error"), str))
            except ValueError:
                return False
        c.check("queue 0: each 503 has Retry-After and a JSON error", busy and all(good_503(h, b) for h, b in busy),
                [(h, b[:100]) for h, b in busy[:2]])
        c.check("queue 0 server alive", srv.alive(), srv.stderr_tail())


def main():
    def extra(parser):
        parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
        parser.add_argument("--requests", type=int, default=50, help="requests per client per round")
    args = parse_args(__doc__.splitlines()[0], extra)
    c = Checks()
    c.guard("load test", load_test, c, args)
    c.guard("busy test", busy_test, c, args)
    c.finish("serve_load_test")


if __name__ == "__main__":
    main()
