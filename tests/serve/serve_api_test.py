#!/usr/bin/env python3
"""tests/serve/serve_api_test.py: proves `attn serve`'s HTTP API gives what the CLI gives.

For two Fashion-MNIST samples and one scene, uploaded three ways (raw body, hand-built
multipart/form-data, ?image=N of /api/images), the analysis's predictions equal
`attn classify --json --topk 5`, its caption equals `attn caption --json`, each of its maps and
each /api/map (cls, rollout, relevance, gradcam, patch, patch-rollout, grad-rollout for another
class, caption) equals the JSON `attn overlay --json` writes, and /api/overlay's PNG is the very
file `attn overlay` writes. Also: /api/health, the static page's content types, the image list,
no CORS headers, and every error the contract names (404, 400, 413 for a big body and for too
many pixels, path traversal) is a JSON error.

  /usr/bin/python3 tests/serve/serve_api_test.py --attn build/apps/attn --root .
"""

import concurrent.futures
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_support import (CORS_SEEN, Checks, Server, compare_json, compare_predictions,  # noqa: E402
                           make_png, multipart, parse_args, png_pixels, png_size, request)

FILES = ["samples/fashion/test0000-ankle-boot.png", "samples/fashion/test0002-trouser.png",
         "samples/scenes/scene_000002.png"]
# The analysis's own maps and the CLI options that make each (the contract's defaults).
DEFAULT_MAPS = {"rollout": ["--method", "rollout"], "grad-rollout": ["--method", "grad-rollout"],
                "cls": ["--method", "cls", "--layer", "all", "--head", "all"]}
# /api/map queries and the same map from the CLI; {K} is the image's second-ranked class.
MAP_CASES = [
    ("cls layer 2 head 1", "method=cls&layer=2&head=1", "--method cls --layer 2 --head 1"),
    ("rollout max 0.5", "method=rollout&fusion=max&discard=0.5", "--method rollout --fusion max --discard 0.5"),
    ("relevance", "method=relevance", "--method relevance"),
    ("gradcam", "method=gradcam", "--method gradcam"),
    ("patch cell 1,2", "method=patch&cell=1,2&layer=-1&head=-1", "--method patch --cell 1,2 --layer -1 --head -1"),
    ("patch at 10,20", "method=patch&at=10,20", "--method patch --at 10,20"),
    ("patch-rollout cell 3,3", "method=patch-rollout&cell=3,3", "--method patch-rollout --cell 3,3"),
    ("grad-rollout class K", "method=grad-rollout&class={K}", "--method grad-rollout --class {K}"),
    ("caption", "method=caption", "--method caption"),
]
TIMINGS = {"decode", "classify", "maps", "caption", "total"}
RAW_TYPES = ["application/x-www-form-urlencoded", "image/png", "application/octet-stream"]
OVERLAY_QUERY, OVERLAY_CLI = "method=rollout&colormap=viridis&alpha=0.6", "--method rollout --colormap viridis --alpha 0.6"


def run_cli(args, argv):
    proc = subprocess.run([args.attn, *argv], cwd=args.root, capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"attn {' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return proc.stdout


def cli_overlay(args, model, opts, path, tmp, tag, want_json=True):
    """Runs `attn overlay` into tmp/tag.png; returns its JSON (or the PNG bytes)."""
    out = os.path.join(tmp, tag + ".png")
    run_cli(args, ["overlay", "--model", model, *opts, *(["--json"] if want_json else []), path, "-o", out])
    if want_json:
        with open(out + ".json") as f:  # `attn overlay --json -o X.png` writes X.png.json
            return json.load(f)
    with open(out, "rb") as f:
        return f.read()


def cli_references(args, health, tmp):
    """Everything the CLI says about FILES, computed in parallel while the server idles."""
    model = health["model"]["path"]
    captioner = (health.get("captioner") or {}).get("path")
    refs = {}
    for path in FILES:
        doc = json.loads(run_cli(args, ["classify", "--model", model, "--json", "--topk", "5", path]))
        refs[path] = {"predictions": doc["results"][0]["predictions"], "maps": {}, "map_cases": {}}
        refs[path]["K"] = refs[path]["predictions"][1]["index"]
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        for n, path in enumerate(FILES):
            ref, base = refs[path], f"f{n}"
            if captioner:
                jobs[pool.submit(run_cli, args, ["caption", "--model", captioner, "--json", path])] = (path, "caption", None)
            for name, opts in DEFAULT_MAPS.items():
                jobs[pool.submit(cli_overlay, args, model, opts, path, tmp, f"{base}-d-{name}")] = (path, "maps", name)
            for i, (name, _, opts) in enumerate(MAP_CASES):
                if name == "caption" and not captioner:
                    continue
                opts = opts.replace("{K}", str(ref["K"])).split()
                jobs[pool.submit(cli_overlay, args, captioner if name == "caption" else model, opts, path,
                                 tmp, f"{base}-m{i}")] = (path, "map_cases", name)
            jobs[pool.submit(cli_overlay, args, model, OVERLAY_CLI.split(), path, tmp, f"{base}-png", False)] = (path, "png", None)
        for job, (path, kind, name) in jobs.items():
            try:
                value = job.result()
            except Exception as e:  # noqa: BLE001 - a CLI that cannot make a reference is recorded
                value = e
            if kind == "caption":
                value = value if isinstance(value, Exception) else json.loads(value)["results"][0]
            if name is None:
                refs[path][kind] = value
            else:
                refs[path][kind][name] = value
    return refs


def check_health(c, srv, root):
    r = request(srv, "GET", "/api/health")
    h = r.json()
    c.check("health: 200 application/json", r.status == 200 and r.content_type() == "application/json", r.describe())
    m = h.get("model") or {}
    c.check("health: status, model fields",
            h.get("status") == "ok" and m.get("classes") == 10 and m.get("layers") == 6 and m.get("heads") == 4
            and m.get("image_size") == [28, 28] and isinstance(m.get("path"), str), json.dumps(h)[:300])
    c.check("health: captioner path", isinstance((h.get("captioner") or {}).get("path"), str), json.dumps(h)[:300])
    c.check("health: images, cache, work",
            h.get("images") == sum(len(os.listdir(os.path.join(root, "samples", d))) for d in ("fashion", "scenes")) and (h.get("cache") or {}).get("capacity") == 16
            and isinstance(h["cache"].get("entries"), int)
            and {k: h.get("work", {}).get(k) for k in ("workers", "queue")} == {"workers": 1, "queue": 8}
            and isinstance(h["work"].get("running"), int) and isinstance(h["work"].get("waiting"), int),
            json.dumps(h)[:300])
    return h


def check_static_and_list(c, srv, root):
    for path, types in (("/", ("text/html",)), ("/app.js", ("text/javascript", "application/javascript")),
                        ("/style.css", ("text/css",))):
        r = request(srv, "GET", path)
        c.check(f"static {path}: 200 {types[0]}", r.status == 200 and r.content_type() in types and r.body,
                r.describe())
    r = request(srv, "GET", "/api/images")
    images = r.json()["images"]
    names = [i["name"] for i in images]
    want = sorted([f"fashion/{n}" for n in os.listdir(os.path.join(root, "samples/fashion"))] +
                  [f"scenes/{n}" for n in os.listdir(os.path.join(root, "samples/scenes"))])
    c.check("/api/images: every image, sorted, prefixed", names == want, f"{names[:4]}... vs {want[:4]}...")
    c.check("/api/images: index and bytes",
            all(i["index"] == n and i["bytes"] == os.path.getsize(os.path.join(root, "samples", i["name"]))
                for n, i in enumerate(images)), str(images[:2]))
    first = request(srv, "GET", "/api/images/0")
    with open(os.path.join(root, "samples", images[0]["name"]), "rb") as f:
        c.check("/api/images/0: the file's bytes, image/png",
                first.status == 200 and first.body == f.read() and first.content_type() == "image/png", first.describe())
    return {i["name"]: i["index"] for i in images}


def check_analysis(c, srv, health, path, data, mode, a, ref):
    """One analysis document against the CLI's references."""
    label, base = f"{os.path.basename(path)} {mode}", os.path.basename(path)
    width, height = png_size(data)
    want_names = {"raw": ["upload"], "multipart": ["mp-" + base], "listed": [path[len("samples/"):], base]}[mode]
    crop = a.get("crop") or {}
    fields = {  # each field the contract names, and whether it is right
        "id": isinstance(a.get("id"), str) and a["id"] != "",
        "name": a.get("name") in want_names,
        "width/height": (a.get("width"), a.get("height")) == (width, height),
        "grid/layers/heads": (a.get("grid"), a.get("layers"), a.get("heads")) == ([7, 7], 6, 4),
        "model": a.get("model") == health["model"]["path"],
        "crop": set(crop) == {"x", "y", "width", "height"} and crop["x"] >= 0 and crop["y"] >= 0
        and crop["x"] + crop["width"] <= width + 1e-6 and crop["y"] + crop["height"] <= height + 1e-6,
        "timing_ms": set(a.get("timing_ms") or {}) >= TIMINGS,
    }
    wrong = [k if k != "timing_ms" else f"timing_ms lacks {sorted(TIMINGS - set(a.get('timing_ms') or {}))}"
             for k, ok in fields.items() if not ok]
    c.check(f"{label}: fields", not wrong, f"wrong: {wrong}; " + json.dumps(
        {k: a.get(k) for k in ("id", "name", "width", "height", "crop", "model", "timing_ms")})[:300])
    diffs = compare_predictions(a.get("predictions"), ref["predictions"])
    c.check(f"{label}: predictions == attn classify", not diffs, diffs)
    for name, want in ref["maps"].items():
        diffs = [str(want)] if isinstance(want, Exception) else compare_json((a.get("maps") or {}).get(name), want, f"$.maps.{name}", 1e-5, 1e-6)
        c.check(f"{label}: maps.{name} == attn overlay --json", not diffs, diffs)
    if "caption" in ref:
        cap, want = a.get("caption") or {}, ref["caption"]
        if isinstance(want, Exception):
            diffs = [str(want)]
        else:
            diffs = [] if cap.get("caption") == want["caption"] and cap.get("ended") == want["ended"] else [
                f"caption {cap.get('caption')!r} ended {cap.get('ended')}, want {want['caption']!r} ended {want['ended']}"]
            diffs += compare_json(cap.get("words"), [{k: w[k] for k in ("word", "probability", "attention")}
                                                      for w in want["words"]], "$.caption.words", 1e-5)
            if abs(cap.get("log_prob", 1.0) - want["log_prob"]) > 1e-4:
                diffs.append(f"log_prob {cap.get('log_prob')}, want {want['log_prob']}")
        c.check(f"{label}: caption == attn caption --json", not diffs, diffs)
        overlay_caption = ref["map_cases"].get("caption")
        if isinstance(overlay_caption, dict):
            # The analysis adds the captioner's crop and `attn caption`'s log_prob.
            diffs = compare_json(cap, overlay_caption, "$.caption", 1e-5, ignore_keys=("crop", "log_prob"))
            c.check(f"{label}: caption == attn overlay --method caption --json (+crop, log_prob)",
                    not diffs and set(cap.get("crop") or {}) == {"x", "y", "width", "height"}, diffs or cap.get("crop"))
    for name, query, _ in MAP_CASES:
        if name not in ref["map_cases"]:
            continue
        want = ref["map_cases"][name]
        r = request(srv, "GET", f"/api/map?id={a['id']}&" + query.replace("{K}", str(ref["K"])))
        if isinstance(want, Exception):
            c.check(f"{label}: /api/map {name}", False, f"CLI reference failed: {want}; server said {r.describe()}")
            continue
        diffs = [r.describe()] if r.status != 200 else compare_json(
            r.json(), want, "$", 1e-5, 1e-6, ignore_keys=("crop",) if name == "caption" else ())
        c.check(f"{label}: /api/map {name} == attn overlay --json", not diffs, diffs)


def check_overlay_png(c, srv, path, a, want):
    r = request(srv, "GET", f"/api/overlay?id={a['id']}&{OVERLAY_QUERY}")
    same = r.status == 200 and r.content_type() == "image/png" and r.body == want
    detail = r.describe()
    if r.status == 200 and not same:
        try:  # say whether only the encoding differs or the pixels do
            detail = ("PNG bytes differ but the decoded pixels are equal" if png_pixels(r.body) == png_pixels(want)
                      else f"pixels differ: server {png_size(r.body)}, CLI {png_size(want)}")
        except Exception as e:  # noqa: BLE001
            detail = f"bytes differ; could not decode: {e}"
    c.check(f"{os.path.basename(path)}: /api/overlay PNG == attn overlay's file, byte for byte", same, detail)


def check_errors(c, srv, root, some_id):
    def expect(name, r, statuses, forbidden=None):
        ok = r.status in statuses and r.is_json_error() and not (forbidden and forbidden in r.body)
        c.check(f"error {name}: {'/'.join(map(str, statuses))} JSON", ok, r.describe())
    get = lambda p: request(srv, "GET", p)  # noqa: E731
    expect("unknown id /api/map", get("/api/map?id=nosuchid000&method=rollout"), (404,))
    expect("unknown id /api/overlay", get("/api/overlay?id=nosuchid000&method=rollout"), (404,))
    for query in ("method=bogus", "method=patch&cell=99,99", "method=cls&layer=99", "method=rollout&discard=1.5",
                  "method=rollout&fusion=median", "method=grad-rollout&class=99", "method=patch&cell=x"):
        r = get(f"/api/map?id={some_id}&{query}")
        name = query.split("&")[-1].split("=")[0]
        expect(f"bad parameter {query}", r, (400,))
        c.check(f"error {query}: names '{name}'", name in r.body.decode("utf-8", "replace"), r.describe())
    expect("bad colormap /api/overlay", get(f"/api/overlay?id={some_id}&method=rollout&colormap=nope"), (400,))
    with open(os.path.join(root, FILES[2]), "rb") as f:
        scene = f.read()
    with open(os.path.join(root, "samples/astronaut.jpg"), "rb") as f:
        photo = f.read()
    # `curl --data-binary @photo.jpg` (the contract's example) sends x-www-form-urlencoded.
    r = request(srv, "POST", "/api/analyze", photo, {"Content-Type": "application/x-www-form-urlencoded"})
    c.check(f"curl-style upload of a {len(photo) // 1024} KB photo: 200, 512x512",
            r.status == 200 and r.json().get("width") == 512 and r.json().get("height") == 512, r.describe())
    expect("non-image body", request(srv, "POST", "/api/analyze", b"hello"), (400, 415))
    expect("truncated PNG", request(srv, "POST", "/api/analyze", scene[:100]), (400, 415))
    expect("empty body", request(srv, "POST", "/api/analyze", b""), (400,))
    body, ctype = multipart("other", "x.txt", b"no image field here")
    expect("multipart with no image", request(srv, "POST", "/api/analyze", body, {"Content-Type": ctype}), (400, 415))
    expect("?image=999", request(srv, "POST", "/api/analyze?image=999", b""), (400, 404))
    expect("?topk=abc", request(srv, "POST", "/api/analyze?topk=abc", scene), (400,))
    expect("GET /api/images/999", get("/api/images/999"), (404,))
    expect("unknown path", get("/no/such/page"), (404,))
    for path, marker in (("/api/images/../../etc/passwd", b"root:"), ("/..%2f..%2fetc%2fpasswd", b"root:"),
                         ("/static/../CMakeLists.txt", b"cmake_minimum_required"),
                         ("/%2e%2e/%2e%2e/etc/passwd", b"root:"), ("/../README.md", b"Vision Transformers that load")):
        expect(f"path traversal {path}", get(path), (404,), marker)


def post_large(srv, path, body, timeout=60):
    """Sends a big POST over a raw socket, stopping as soon as the server answers (a server may
    reply 413 before reading the body and then close); returns (status, content type, body)."""
    sock = socket.create_connection((srv.host, srv.port), timeout=timeout)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {srv.host}\r\nContent-Length: {len(body)}\r\n"
                 f"Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n".encode())
    try:
        for i in range(0, len(body), 65536):
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(body[i:i + 65536])
    except OSError:
        pass  # the server closed early; its reply may already be in our receive buffer
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    sock.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    ctype = next((l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("content-type:")), "")
    return status, ctype.split(";")[0], payload


def check_limits(c, args):
    with Server(args.attn, args.root, ["--max-body-mb", "1", "--max-pixels", "1000"]) as srv:
        status, ctype, payload = post_large(srv, "/api/analyze", b"\x89PNG\r\n\x1a\n" + b"\0" * (2 << 20))
        ok = status == 413 and ctype == "application/json" and "error" in json.loads(payload or b"{}")
        c.check("error 2 MB body with --max-body-mb 1: 413 JSON", ok, f"{status} {ctype} {payload[:200]!r}")
        r = request(srv, "POST", "/api/analyze", make_png(64, 64))
        c.check("error 64x64 PNG with --max-pixels 1000: 413 JSON", r.status == 413 and r.is_json_error(), r.describe())
        with open(os.path.join(args.root, FILES[0]), "rb") as f:
            r = request(srv, "POST", "/api/analyze", f.read())
        c.check("28x28 PNG under both limits: 200", r.status == 200, r.describe())
        # Map requests are read by attn overlay's option parser: they must not reset the limit.
        if r.status == 200:
            request(srv, "GET", f"/api/map?id={r.json()['id']}&method=rollout")
        r = request(srv, "POST", "/api/analyze", make_png(64, 64))
        c.check("64x64 PNG after an analysis and a map: still 413", r.status == 413, r.describe())
        c.check("limits server alive", srv.alive(), srv.stderr_tail())


def check_refusals_before_reading(c, srv):
    """Requests refused from their headers alone: another Host (DNS rebinding), a body where
    none is taken, another method, a multipart form of too many parts."""
    r = request(srv, "GET", "/api/health", headers={"Host": "evil.example:8080"})
    c.check("Host evil.example: 403 JSON", r.status == 403 and r.is_json_error(), r.describe())
    r = request(srv, "GET", "/api/health", headers={"Host": "localhost"})
    c.check("Host localhost: 200", r.status == 200, r.describe())
    r = request(srv, "POST", "/api/map?id=x&method=rollout", b"x" * 1000)
    c.check("POST /api/map: 405 JSON", r.status == 405 and r.is_json_error(), r.describe())
    r = request(srv, "DELETE", "/api/health")
    c.check("DELETE: 405 JSON", r.status == 405 and r.is_json_error(), r.describe())
    parts = b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % i
                     for i in range(40)) + b"--b--\r\n"
    r = request(srv, "POST", "/api/analyze", parts,
                headers={"Content-Type": "multipart/form-data; boundary=b"})
    c.check("multipart of 40 parts: 400 JSON", r.status == 400 and r.is_json_error(), r.describe())


def main():
    args = parse_args(__doc__.splitlines()[0])
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="serve-api-") as tmp, Server(args.attn, args.root) as srv:
        health = c.guard("health", check_health, c, srv, args.root)
        listed = c.guard("static and image list", check_static_and_list, c, srv, args.root) or {}
        if health:
            refs = cli_references(args, health, tmp)
            some_id = "x"
            for path in FILES:
                with open(os.path.join(args.root, path), "rb") as f:
                    data = f.read()
                body, ctype = multipart("image", "mp-" + os.path.basename(path), data, "image/png")
                # Raw bodies with the content types clients send: curl --data-binary's default, a
                # browser's fetch of a File, and a generic one.
                raw_type = RAW_TYPES[FILES.index(path) % len(RAW_TYPES)]
                uploads = {"raw": ("/api/analyze?topk=5", data, {"Content-Type": raw_type}),
                           "multipart": ("/api/analyze?topk=5", body, {"Content-Type": ctype}),
                           "listed": (f"/api/analyze?image={listed.get(path[len('samples/'):], -1)}&topk=5", b"", {})}
                for mode, (url, payload, headers) in uploads.items():
                    r = c.guard(f"{os.path.basename(path)} {mode}: POST", request, srv, "POST", url, payload, headers)
                    if r is None or not c.check(f"{os.path.basename(path)} {mode}: POST 200 JSON",
                                   r.status == 200 and r.content_type() == "application/json", r.describe()):
                        continue
                    a = r.json()
                    some_id = a["id"]
                    c.guard(f"{path} {mode}", check_analysis, c, srv, health, path, data, mode, a, refs[path])
                    if mode == "raw":
                        want = refs[path]["png"]
                        if isinstance(want, Exception):
                            c.check(f"{path}: attn overlay PNG reference", False, str(want))
                        else:
                            c.guard(f"{path} overlay", check_overlay_png, c, srv, path, a, want)
            c.guard("errors", check_errors, c, srv, args.root, urllib.parse.quote(some_id))
            c.guard("refusals before reading", check_refusals_before_reading, c, srv)
        c.check("server alive after the API checks", srv.alive(), srv.stderr_tail())
    c.guard("limits", check_limits, c, args)
    c.check("no Access-Control-* header on any response", not CORS_SEEN, CORS_SEEN[:3])
    c.finish("serve_api_test")


if __name__ == "__main__":
    main()
