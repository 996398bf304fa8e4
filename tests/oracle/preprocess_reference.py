# tests/oracle/preprocess_reference.py: reference eval-transform outputs from PIL + torchvision.
"""Writes what the Python tools produce, for tests/vision/image/preprocess_test.cpp to compare against.

For every photo in samples/ and a few synthetic images (odd sizes, a tiny one, a grey PNG and an
RGBA PNG written into OUT/inputs), it runs the eval transform that timm's
transforms_imagenet_eval builds (torchvision Resize, CenterCrop, ToTensor, Normalize on
PIL.Image.open(p).convert('RGB')) and stores the float32 result as raw little-endian bytes.
It also stores plain PIL Image.resize results (uint8, HWC) for every resampling filter.

OUT/manifest.json lists {"kind": "preprocess", "input", "config", "shape", "output"} and
{"kind": "resize", "input", "mode", "width", "height", "interpolation", "shape", "output"}.

Run with Debian's interpreter (/usr/bin/python3), which has PIL, torch and torchvision.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image
import torch
from torchvision import transforms
from torchvision.transforms import InterpolationMode
import torchvision.transforms.functional as F

MEAN = (0.485, 0.456, 0.406)  # ImageNet, timm's IMAGENET_DEFAULT_MEAN
STD = (0.229, 0.224, 0.225)

INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "box": InterpolationMode.BOX,
    "bilinear": InterpolationMode.BILINEAR,
    "hamming": InterpolationMode.HAMMING,
    "bicubic": InterpolationMode.BICUBIC,
    "lanczos": InterpolationMode.LANCZOS,
}
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

# (name, height, width, crop_pct, crop_mode, channels)
CONFIGS = [
    ("c224_0875", 224, 224, 0.875, "center", 3),  # timm default
    ("c224_09", 224, 224, 0.9, "center", 3),  # many timm ViTs
    ("squash224_1", 224, 224, 1.0, "squash", 3),  # Hugging Face ViTImageProcessor
    ("c160x224_0875", 160, 224, 0.875, "center", 3),  # non-square target
    ("squash160x224_09", 160, 224, 0.9, "squash", 3),
    ("grey_c224_0875", 224, 224, 0.875, "center", 1),
]
# Only on some inputs: crop_pct > 1 makes CenterCrop pad (timm accepts it; stored configs don't).
PAD_CONFIG = ("pad_c224_125", 224, 224, 1.25, "center", 3)


def resize_keep_ratio(img, scale_h, scale_w, interpolation):
    """timm ResizeKeepRatio(size, longest=0): smallest aspect-kept size covering the target."""
    w, h = img.size
    ratio = min(h / scale_h, w / scale_w)
    size = [round(h / ratio), round(w / ratio)]
    return F.resize(img, size, interpolation)


def eval_transform(height, width, crop_pct, crop_mode, interpolation, channels):
    """timm transforms_imagenet_eval (center / squash), with torchvision's PIL path."""
    scale_h = math.floor(height / crop_pct)
    scale_w = math.floor(width / crop_pct)
    mode = INTERPOLATIONS[interpolation]
    if crop_mode == "squash":
        steps = [transforms.Resize((scale_h, scale_w), interpolation=mode)]
    elif scale_h == scale_w:
        steps = [transforms.Resize(scale_h, interpolation=mode)]
    else:
        steps = [lambda img: resize_keep_ratio(img, scale_h, scale_w, mode)]
    steps += [
        transforms.CenterCrop((height, width)),
        transforms.ToTensor(),
        transforms.Normalize(MEAN[:channels], STD[:channels]),
    ]
    return transforms.Compose(steps)


def make_synthetic_inputs(inputs_dir, samples):
    """Odd sizes, a tiny image, a thin strip, a grey PNG and an RGBA PNG."""
    rng = np.random.default_rng(20240611)
    paths = []

    def save(name, array, mode=None):
        path = os.path.join(inputs_dir, name)
        Image.fromarray(array, mode).save(path)
        paths.append(path)

    # Smooth gradients plus noise: resampling errors show on edges and on flat areas.
    yy, xx = np.mgrid[0:333, 0:517]
    smooth = np.stack([xx * 255 // 516, yy * 255 // 332, (xx + yy) * 255 // 848], axis=-1)
    noise = rng.integers(-40, 41, size=smooth.shape)
    save("odd_333x517.png", np.clip(smooth + noise, 0, 255).astype(np.uint8))
    save("tiny_5x7.png", rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8))
    save("strip_31x401.png", rng.integers(0, 256, size=(31, 401, 3), dtype=np.uint8))
    save("tall_301x97.png", rng.integers(0, 256, size=(301, 97, 3), dtype=np.uint8))

    cat = os.path.join(samples, "chelsea.png")
    if os.path.exists(cat):
        grey = Image.open(cat).convert("L")
        path = os.path.join(inputs_dir, "chelsea_grey.png")
        grey.save(path)
        paths.append(path)
        rgba = Image.open(cat).convert("RGBA")
        alpha = np.tile(np.linspace(0, 255, rgba.size[0]).astype(np.uint8), (rgba.size[1], 1))
        rgba.putalpha(Image.fromarray(alpha, "L"))
        path = os.path.join(inputs_dir, "chelsea_rgba.png")
        rgba.save(path)
        paths.append(path)
    return paths


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for manifest.json and outputs")
    parser.add_argument("--samples", default=os.path.join(here, "..", "..", "samples"))
    args = parser.parse_args()

    samples = os.path.abspath(args.samples)
    inputs_dir = os.path.join(args.out, "inputs")
    os.makedirs(inputs_dir, exist_ok=True)
    photos = sorted(
        os.path.join(samples, f)
        for f in os.listdir(samples)
        if f.lower().endswith((".png", ".jpg", ".jpeg"))
    )
    if not photos:
        sys.exit(f"no photos in {samples}")
    synthetic = make_synthetic_inputs(inputs_dir, samples)
    manifest = []

    def write(name, array):
        path = os.path.join(args.out, name)
        np.ascontiguousarray(array).tofile(path)
        return name

    # The full eval transform.
    for path in photos + synthetic:
        stem = os.path.splitext(os.path.basename(path))[0]
        configs = list(CONFIGS)
        if "tiny" in stem or "chelsea" == stem:
            configs.append(PAD_CONFIG)
        interpolations = ["bicubic", "bilinear"]
        if stem == "chelsea" or stem.startswith("odd"):
            interpolations = list(INTERPOLATIONS)
        for name, height, width, crop_pct, crop_mode, channels in configs:
            for interpolation in interpolations:
                transform = eval_transform(height, width, crop_pct, crop_mode, interpolation,
                                           channels)
                img = Image.open(path).convert("L" if channels == 1 else "RGB")
                out = transform(img)
                assert out.dtype == torch.float32
                config = {
                    "height": height, "width": width, "crop_pct": crop_pct,
                    "crop_mode": crop_mode, "interpolation": interpolation,
                    "mean": list(MEAN), "std": list(STD), "channels": channels,
                }
                array = out.numpy().astype("<f4")
                manifest.append({
                    "kind": "preprocess",
                    "input": path,
                    "config": config,
                    "shape": list(array.shape),
                    "output": write(f"pre_{stem}_{name}_{interpolation}.f32", array),
                })

    # Plain Image.resize, down and up, every filter, RGB and L.
    sizes = [(224, 149), (97, 301), (451, 13), (7, 4), (640, 480)]
    for path in [os.path.join(samples, "chelsea.png")] + synthetic[:2]:
        if not os.path.exists(path):
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        for mode in ("RGB", "L"):
            img = Image.open(path).convert(mode)
            for width, height in sizes:
                for interpolation, pil_filter in PIL_FILTERS.items():
                    array = np.asarray(img.resize((width, height), pil_filter), dtype=np.uint8)
                    manifest.append({
                        "kind": "resize",
                        "input": path,
                        "mode": mode,
                        "width": width,
                        "height": height,
                        "interpolation": interpolation,
                        "shape": list(array.shape),
                        "output": write(
                            f"rs_{stem}_{mode}_{width}x{height}_{interpolation}.u8", array),
                    })

    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{len(manifest)} reference outputs in {args.out}")


if __name__ == "__main__":
    main()
