#!/usr/bin/env python3
"""tests/serve/serve_malformed_test.py: malformed HTTP cannot crash or wedge `attn serve`.

Sends a scripted corpus of broken requests over raw sockets (garbage, bad request lines, a 100 KB
URL, 10,000 headers, bad Content-Length and chunk sizes, broken multipart, NUL bytes and bad
percent-encoding in the path, HTTP/0.9, pipelining) and 200 seeded random mutations of a valid
upload. Proves that each reply, if any, is an HTTP status line with a 4xx status (200 only where
the request is still valid: the first of a pipelined pair, a mutation that left the upload intact), that the
server closes the connection (no request holds it past 10 s), that after every case the process
is alive and GET /api/health answers 200, and that a client trickling an upload body one byte
per second (the body's deadline), or sending nothing (the read timeout, --timeout 1), is dropped
within about 10 s, while a client trickling headers holds one connection and no more.

  /usr/bin/python3 tests/serve/serve_malformed_test.py --attn build/apps/attn --root .
"""

import concurrent.futures
import json
import os
import random
import re
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_support import Checks, Server, parse_args, request  # noqa: E402

REPLY_TIMEOUT_S = 10
# Besides 4xx, the two 5xx statuses HTTP defines for exactly these inputs are accepted: 501 for
# a method the server does not know, 505 for an HTTP version it does not speak (RFC 9110 15.6).
PROTOCOL_5XX = {501, 505}
STATUS_RE = re.compile(rb"^HTTP/1\.[01] (\d{3})")


IDLE_AFTER_REPLY_S = 1.0  # once whole replies are in, this long without more data ends the read
TALLY_LOCK = threading.Lock()  # the random cases run four at a time


def exchange(srv, data, half_close=False):
    """Sends data on a fresh connection and reads until the server closes it, or until whole
    replies are in and nothing more comes for IDLE_AFTER_REPLY_S (a kept-alive connection).
    half_close: shut our sending side afterwards (a client that gives up mid-request); not the
    default, because cpp-httplib writes no reply to a half-closed client.
    Returns (reply bytes, closed by the server?)."""
    sock = socket.create_connection((srv.host, srv.port), timeout=REPLY_TIMEOUT_S)
    try:
        for n, part in enumerate(data if isinstance(data, list) else [data]):
            time.sleep(0.5 if n else 0)  # a list: its parts half a second apart (separate reads)
            sock.sendall(part)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may answer and close before reading everything (a 414, a 413)
    raw, closed, deadline = b"", False, time.monotonic() + REPLY_TIMEOUT_S
    while time.monotonic() < deadline:
        wait = deadline - time.monotonic()
        if raw and parse_replies(raw)[3]:
            wait = min(wait, IDLE_AFTER_REPLY_S)
        sock.settimeout(max(0.01, wait))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:  # reset: closed, whatever was received is kept
            closed = True
            break
        if not chunk:
            closed = True
            break
        raw += chunk
    sock.close()
    return raw, closed


def parse_replies(raw):
    """(statuses of the HTTP replies in raw, error replies without a JSON body, a complaint when
    the bytes are not HTTP replies, whether the last reply is complete)."""
    statuses, not_json = [], 0
    while raw:
        match = STATUS_RE.match(raw)
        if not match:
            return statuses, not_json, f"not an HTTP reply: {raw[:60]!r}", False
        status = int(match.group(1))
        head, sep, rest = raw.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        statuses.append(status)
        if not sep or (length and len(rest) < int(length.group(1))):
            return statuses, not_json, None, False  # still arriving
        body, raw = (rest[:int(length.group(1))], rest[int(length.group(1)):]) if length else (rest, b"")
        if status >= 400:
            try:
                not_json += not isinstance(json.loads(body).get("error"), str)
            except (ValueError, AttributeError):
                not_json += 1
        if not length:
            return statuses, not_json, None, False  # a body up to the close: complete when closed
    return statuses, not_json, None, bool(statuses)


def upload_request(png, extra_headers=b""):
    return (b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: %d\r\n%sConnection: close\r\n\r\n" % (len(png), extra_headers) + png)


def scripted_cases(png):
    """(name, bytes or a list of parts sent apart, statuses allowed besides 4xx, exact statuses or None)."""
    health = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    post = b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    part = b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n" + png

    def post_body(headers, body):
        return post + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body
    cases = [
        ("garbage bytes", bytes(random.Random(7).randrange(256) for _ in range(4096))),
        ("TLS ClientHello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 160),
        ("text, no request line", b"hello world\r\n\r\n"),
        ("request line with no version", b"GET /api/health\r\nHost: 127.0.0.1\r\n\r\n"),
        ("request line, five words", b"GET / / / HTTP/1.1\r\n\r\n"),
        ("unknown HTTP version", b"GET /api/health HTTP/9.9\r\n\r\n"),
        ("HTTP/0.9 GET /", b"GET /\r\n"),
        ("100 KB URL", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        ("100 KB query to /api/map", b"GET /api/map?id=" + b"b" * 100_000 + b"&method=rollout HTTP/1.1\r\n\r\n"),
        ("10,000 headers", b"GET /api/health HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n"),
        ("1 MB header value", b"GET /api/health HTTP/1.1\r\nX-Big: " + b"v" * (1 << 20) + b"\r\n\r\n"),
        ("header with no colon", b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n"),
        ("Content-Length > body, then close", post + b"Content-Length: 100000\r\n\r\n" + png[:100]),
        ("negative Content-Length", post + b"Content-Length: -5\r\n\r\nhello"),
        ("non-numeric Content-Length", post + b"Content-Length: abc\r\n\r\nhello"),
        ("overflowing Content-Length", post + b"Content-Length: 99999999999999999999999\r\n\r\nhello"),
        ("two different Content-Lengths", post + b"Content-Length: 5\r\nContent-Length: 50\r\n\r\nhello"),
        ("chunked, non-hex size", post + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n"),
        ("chunked, 2^72 size", post + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"),
        ("chunked, negative size", post + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n"),
        ("chunked, size > data, then close", post + b"Transfer-Encoding: chunked\r\n\r\n1000\r\nabc"),
        ("chunked, no terminator", post + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
        ("multipart, missing boundary", post_body(b"Content-Type: multipart/form-data\r\n", part + b"\r\n--x--\r\n")),
        ("multipart, boundary never closed", post_body(b"Content-Type: multipart/form-data; boundary=x\r\n", part)),
        ("multipart, empty boundary", post_body(b"Content-Type: multipart/form-data; boundary=\r\n", b"--\r\n--\r\n")),
        ("multipart, part with no headers end", post_body(b"Content-Type: multipart/form-data; boundary=x\r\n",
                                                          b"--x\r\nContent-Disposition: form-data; name=image" + png)),
        ("NUL byte in the path", b"GET /api/he\x00alth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        ("NUL byte in a header", b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n"),
        ("%00 in the path", b"GET /api/images/0%00.png HTTP/1.1\r\n\r\n"),
        ("invalid percent-encoding %zz", b"GET /api/images/%zz HTTP/1.1\r\n\r\n"),
        ("lone % at the end", b"GET /app.js% HTTP/1.1\r\n\r\n"),
        ("bad percent-encoding in a query", b"GET /api/map?id=%G1&method=rol%lout HTTP/1.1\r\n\r\n"),
        ("overlong UTF-8 dot-dot", b"GET /%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd HTTP/1.1\r\n\r\n"),
        ("absolute-form URL", b"GET http://evil.example/etc/passwd HTTP/1.1\r\n\r\n"),
        ("bare LF line ends", b"GET /nope HTTP/1.1\nHost: 127.0.0.1\n\n"),
        ("unknown method", b"BREW /api/health HTTP/1.1\r\n\r\n"),
    ]
    cases = [(name, data, set(), None) for name, data in cases]
    # cpp-httplib skips a header line it cannot parse and keeps a value with a NUL in it: the
    # request is otherwise valid, so 200 is a fine answer (a 4xx too).
    lenient = {"header with no colon", "NUL byte in a header"}
    cases = [(name, data, {200} if name in lenient else allowed, exact)
             for name, data, allowed, exact in cases]
    # An upload refused by its Content-Length (over --max-body-mb) whose body holds requests: the
    # server must close after the 413, never run the unread body as requests (smuggling).
    cases.append(("413 upload whose body holds requests", [post + b"Content-Length: 999000000\r\n\r\n", health * 20],
                  set(), [413]))
    # A valid pipelined pair: the server takes one request per connection (so that no unread
    # body is ever read as a request), answers the first and closes. Then a valid request
    # followed by garbage.
    cases.append(("pipelined: two valid requests", health + health, {200}, [200]))
    cases.append(("pipelined: valid then garbage", health + b"\xff\xfe garbage\r\n\r\n", {200}, None))
    return cases


def mutate(rnd, base):
    """One to three random mutations of a valid upload: flip bytes, truncate, duplicate a slice."""
    data, kinds = bytearray(base), []
    for _ in range(rnd.randint(1, 3)):
        kind = rnd.choice(("flip", "truncate", "duplicate"))
        kinds.append(kind)
        if kind == "flip":
            for _ in range(rnd.randint(1, 8)):
                data[rnd.randrange(len(data))] ^= rnd.randint(1, 255)
        elif kind == "truncate":
            del data[rnd.randrange(1, len(data)):]
        else:
            start = rnd.randrange(len(data))
            piece = data[start:start + rnd.randint(1, 200)]
            at = rnd.randrange(len(data) + 1)
            data[at:at] = piece
    return bytes(data), "+".join(kinds)


def run_case(c, srv, tally, name, data, allowed=(), exact=None, half_close=False):
    raw, closed = exchange(srv, data, half_close)
    statuses, not_json, complaint, _ = parse_replies(raw)
    bad = [s for s in statuses if not (400 <= s < 500 or s in allowed or s in PROTOCOL_5XX)]
    problems = []
    if complaint:
        problems.append(complaint)
    if bad and exact is None:
        problems.append(f"statuses {statuses}")
    if exact is not None and statuses != exact:
        problems.append(f"statuses {statuses}, want {exact}")
    if not closed and not statuses:
        problems.append(f"no reply, and the connection still open after {REPLY_TIMEOUT_S} s")
    alive = srv.alive()
    health = request(srv, "GET", "/api/health", timeout=REPLY_TIMEOUT_S).status if alive else None
    if not alive or health != 200:
        problems.append(f"server {'alive' if alive else 'DEAD'}, /api/health {health}")
    with TALLY_LOCK:
        tally["cases"] += 1
        tally["no reply" if not statuses else "200" if statuses[0] == 200 else "4xx" if statuses[0] < 500
              else "501/505" if statuses[0] in PROTOCOL_5XX else "other"] += 1
        tally["error replies without JSON"] += not_json
    c.check(f"{name}: replies {statuses or 'none'}", not problems, "; ".join(problems) +
            ("" if alive else "\n" + srv.stderr_tail()))
    return alive


def slow_client(c, srv, name, payload, limit_s=12.0, trickle=True, prefix=b"", must_drop=True):
    """Sends prefix, then trickles payload one byte per second (or sends nothing); the server
    must close the connection within limit_s (a 408 first is fine), unless not must_drop, and
    answer others meanwhile."""
    sock = socket.create_connection((srv.host, srv.port), timeout=REPLY_TIMEOUT_S)
    sock.sendall(prefix)
    start, closed_after, others_ok, i, replies = time.monotonic(), None, None, 0, []
    try:
        while time.monotonic() - start < limit_s + 3:
            if trickle and i < len(payload):
                sock.sendall(payload[i:i + 1])
                i += 1
            if select.select([sock], [], [], 1.0)[0]:
                data = sock.recv(4096)
                if not data:
                    closed_after = time.monotonic() - start
                    break
                replies += [f"{int(m)} at {time.monotonic() - start:.0f} s" for m in re.findall(rb"HTTP/1\.1 (\d{3})", data)]
            if others_ok is None and time.monotonic() - start > 3:
                others_ok = request(srv, "GET", "/api/health", timeout=REPLY_TIMEOUT_S).status == 200
    except OSError:
        closed_after = time.monotonic() - start  # a reset or a refused send: closed too
    sock.close()
    seen = f"; replies {replies[:4]}{' ...' if len(replies) > 4 else ''}" if replies else "; no reply"
    dropped = closed_after is not None and closed_after <= limit_s
    detail = (f"closed after {closed_after:.0f} s" if closed_after else
              f"still open after {time.monotonic() - start:.0f} s, {i} bytes sent") + seen
    if must_drop:
        c.check(f"{name}: dropped within {limit_s:.0f} s", dropped, detail)
    else:
        print(f"note  {name}: {detail} (cpp-httplib 0.11 times each read, not the whole header)")
    c.check(f"{name}: others served meanwhile", others_ok is not False and srv.alive(), srv.stderr_tail())


def main():
    args = parse_args(__doc__.splitlines()[0])
    c = Checks()
    with open(os.path.join(args.root, "samples/fashion/test0000-ankle-boot.png"), "rb") as f:
        png = f.read()
    tally = dict.fromkeys(("cases", "4xx", "200", "501/505", "no reply", "other", "error replies without JSON"), 0)
    with Server(args.attn, args.root, ["--timeout", "1"]) as srv:
        # The unmutated upload itself must work, or the random corpus proves nothing.
        ok = run_case(c, srv, tally, "valid upload (the corpus's base)", upload_request(png), {200}, [200])
        for name, data, allowed, exact in scripted_cases(png):
            if ok:
                # "..., then close": the client gives up mid-request and shuts its side.
                ok = run_case(c, srv, tally, name, data, allowed, exact, name.endswith("then close"))
        rnd = random.Random(1234)
        mutations = [mutate(rnd, upload_request(png)) for _ in range(200)]
        # Four connections at a time: a cut-short request costs the server's 1 s read timeout,
        # and the server serves several clients anyway; each case still checks /api/health.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for start in range(0, len(mutations), 4):
                if not ok:
                    break
                # A mutation may leave a valid upload (a flipped byte in a header value): 200 is fine.
                ok = all(f.result() for f in [
                    pool.submit(run_case, c, srv, tally, f"random {n:3d} ({kind}, {len(data)} bytes)", data, {200})
                    for n, (data, kind) in enumerate(mutations[start:start + 4], start)])
        if ok:
            # Headers have no deadline in cpp-httplib 0.11 (each read has --timeout): a slow
            # client holds one connection thread, and everyone else is still served. The three
            # slow clients run at once: each waits up to 15 s, and together they also show that
            # several held connections leave the server answering.
            slow = [
                ("slow client, 1 byte/s of headers",
                 dict(payload=b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 60 + b"\r\n\r\n",
                      must_drop=False)),
                ("slow client, 1 byte/s of an upload body",
                 dict(payload=png, prefix=b"POST /api/analyze HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(png))),
                ("idle client (connects, sends nothing)", dict(payload=b"", trickle=False)),
            ]
            threads = [threading.Thread(target=c.guard, args=(name, lambda n=name, k=kw: slow_client(c, srv, n, **k)))
                       for name, kw in slow]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        c.check("server alive at the end", srv.alive(), srv.stderr_tail())
    print("counts: " + ", ".join(f"{k} {v}" for k, v in tally.items()))
    c.finish("serve_malformed_test")


if __name__ == "__main__":
    main()
