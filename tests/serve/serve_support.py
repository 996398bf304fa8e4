"""tests/serve/serve_support.py: helpers shared by the `attn serve` end-to-end tests.

Starts the real server (`attn serve --port 0 ... samples/fashion samples/scenes`, cwd = the repo
root so the default models in weights/ are found), reads its URL from the first stdout line, and
always stops it; sends requests with a timeout; compares JSON documents with a numeric tolerance;
writes and reads PNGs in plain Python; and keeps the tally of checks (one printed line per check,
exit status 1 when any failed). Standard library only: run by Debian's /usr/bin/python3.
"""

import argparse
import http.client
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

URL_RE = re.compile(r"http://[^ ]+/")
START_TIMEOUT_S = 60  # the server may run under AddressSanitizer: slow to start

# Every response any helper saw that carried a CORS header: the contract says there are none.
CORS_SEEN = []
_cors_lock = threading.Lock()


def parse_args(description, extra=None):
    """--attn PATH --root REPO_ROOT, plus the caller's own options (extra(parser))."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--attn", required=True, help="the attn binary")
    parser.add_argument("--root", required=True, help="the repository root")
    if extra:
        extra(parser)
    args = parser.parse_args()
    args.attn = os.path.abspath(args.attn)
    args.root = os.path.abspath(args.root)
    return args


class Server:
    """One `attn serve` process. Use as a context manager: it is stopped on every exit path."""

    def __init__(self, attn, root, options=(), dirs=("samples/fashion", "samples/scenes")):
        self.command = [attn, "serve", "--port", "0", *options, *[os.path.join(root, d) for d in dirs]]
        # stderr goes to a file, so a crash (an ASan report) can be shown in full afterwards.
        self.stderr_file = tempfile.NamedTemporaryFile(prefix="attn-serve-", suffix=".stderr",
                                                       delete=False)
        self.proc = subprocess.Popen(self.command, cwd=root, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr_file)
        self.pid = self.proc.pid
        first = self._first_line()
        match = URL_RE.search(first)
        if not match:
            self.stop()
            raise RuntimeError(f"server's first stdout line has no URL: {first!r}\n{self.stderr_tail()}")
        self.url = match.group(0)
        hostport = self.url[len("http://"):-1]
        self.host, _, port = hostport.rpartition(":")
        self.port = int(port)
        # Keep draining stdout, so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _first_line(self):
        box = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not box or not box[0]:
            self.stop()
            raise RuntimeError(f"no URL on the server's stdout within {START_TIMEOUT_S} s "
                               f"(exit code {self.proc.returncode}): {' '.join(self.command)}\n"
                               f"{self.stderr_tail()}")
        return box[0].decode("utf-8", "replace")

    def _drain(self):
        for _ in iter(self.proc.stdout.readline, b""):
            pass

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self, chars=4000):
        try:
            with open(self.stderr_file.name, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "server stderr (tail):\n" + text[-chars:] if text.strip() else "server stderr: (empty)"

    def rss_kb(self):
        """The server's resident set size (VmRSS) in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/PID/status")

    def stop(self):
        """Stops the server; returns its exit code if it had already died (a crash), else None."""
        died = self.proc.poll()
        if died is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return died

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        died = self.stop()
        if died is not None:
            how = f"signal {-died} (not sent by this test)" if died < 0 else f"exit code {died}"
            print(f"FAIL  server had stopped by itself: {how}\n{self.stderr_tail()}")
        try:
            os.unlink(self.stderr_file.name)
        except OSError:
            pass
        return False


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def content_type(self):
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def is_json_error(self):
        """A JSON error reply as the contract defines it: application/json, {"error": "..."}."""
        try:
            doc = self.json()
        except ValueError:
            return False
        return (self.content_type() == "application/json" and isinstance(doc, dict)
                and isinstance(doc.get("error"), str) and doc["error"] != "")

    def describe(self):
        return f"{self.status} {self.content_type()} {self.body[:200]!r}"


def request(server, method, path, body=None, headers=None, timeout=60):
    """One request on a fresh connection; returns a Response (headers lower-cased)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    start = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        result = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data,
                          time.monotonic() - start)
    finally:
        conn.close()
    cors = [k for k in result.headers if k.startswith("access-control-")]
    if cors:
        with _cors_lock:
            CORS_SEEN.append(f"{method} {path}: {cors}")
    return result


def multipart(field, filename, data, content_type="application/octet-stream",
              boundary="----attnkit-test-boundary-7d3a9"):
    """A multipart/form-data body by hand; returns (body, Content-Type header value)."""
    body = (f"--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"note\"\r\n\r\nnot the file\r\n"
            f"--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def compare_json(got, want, path="$", abs_tol=1e-5, rel_tol=0.0, ignore_keys=(), limit=5):
    """Differences between two JSON values (a list of strings, empty when they agree).

    Strings, bools, None, ints and dict keys must agree exactly; floats agree within
    abs_tol + rel_tol * |want|; keys in ignore_keys are skipped on both sides."""
    diffs = []

    def walk(g, w, p):
        if len(diffs) >= limit:
            return
        if isinstance(w, bool) or isinstance(g, bool) or w is None or g is None:
            if g is not w and g != w or type(g) is not type(w):
                diffs.append(f"{p}: got {g!r}, want {w!r}")
        elif isinstance(w, (int, float)) and isinstance(g, (int, float)):
            if isinstance(w, int) and isinstance(g, int):
                if g != w:
                    diffs.append(f"{p}: got {g}, want {w}")
            elif not abs(g - w) <= abs_tol + rel_tol * abs(w):
                diffs.append(f"{p}: got {g!r}, want {w!r} (|diff| {abs(g - w):.3g})")
        elif isinstance(w, str) or isinstance(g, str):
            if g != w:
                diffs.append(f"{p}: got {g!r}, want {w!r}")
        elif isinstance(w, list) and isinstance(g, list):
            if len(g) != len(w):
                diffs.append(f"{p}: length {len(g)}, want {len(w)}")
                return
            for i, (a, b) in enumerate(zip(g, w)):
                walk(a, b, f"{p}[{i}]")
        elif isinstance(w, dict) and isinstance(g, dict):
            gk = set(g) - set(ignore_keys)
            wk = set(w) - set(ignore_keys)
            if gk != wk:
                diffs.append(f"{p}: keys differ: extra {sorted(gk - wk)}, missing {sorted(wk - gk)}")
            for k in sorted(gk & wk):
                walk(g[k], w[k], f"{p}.{k}")
        else:
            diffs.append(f"{p}: got {type(g).__name__} {str(g)[:60]}, want {type(w).__name__}")

    walk(got, want, path)
    return diffs


def compare_predictions(got, want):
    """attn classify's predictions: rank/index/label exact, probability within 1e-6 relative."""
    return compare_json(got, want, "$.predictions", abs_tol=1e-12, rel_tol=1e-6)


# ---------------------------------------------------------------- PNG in plain Python

def make_png(width, height, seed=0):
    """A valid 8-bit grey PNG of width x height with a simple pattern."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload +
                struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes((x * 7 + y * 13 + seed) & 0xFF for x in range(width))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_size(data):
    """(width, height) from a PNG's IHDR."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def png_pixels(data):
    """(width, height, channels, raw unfiltered bytes) of a non-interlaced 8-bit PNG, for telling
    'the same pixels, other bytes' from 'other pixels' when two PNG files differ."""
    pos, idat, header = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + n
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or interlace:
        raise ValueError("only 8-bit non-interlaced PNGs")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw, stride, out, prev = zlib.decompress(idat), width * channels, bytearray(), bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += line
        prev = line
    return width, height, channels, bytes(out)


# ---------------------------------------------------------------- the tally of checks

class Checks:
    """One printed line per check; failures are collected so one run reports all of them."""

    def __init__(self):
        self.passed, self.failures = 0, []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failures.append(f"{name}: {detail}")
            print(f"FAIL  {name}: {detail}")
        sys.stdout.flush()
        return ok

    def guard(self, name, fn, *args):
        """Runs a group of checks; an exception (timeout, refused connection) fails the group."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - any error is a failed check, reported by name
            self.check(name, False, f"{type(e).__name__}: {e}")
            return None

    def finish(self, title):
        print(f"{title}: {self.passed} checks passed, {len(self.failures)} failed")
        for failure in self.failures:
            print(f"  FAILED {failure}")
        sys.exit(1 if self.failures else 0)
