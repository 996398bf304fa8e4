#!/usr/bin/python3
"""Benchmark: attnkit vs PyTorch eager (Debian's python3-torch, same LibTorch) on the same weights.

Builds torchvision ViT-B/16 and ViT-S/16 with random weights, writes them as safetensors, imports
them with `attn import`, then times both at 224 for each batch size: PyTorch eager under
inference_mode, and `attn bench --model`, with the same thread count, median of --runs after
--warmup. Both run one after the other in this process tree so they see the same machine state.

Usage: tests/bench/vit_vs_pytorch.py --attn build/apps/attn [--threads 2] [--runs 10]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from vit_reference import save_safetensors  # noqa: E402

MODELS = {
    "vit_base_patch16_224": dict(image_size=224, patch_size=16, num_layers=12, num_heads=12,
                                 hidden_dim=768, mlp_dim=3072),
    "vit_small_patch16_224": dict(image_size=224, patch_size=16, num_layers=12, num_heads=6,
                                  hidden_dim=384, mlp_dim=1536),
}


def time_pytorch(model, batch, runs, warmup):
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn", required=True, help="path to the attn binary")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in MODELS.items():
            model = VisionTransformer(**cfg).eval()
            tv = os.path.join(tmp, name + ".torchvision.safetensors")
            ours = os.path.join(tmp, name + ".safetensors")
            save_safetensors(tv, model.state_dict())
            subprocess.run([args.attn, "import", tv, "-o", ours], check=True,
                           stderr=subprocess.DEVNULL)
            for batch in batches:
                torch_ms = time_pytorch(model, batch, args.runs, args.warmup)
                out = subprocess.run(
                    [args.attn, "bench", "--model", ours, "--batch-sizes", str(batch), "--runs",
                     str(args.runs), "--warmup", str(args.warmup), "--threads", str(args.threads),
                     "--json"], check=True, capture_output=True, text=True).stdout
                attn_ms = json.loads(out)[0]["ms_per_batch"]
                rows.append((name, batch, torch_ms, attn_ms))
    print(f"threads {args.threads}, median of {args.runs} runs after {args.warmup} warm-up, fp32")
    print(f"{'model':<24}{'batch':>6}{'pytorch ms/img':>16}{'attnkit ms/img':>16}{'speed-up':>10}")
    for name, batch, t, a in rows:
        print(f"{name:<24}{batch:>6}{t / batch:>16.1f}{a / batch:>16.1f}{t / a:>9.2f}x")


if __name__ == "__main__":
    main()
