#!/usr/bin/env python3
"""tests/hostile/hostile_inputs.py: makes bad inputs of every kind and runs the real `attn` on each.

Each case builds its files in a fresh directory, runs one command and asserts: the exit code, that
the message names the file or option at fault, that nothing new (no output, no temporary) appears
unless the case expects it, that no library text leaks out (nlohmann's, libstdc++'s, libpng's,
OpenCV's, LibTorch's allocator), and where memory matters, the child's peak RSS.

  hostile_inputs.py --attn build/apps/attn --source . --work /tmp/hostile [--only SUBSTRING]

Prints one table row per case (kind, case, exit code, first line of stderr) and exits 1 when any
case fails. Needs Debian's python3 with torch, numpy and PIL (the oracle packages).
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib

# Library text that must never reach a user: attnkit says things in its own words.
LEAKS = ["json.exception", "vector::", "_M_range_check", "DefaultCPUAllocator", "libpng",
         "[ WARN", "[ERROR", "terminate called", "what():", "Exception raised from",
         "basic_string", "std::", "Corrupt JPEG", "Premature end"]

# Names a temporary file of ours (or a video's partial output) would have.
TEMP_MARKERS = [".tmp", ".partial"]


# ---------------------------------------------------------------- safetensors in plain Python

def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return header, data[8 + n:]


def write_safetensors(path, header, body, prefix=b""):
    text = prefix + json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


def tensors_to_safetensors(path, tensors, metadata=None):
    """tensors: name -> float32 numpy array."""
    header, body, offset = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, array in tensors.items():
        raw = array.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        body += raw
        offset += len(raw)
    write_safetensors(path, header, body)


def poison_tensor(src, dst, name, value):
    """Copies model file `src` to `dst` with the first element of tensor `name` set to `value`."""
    header, body = read_safetensors(src)
    entry = header[name]
    assert entry["dtype"] == "F32", entry
    begin = entry["data_offsets"][0]
    body = body[:begin] + struct.pack("<f", value) + body[begin + 4:]
    write_safetensors(dst, header, body)


# ---------------------------------------------------------------- images in plain Python

def png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload +
            struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_header_only(path, width, height):
    """A PNG whose IHDR declares width x height, with one tiny IDAT: small on disk, huge decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
                png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def png_bilevel(path, side):
    """A real, complete side x side 1-bit black PNG: a few hundred KB that decodes to side^2 px."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
                png_chunk(b"IEND", b""))


# ---------------------------------------------------------------- running cases

class Case:
    def __init__(self, kind, name, argv, code, names=(), setup=None, stdin=None, stdout=None,
                 creates=(), unchanged=(), max_rss_mb=None, check=None, timeout=120):
        self.kind, self.name, self.argv, self.code = kind, name, argv, code
        self.names = names            # substrings stderr must hold (the file or option at fault)
        self.setup = setup            # builds the case's files in the work directory
        self.stdin, self.stdout = stdin, stdout
        self.creates = set(creates)   # new files the case may leave (outputs it should write)
        self.unchanged = unchanged    # files whose bytes must not change
        self.max_rss_mb = max_rss_mb
        self.check = check            # extra assertion: check(stdout_text, stderr_text) -> error
        self.timeout = timeout


def snapshot(directory):
    found = set()
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(root, name), directory))
    return found


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run_case(case, attn, work, logs, env):
    """Runs one case; returns (problems, exit code, stderr text, peak RSS in MB)."""
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    if case.setup:
        case.setup(work)
    before = snapshot(work)
    hashes = {p: digest(os.path.join(work, p)) for p in case.unchanged}
    argv = [attn] + list(case.argv)
    out_path = case.stdout or os.path.join(logs, "stdout")
    err_path = os.path.join(logs, "stderr")
    with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
        process = subprocess.Popen(argv, cwd=work, env=env, stdout=out_file, stderr=err_file,
                                   stdin=subprocess.PIPE)
    if case.stdin:
        process.stdin.write(case.stdin.encode())
    process.stdin.close()
    # wait4 gives this child's own peak RSS; a timer kills it past the case's time limit.
    timed_out = []
    timer = threading.Timer(case.timeout, lambda: (timed_out.append(True), process.kill()))
    timer.start()
    _, status, usage = os.wait4(process.pid, 0)
    timer.cancel()
    process.returncode = code = os.waitstatus_to_exitcode(status)
    rss_mb = usage.ru_maxrss / 1024.0
    out = "" if case.stdout else open(out_path, "rb").read().decode("utf-8", "replace")
    err = open(err_path, "rb").read().decode("utf-8", "replace")
    problems = []
    if timed_out:
        problems.append("timed out after %d s" % case.timeout)
    if code != case.code:
        problems.append("exit %s, expected %s" % (code, case.code))
    for name in case.names:
        if name not in err:
            problems.append("stderr does not name %r" % name)
    for leak in LEAKS:
        if leak in err:
            problems.append("library text leaks out: %r" % leak)
    after = snapshot(work)
    for path in sorted(after - before - case.creates):
        problems.append("left %s behind" % path)
    for path in sorted(after):
        if any(marker in path for marker in TEMP_MARKERS):
            problems.append("temporary file %s remains" % path)
    for path, h in hashes.items():
        if not os.path.exists(os.path.join(work, path)) or digest(os.path.join(work, path)) != h:
            problems.append("%s was changed" % path)
    if case.max_rss_mb is not None and rss_mb > case.max_rss_mb:
        problems.append("peak RSS %.0f MB, bound %d MB" % (rss_mb, case.max_rss_mb))
    if case.check:
        extra = case.check(out, err)
        if extra:
            problems.append(extra)
    return problems, code, err, rss_mb


# ---------------------------------------------------------------- the cases

def build_cases(source, python):
    weights = os.path.join(source, "weights")
    classifier = os.path.join(weights, "fashion-vit.safetensors")
    captioner = os.path.join(weights, "scenes-captioner.safetensors")
    fashion = os.path.join(source, "samples", "fashion")
    boot = os.path.join(fashion, "test0000-ankle-boot.png")
    scene = os.path.join(source, "samples", "scenes", "scene_000000.png")
    photo = os.path.join(source, "samples", "chelsea.png")
    # The fuzz corpus's 18790x25944 progressive JPEG (libjpeg allocates 3 bytes a pixel for its
    # coefficients before the first row) with an APP0 of length 0 after SOI: libjpeg goes on
    # after the length field, and so must the size check.
    with open(os.path.join(source, "tests", "fuzz", "corpus", "image",
                           "regression_huge_progressive_jpeg.jpg"), "rb") as f:
        huge = f.read()
    progressive_behind_empty_segment = huge[:2] + b"\xff\xe0\x00\x00" + huge[2:]

    def copy(src, name):
        return lambda work: shutil.copy(src, os.path.join(work, name))

    def steps(*functions):
        def run(work):
            for f in functions:
                f(work)
        return run

    def write(name, data):
        def run(work):
            path = os.path.join(work, name)
            os.makedirs(os.path.dirname(path) or work, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        return run

    def torch_file(name, code):
        """Writes a file with Debian's torch (pickles and TorchScript the tests only name)."""
        def run(work):
            subprocess.run([python, "-c", "import torch\nout = %r\n%s" % (
                os.path.join(work, name), code)], check=True)
        return run

    def torchvision_vit(name, pos_shape):
        def run(work):
            import numpy as np
            rng = np.random.default_rng(0)
            d, p = 16, 4
            t = {"conv_proj.weight": rng.standard_normal((d, 3, p, p)),
                 "conv_proj.bias": np.zeros(d), "class_token": np.zeros((1, 1, d)),
                 "encoder.pos_embedding": rng.standard_normal(pos_shape),
                 "encoder.ln.weight": np.ones(d), "encoder.ln.bias": np.zeros(d),
                 "heads.head.weight": rng.standard_normal((10, d)), "heads.head.bias": np.zeros(10)}
            layer = "encoder.layers.encoder_layer_0."
            for k, shape in [("ln_1.weight", (d,)), ("ln_1.bias", (d,)), ("ln_2.weight", (d,)),
                             ("ln_2.bias", (d,)),
                             ("self_attention.in_proj_weight", (3 * d, d)),
                             ("self_attention.in_proj_bias", (3 * d,)),
                             ("self_attention.out_proj.weight", (d, d)),
                             ("self_attention.out_proj.bias", (d,)),
                             ("mlp.0.weight", (2 * d, d)), ("mlp.0.bias", (2 * d,)),
                             ("mlp.3.weight", (d, 2 * d)), ("mlp.3.bias", (d,))]:
                t[layer + k] = rng.standard_normal(shape)
            tensors_to_safetensors(os.path.join(work, name), t)
        return run

    def with_metadata(name, key, value):
        def run(work):
            header, body = read_safetensors(classifier)
            header["__metadata__"][key] = value
            write_safetensors(os.path.join(work, name), header, body)
        return run

    def karpathy(name, images):
        return write(name, json.dumps({"images": images}).encode())

    def json_check(test):
        def check(out, err):
            try:
                doc = json.loads(out)
            except ValueError as e:
                return "stdout is not one JSON document (%s)" % e
            return test(doc)
        return check

    scene_entry = {"filename": "scene.png", "split": "test",
                   "sentences": [{"tokens": ["a", "bag"]}],
                   "objects": [{"word": "bag", "box": [0, 0, 32, 32]}]}
    big = "100000"

    cases = [
        # ------------------------------------------------------------ weights
        Case("weights", "torchvision pos_embedding of rank 2", [
            "import", "--heads", "2", "tv.safetensors", "-o", "out.safetensors"], 3,
            ["tv.safetensors", "encoder.pos_embedding", "rank 2"],
            setup=torchvision_vit("tv.safetensors", (17, 16))),
        Case("weights", "torchvision pos_embedding of rank 1", [
            "import", "--heads", "2", "tv.safetensors", "-o", "out.safetensors"], 3,
            ["tv.safetensors", "encoder.pos_embedding"],
            setup=torchvision_vit("tv.safetensors", (17,))),
        Case("weights", "torchvision import of a good file", [
            "import", "--heads", "2", "tv.safetensors", "-o", "out.safetensors"], 0, [],
            setup=torchvision_vit("tv.safetensors", (1, 17, 16)), creates=["out.safetensors"]),
        Case("weights", "NaN in head.weight", [
            "classify", "--model", "m.safetensors", boot], 3,
            ["m.safetensors", "NaN or Inf", "head.weight"],
            setup=lambda w: poison_tensor(classifier, os.path.join(w, "m.safetensors"),
                                          "head.weight", float("nan"))),
        Case("weights", "Inf in a block weight", [
            "overlay", "--model", "m.safetensors", boot, "-o", "x.png"], 3,
            ["m.safetensors", "blocks.2.attn.qkv.weight"],
            setup=lambda w: poison_tensor(classifier, os.path.join(w, "m.safetensors"),
                                          "blocks.2.attn.qkv.weight", float("inf"))),
        Case("weights", "NaN in the captioner's decoder", [
            "caption", "--model", "c.safetensors", scene], 3, ["c.safetensors", "NaN or Inf"],
            setup=lambda w: poison_tensor(captioner, os.path.join(w, "c.safetensors"),
                                          "lstm.weight_hh", float("nan"))),
        Case("weights", "header with leading whitespace (accepted)", [
            "classify", "--model", "ws.safetensors", boot], 0, [],
            setup=lambda w: write_safetensors(os.path.join(w, "ws.safetensors"),
                                              *read_safetensors(classifier), prefix=b" \n\t")),
        Case("weights", "torch.save zip", ["classify", "--model", "m.pt", boot], 3,
             ["m.pt", "torch.save", "never unpickles", "safetensors"],
             setup=torch_file("m.pt", "torch.save({'w': torch.zeros(3)}, out)")),
        Case("weights", "legacy torch.save pickle", ["classify", "--model", "m.pth", boot], 3,
             ["m.pth", "pickle", "never unpickles"],
             setup=torch_file("m.pth", "torch.save({'w': torch.zeros(3)}, out, "
                                       "_use_new_zipfile_serialization=False)")),
        Case("weights", "TorchScript archive", ["classify", "--model", "m.ts", boot], 3,
             ["m.ts", "TorchScript"],
             setup=torch_file("m.ts", "torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), "
                                      "out)")),
        Case("weights", "torch.save zip given to import", [
            "import", "m.pt", "-o", "out.safetensors"], 3, ["m.pt", "torch.save"],
             setup=torch_file("m.pt", "torch.save({'w': torch.zeros(3)}, out)")),
        Case("weights", "truncated model file", ["classify", "--model", "half.safetensors", boot],
             3, ["half.safetensors"],
             setup=write("half.safetensors", open(classifier, "rb").read()[:100000])),
        Case("weights", "empty model file", ["classify", "--model", "e.safetensors", boot], 3,
             ["e.safetensors"], setup=write("e.safetensors", b"")),
        Case("weights", "model is a directory", ["classify", "--model", "d", boot], 3, ["d"],
             setup=lambda w: os.makedirs(os.path.join(w, "d"))),
        Case("weights", "model is an image", ["classify", "--model", "boot.png", boot], 3,
             ["boot.png", "an image, not a model"], setup=copy(boot, "boot.png")),
        Case("weights", "missing model", ["classify", "--model", "none.safetensors", boot], 3,
             ["none.safetensors"]),
        Case("weights", "broken config JSON in the metadata", [
            "classify", "--model", "m.safetensors", boot], 3, ["m.safetensors"],
            setup=with_metadata("m.safetensors", "attnkit.config", "{\"dim\": ")),
        Case("weights", "config of the wrong types", [
            "classify", "--model", "m.safetensors", boot], 3, ["m.safetensors"],
            setup=with_metadata("m.safetensors", "attnkit.config",
                                json.dumps({"dim": "wide", "depth": [1]}))),
        Case("weights", "labels that are not a list", [
            "classify", "--model", "m.safetensors", boot], 3, ["m.safetensors"],
            setup=with_metadata("m.safetensors", "attnkit.labels", "{\"a\": 1}")),
        Case("weights", "captioner given to classify", ["classify", "--model", captioner, boot], 3,
             ["scenes-captioner.safetensors"]),
        Case("weights", "classifier given to caption", ["caption", "--model", classifier, scene],
             3, ["fashion-vit.safetensors"]),

        # ------------------------------------------------------------ images
        Case("images", "PNG header declaring 100000x100000", ["classify", "huge.png"], 4,
             ["huge.png", "too large", big + "x" + big],
             setup=lambda w: png_header_only(os.path.join(w, "huge.png"), 100000, 100000)),
        Case("images", "27000x27000 PNG of 100 KB, bounded memory", ["classify", "big.png"], 4,
             ["big.png", "27000x27000", "--max-pixels"], max_rss_mb=1500,
             setup=lambda w: png_bilevel(os.path.join(w, "big.png"), 27000)),
        Case("images", "--max-pixels below a photo's size", [
            "overlay", "--max-pixels", "100000", "photo.png", "-o", "o.png"], 4,
             ["photo.png", "451x300", "--max-pixels"], setup=copy(photo, "photo.png")),
        Case("images", "--max-pixels 0", ["classify", "--max-pixels", "0", boot], 2,
             ["--max-pixels"]),
        Case("images", "file name that is not UTF-8, --json", ["classify", "--json", "dir"], 0,
             [], setup=lambda w: (os.makedirs(os.path.join(w, "dir")), shutil.copy(
                 boot, os.path.join(w.encode(), b"dir", b"bad\xff\xfename.png"))),
             check=json_check(lambda d: None if "\ufffd" in d["results"][0]["path"]
                              else "no replacement character in %r" % d["results"][0]["path"])),
        Case("images", "file name that is not UTF-8, --jsonl", ["classify", "--jsonl", "dir"], 0,
             [], setup=lambda w: (os.makedirs(os.path.join(w, "dir")), shutil.copy(
                 boot, os.path.join(w.encode(), b"dir", b"\xff.png")))),
        Case("images", "truncated PNG among good images", ["classify", "--json", boot, "t.png",
                                                            scene], 1, ["t.png"],
             setup=write("t.png", open(boot, "rb").read()[:60]),
             check=json_check(lambda d: None if len(d["results"]) == 2 and len(d["errors"]) == 1
                              else "expected 2 results and 1 error")),
        Case("images", "truncated JPEG", ["classify", "t.jpg"], 4, ["t.jpg", "truncated"],
             setup=write("t.jpg", open(os.path.join(source, "samples", "coffee.jpg"),
                                       "rb").read()[:5000])),
        Case("images", "corrupt PNG data (bad CRC)", ["classify", "c.png"], 4, ["c.png"],
             setup=write("c.png", open(boot, "rb").read()[:40] + b"\x00" * 40 +
                         open(boot, "rb").read()[80:])),
        Case("images", "text file named .jpg", ["classify", "a.jpg"], 4,
             ["a.jpg", "JPEG signature broken"], setup=write("a.jpg", b"hello, world\n")),
        Case("images", "empty image", ["classify", "e.png"], 4, ["e.png", "empty"],
             setup=write("e.png", b"")),
        Case("images", "GIF", ["classify", "g.gif"], 4, ["g.gif", "GIF"],
             setup=write("g.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")),
        Case("images", "progressive JPEG of 488 MP behind an empty APP0, bounded memory",
             ["classify", "p.jpg"], 4, ["p.jpg", "18790x25944", "--max-pixels"], max_rss_mb=1500,
             setup=write("p.jpg", progressive_behind_empty_segment)),
        Case("images", "PGM whose numbers end at any byte, as OpenCV reads them",
             ["classify", "n.pgm"], 4, ["n.pgm", "9913x101941"], max_rss_mb=1500,
             setup=write("n.pgm", b"P5\n\n9913=101941`12\n" + b"\x00" * 64)),
        Case("images", "JPEG 2000 (no size read before decoding)", ["classify", "s.jp2"], 4,
             ["s.jp2", "JPEG 2000 is not supported"],
             setup=write("s.jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 64)),
        Case("images", "PNG declaring zero width", ["classify", "z.png"], 4,
             ["z.png", "zero width"],
             setup=lambda w: png_header_only(os.path.join(w, "z.png"), 0, 10)),
        Case("images", "missing file", ["classify", "none.png"], 4, ["none.png"]),
        Case("images", "directory without images", ["classify", "empty"], 4, ["empty"],
             setup=lambda w: os.makedirs(os.path.join(w, "empty"))),
        Case("images", "paths on stdin, one missing", ["classify", "-"], 1, ["gone.png"],
             stdin=boot + "\ngone.png\n"),

        # ------------------------------------------------------------ outputs
        Case("outputs", "overlay -o out.tiff", ["overlay", boot, "-o", "out.tiff"], 2,
             ["out.tiff", ".png"]),
        Case("outputs", "overlay -o m.safetensors", ["overlay", boot, "-o", "m.safetensors"], 2,
             ["m.safetensors"]),
        Case("outputs", "overlay onto its own input", ["overlay", "in.png", "-o", "in.png"], 2,
             ["in.png", "input"], setup=copy(boot, "in.png"), unchanged=["in.png"]),
        Case("outputs", "overlay onto a hard link of its input", [
            "overlay", "in.png", "-o", "link.png"], 2, ["link.png"],
             setup=lambda w: (shutil.copy(boot, os.path.join(w, "in.png")),
                              os.link(os.path.join(w, "in.png"), os.path.join(w, "link.png"))),
             unchanged=["in.png"]),
        Case("outputs", "overlay into a directory onto a link of its input", [
            "overlay", "a/x.png", "-o", "d"], 4, ["x.rollout.png", "input"],
             setup=lambda w: (os.makedirs(os.path.join(w, "a")), os.makedirs(os.path.join(w, "d")),
                              shutil.copy(boot, os.path.join(w, "a", "x.png")),
                              os.link(os.path.join(w, "a", "x.png"),
                                      os.path.join(w, "d", "x.rollout.png"))),
             unchanged=["a/x.png", "d/x.rollout.png"]),
        Case("outputs", "import onto its own source", [
            "import", "--heads", "2", "tv.safetensors", "-o", "tv.safetensors"], 2,
            ["tv.safetensors"],
             setup=torchvision_vit("tv.safetensors", (1, 17, 16)), unchanged=["tv.safetensors"]),
        Case("outputs", "output under a regular file", [
            "overlay", boot, "-o", "f.txt/out.png"], 4, ["f.txt/out.png"],
             setup=write("f.txt", b"x")),
        Case("outputs", "classify --json to a full disk", ["classify", "--json", boot], 4,
             ["cannot write output", "No space left on device"], stdout="/dev/full"),
        Case("outputs", "caption to a full disk", ["caption", scene], 4,
             ["cannot write output"], stdout="/dev/full"),

        # ------------------------------------------------------------ options
        Case("options", "--beam beyond the vocabulary", ["caption", "--beam", "1000000", scene],
             2, ["--beam", "vocabulary"], max_rss_mb=2000),
        Case("options", "--max-len beyond its maximum", [
            "caption", "--max-len", "1000000", scene], 2, ["--max-len"]),
        Case("options", "--threads -3", ["classify", "--threads", "-3", boot], 2, ["--threads"]),
        Case("options", "--threads 100000 (capped)", ["classify", "--threads", "100000", boot], 0,
             ["--threads", "cores"], timeout=60),
        Case("options", "--topk 1000000 (clamped, said once)", [
            "classify", "--topk", "1000000", boot], 0, ["--topk"],
             check=lambda out, err: None if err.count("--topk") == 1 else "said more than once"),
        Case("options", "--topk 0", ["classify", "--topk", "0", boot], 2, ["--topk"]),
        Case("options", "--batch-size 0", ["classify", "-b", "0", boot], 2, ["--batch-size"]),
        Case("options", "unknown option", ["classify", "--colour", "red", boot], 2, ["colour"]),
        Case("options", "--tta bogus", ["classify", "--tta", "twist", boot], 2, ["--tta"]),
        Case("options", "not a number", ["classify", "--topk", "many", boot], 2, ["topk"]),
        Case("options", "unknown command", ["classifyy", boot], 2, ["classifyy"]),

        # ------------------------------------------------------------ datasets
        Case("datasets", "eval captioner with a missing test image", [
            "eval", "captioner", "--data", "s.json", "--json"], 1, ["gone.png"],
             setup=steps(copy(scene, "scene.png"), karpathy("s.json", [
                 scene_entry, dict(scene_entry, filename="gone.png")])),
             check=json_check(lambda d: None if d["count"] == 1 and len(d["skipped"]) == 1 and
                              d["skipped"][0]["path"].endswith("gone.png")
                              else "skipped not listed: %r" % d.get("skipped"))),
        Case("datasets", "eval classifier on a folder with a corrupt image", [
            "eval", "classifier", "--data", "folder", "--json"], 1, ["bad.png"],
             setup=steps(write("folder/Sneaker/bad.png", b"\x89PNG\r\n\x1a\nbroken"),
                         write("folder/Ankle boot/a.png", open(boot, "rb").read()),
                         write("folder/Sneaker/s.png", open(os.path.join(
                             fashion, "test0009-sneaker.png"), "rb").read())),
             check=json_check(lambda d: None if d["count"] == 2 and len(d["skipped"]) == 1
                              else "skipped not listed: %r" % d.get("skipped"))),
        Case("datasets", "Karpathy tokens of the wrong type", [
            "eval", "captioner", "--data", "s.json"], 4,
             ["s.json", "images[0].sentences[0].tokens"],
             setup=karpathy("s.json", [dict(scene_entry, sentences=[{"tokens": 7}])])),
        Case("datasets", "Karpathy entry without a filename", [
            "eval", "captioner", "--data", "s.json"], 4, ["s.json", "images[1]", "filename"],
             setup=karpathy("s.json", [scene_entry, {"split": "test", "sentences": []}])),
        Case("datasets", "Karpathy box of the wrong shape", [
            "eval", "captioner", "--data", "s.json"], 4, ["s.json", "images[0].objects[0].box"],
             setup=karpathy("s.json", [dict(scene_entry, objects=[{"word": "bag",
                                                                   "box": [1, 2]}])])),
        Case("datasets", "Karpathy JSON with no test images", [
            "eval", "captioner", "--data", "s.json"], 4, ["s.json", "test split"],
             setup=karpathy("s.json", [dict(scene_entry, split="train")])),
        Case("datasets", "Karpathy JSON whose images are all missing", [
            "eval", "captioner", "--data", "s.json"], 4, ["s.json", "scene.png"],
             setup=karpathy("s.json", [scene_entry])),
        Case("datasets", "Karpathy file that is not JSON", [
            "eval", "captioner", "--data", "s.json"], 4, ["s.json", "not valid JSON"],
             setup=write("s.json", b"{\"images\": [")),
        Case("datasets", "Karpathy file missing", ["eval", "captioner", "--data", "none.json"],
             4, ["none.json"]),
        Case("datasets", "eval maps on a folder of photos with a corrupt image", [
            "eval", "maps", "--data", "photos", "--methods", "rollout,random", "--steps", "2",
            "--road-percentiles", "none", "--json"], 1, ["bad.png"],
             setup=steps(write("photos/bad.png", b"\x89PNG\r\n\x1a\nbroken"),
                         write("photos/a.png", open(boot, "rb").read())),
             check=json_check(lambda d: None if d["count"] == 1 and len(d["skipped"]) == 1
                              else "skipped not listed: %r" % d.get("skipped"))),
        Case("options", "eval maps --plot to a format it cannot write", [
            "eval", "maps", "--plot", "curves.tiff"], 2, ["--plot", "curves.tiff"]),
        Case("options", "eval maps --methods with an unknown method", [
            "eval", "maps", "--methods", "rollout,lime"], 2, ["--methods", "lime"]),
        Case("datasets", "eval classifier on a missing folder", [
            "eval", "classifier", "--data", "nowhere"], 4, ["nowhere"]),
        Case("datasets", "eval classifier on a folder with no class folders", [
            "eval", "classifier", "--data", "flat"], 4, ["flat"],
             setup=lambda w: (os.makedirs(os.path.join(w, "flat")),
                              shutil.copy(boot, os.path.join(w, "flat")))),
    ]
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attn", required=True)
    parser.add_argument("--source", required=True, help="the source tree (weights/, samples/)")
    parser.add_argument("--work", required=True, help="scratch directory (emptied)")
    parser.add_argument("--only", default="", help="run the cases whose name holds this")
    args = parser.parse_args()
    attn = os.path.abspath(args.attn)
    source = os.path.abspath(args.source)
    work_root = os.path.abspath(args.work)
    logs = os.path.join(work_root, "logs")
    shutil.rmtree(work_root, ignore_errors=True)
    os.makedirs(logs)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               ATTNKIT_WEIGHTS=os.path.join(source, "weights"))
    failures = ran = 0
    for i, case in enumerate(build_cases(source, sys.executable)):
        if args.only and args.only not in case.name:
            continue
        problems, code, err, rss = run_case(case, attn, os.path.join(work_root, "case%02d" % i),
                                            logs, env)
        first = (err.strip().splitlines() or [""])[0]
        ran += 1
        failures += bool(problems)
        print("%-4s | %-8s | %-46s | %4s | %5.0f MB | %s" % (
            "ok" if not problems else "FAIL", case.kind, case.name[:46], code, rss, first[:200]))
        for p in problems:
            print("     - " + p)
        sys.stdout.flush()
    print("%d passed, %d failed" % (ran - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
