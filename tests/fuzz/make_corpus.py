#!/usr/bin/python3
"""tests/fuzz/make_corpus.py: writes the fuzzers' seed corpora (tests/fuzz/corpus/<target>/):
small valid inputs of each kind, from the shipped weights' metadata and tiny generated files.
Run from the repository root with Debian's python3 (PIL, numpy); the output is committed."""
import io
import json
import os
import struct

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def safetensors_bytes(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes), laid out in order."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def shipped_metadata(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))["__metadata__"]


def safetensors_seeds():
    f32 = np.arange(6, dtype="<f4").tobytes()
    write("safetensors", "f32_with_metadata",
          safetensors_bytes({"w": ("F32", [2, 3], f32)}, {"attnkit.arch": "vit"}))
    write("safetensors", "mixed_dtypes", safetensors_bytes({
        "a": ("F16", [2], np.ones(2, "<f2").tobytes()),
        "b": ("BF16", [1, 2], b"\x80\x3f\x00\x40"),
        "c": ("I64", [3], np.arange(3, dtype="<i8").tobytes()),
        "d": ("U8", [0], b""),
        "e": ("BOOL", [], b"\x01")}))
    write("safetensors", "empty", safetensors_bytes({}))


def metadata_seeds():
    vit = shipped_metadata("weights/fashion-vit.safetensors")
    captioner = shipped_metadata("weights/scenes-captioner.safetensors")
    write("model_metadata", "fashion_vit.json", json.dumps(vit))
    write("model_metadata", "scenes_captioner.json", json.dumps(captioner))
    # The config branches the shipped files do not take: a stem, map pooling, registers,
    # DeiT distillation, hard attention.
    config = json.loads(vit["attnkit.config"])
    config.update(stem_channels=[8, 16], stem_strides=[2, 1], pooling="map", register_tokens=2,
                  class_token=True, qk_norm=True, layer_scale=True)
    write("model_metadata", "vit_stem_map.json", json.dumps(dict(vit, **{
        "attnkit.config": json.dumps(config)})))
    deit = {"image_size": 32, "patch_size": 8, "dim": 64, "num_heads": 2, "depth": 1,
            "mlp_hidden_dim": 64, "distillation_token": True, "num_classes": 2}
    write("model_metadata", "deit.json", json.dumps({
        "attnkit.arch": "vit", "attnkit.config": json.dumps(deit),
        "attnkit.labels": json.dumps(["a", "b"]),
        "attnkit.preprocess": json.dumps({"height": 32, "width": 32, "crop_pct": 0.9,
                                          "crop_mode": "center", "interpolation": "bicubic"})}))
    config = json.loads(captioner["attnkit.config"])
    config["mode"] = "hard"
    write("model_metadata", "captioner_hard.json", json.dumps(dict(captioner, **{
        "attnkit.config": json.dumps(config)})))


def karpathy_seeds():
    doc = {"dataset": "tiny", "images": [
        {"filepath": "train", "filename": "a.png", "split": "train", "imgid": 0,
         "sentences": [{"tokens": ["a", "bag"], "raw": "A bag."}, {"raw": "A bag, left of it."}]},
        {"filename": "b.png", "split": "test",
         "sentences": [{"tokens": ["a", "coat", "above", "a", "shirt"]}],
         "objects": [{"word": "coat", "box": [0, 0, 28, 28]}, {"word": "shirt", "box": [0, 28, 28, 28]}]},
        {"filename": "c.png", "split": "restval", "sentences": [{"raw": "Two boots"}]}]}
    write("karpathy", "tiny.json", json.dumps(doc))


def image_seeds():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    grey = rgb.convert("L")
    rgba = rgb.convert("RGBA")

    def encoded(image, fmt, **options):
        out = io.BytesIO()
        image.save(out, fmt, **options)
        return out.getvalue()

    write("image", "rgb.png", encoded(rgb, "PNG"))
    write("image", "grey.png", encoded(grey, "PNG"))
    write("image", "rgba.png", encoded(rgba, "PNG"))
    write("image", "palette.png", encoded(rgb.convert("P"), "PNG"))
    write("image", "rgb16.png", encoded(Image.fromarray(
        rng.integers(0, 65536, (4, 4), dtype=np.uint16).astype(np.int32), "I"), "PNG"))
    write("image", "baseline.jpg", encoded(rgb, "JPEG", quality=90))
    write("image", "progressive.jpg", encoded(rgb, "JPEG", progressive=True))
    write("image", "grey.jpg", encoded(grey, "JPEG"))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees
    write("image", "exif_rotated.jpg", encoded(rgb, "JPEG", exif=exif.tobytes()))
    write("image", "rgb.bmp", encoded(rgb, "BMP"))
    write("image", "lossless.webp", encoded(rgb, "WEBP", lossless=True))
    write("image", "lossy.webp", encoded(rgb, "WEBP", quality=50))
    write("image", "rgb.tiff", encoded(rgb, "TIFF"))
    write("image", "grey.ppm", encoded(grey, "PPM"))


if __name__ == "__main__":
    safetensors_seeds()
    metadata_seeds()
    karpathy_seeds()
    image_seeds()
