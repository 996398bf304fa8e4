#!/usr/bin/python3
"""Writes a torchvision ViT with random weights (every tensor random, the head included, as the
oracles randomise) to a safetensors file that `attn import` reads: the README's random-weights
control for `attn eval maps`.

Usage: tests/bench/make_random_vit.py --out vit-b16.torchvision.safetensors
       [--model vit_base_patch16_224] [--seed 0]
then:  attn import vit-b16.torchvision.safetensors -o vit-b16-random.safetensors
"""
import argparse
import os
import sys

import torch
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from vit_reference import randomize, save_safetensors  # noqa: E402

MODELS = {
    "vit_base_patch16_224": dict(image_size=224, patch_size=16, num_layers=12, num_heads=12,
                                 hidden_dim=768, mlp_dim=3072),
    "vit_small_patch16_224": dict(image_size=224, patch_size=16, num_layers=12, num_heads=6,
                                  hidden_dim=384, mlp_dim=1536),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="vit_base_patch16_224", choices=sorted(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = VisionTransformer(**MODELS[args.model]).eval()
    randomize(model, torch.Generator().manual_seed(args.seed))
    save_safetensors(args.out, model.state_dict())


if __name__ == "__main__":
    main()
