#!/usr/bin/python3
"""Reference attention maps from torchvision's VisionTransformer, attention captured with hooks.

torchvision's encoder blocks call their nn.MultiheadAttention with need_weights=False, so a
forward hook sees no weights; the hook here wraps each block's attention call, records the
per-head weights and checks its output against torchvision's. From those it
computes, in float64:
  - the last layer's class-token attention over the patches, fused by mean / max / min and for
    one head;
  - attention rollout (Abnar and Zuidema 2020): A = 0.5 W + 0.5 I, rows renormalised, multiplied
    over the layers, class-token row; with a discard ratio (the lowest entries of each fused
    matrix zeroed, the class token's self-attention kept, as in Gildenblat's vit-explain);
  - gradient rollout: per layer mean over heads of max(0, W * d logit_c / d W), rolled out;
  - relevance propagation (Chefer, Gur and Wolf, ICCV 2021): R = I, then per layer
    R = R + mean over heads of max(0, d logit_c / d W * W) @ R, class-token row;
  - patch attention: the row of one patch token (cell 1, 2) in the last layer's fused attention,
    in layer 1's head 2, and in the rolled-out matrix (mean; max with discard 0.5);
  - Grad-CAM on the token grid (Selvaraju et al. 2017 as pytorch-grad-cam applies it to a ViT):
    the tokens a block's attention reads (its ln_1 output), patch tokens only, each channel
    weighted by its gradient averaged over the patches, summed, max(0, .); for the last block
    and for block 1.
At the native 64x64 input (an 8x8 grid) and at 48x80 (a 6x10 grid: position embeddings
resampled as vit_reference.py does).

Usage: attention_maps_reference.py --out DIR
"""
import argparse
import json
import os

import torch
from torchvision.models.vision_transformer import VisionTransformer

from vit_reference import forward_any_size, randomize, save_safetensors, write_raw

CONFIG = dict(image_size=64, patch_size=8, num_layers=3, num_heads=4, hidden_dim=32, mlp_dim=64,
              num_classes=5)
SIZES = {"native": (64, 64), "nonsquare": (48, 80)}
PATCH_CELL = (1, 2)  # the query patch of the patch maps: row 1, column 2


def capture_attention(model, inputs):
    """Makes every block record its (B, H, N, N) attention weights into the returned list, and
    the (B, N, D) tokens its attention reads (ln_1's output) into `inputs`.

    The weights nn.MultiheadAttention returns are a view that the output does not depend on, so
    they carry no gradient; the wrapper recomputes the output from them (softmax(q k^T / sqrt(d))
    v, then out_proj) and checks it against torchvision's own output."""
    store = []
    for layer in model.encoder.layers:
        attention = layer.self_attention
        original = attention.forward

        def forward(query, key, value, attention=attention, original=original, **kwargs):
            kwargs["need_weights"] = True
            kwargs["average_attn_weights"] = False
            query.retain_grad()
            inputs.append(query)
            reference, _ = original(query, key, value, **kwargs)
            b, n, d = query.shape
            heads = attention.num_heads
            q, k, v = torch.nn.functional.linear(query, attention.in_proj_weight,
                                                 attention.in_proj_bias).chunk(3, dim=-1)
            q, k, v = (t.reshape(b, n, heads, d // heads).transpose(1, 2) for t in (q, k, v))
            weights = torch.softmax(q @ k.transpose(-2, -1) / (d // heads) ** 0.5, dim=-1)
            weights.retain_grad()
            out = attention.out_proj((weights @ v).transpose(1, 2).reshape(b, n, d))
            assert torch.allclose(out, reference, atol=1e-5), "recomputed attention differs"
            store.append(weights)
            return out, weights

        attention.forward = forward
    return store


def fuse(attention, how):
    if how == "mean":
        return attention.mean(1)
    if how == "max":
        return attention.max(1).values
    return attention.min(1).values


def discard(fused, ratio):
    if ratio <= 0:
        return fused
    flat = fused.reshape(fused.shape[0], -1).clone()
    count = int(flat.shape[1] * ratio)
    _, lowest = flat.topk(count, dim=1, largest=False)
    for b in range(flat.shape[0]):
        indices = lowest[b][lowest[b] != 0]
        flat[b, indices] = 0
    return flat.view(fused.shape)


def rollout(fused_layers, row=0):
    """The rolled-out matrix's row for token `row` (0: the class token) over the patches."""
    n = fused_layers[0].shape[-1]
    result = torch.eye(n, dtype=torch.float64).expand(fused_layers[0].shape[0], n, n)
    for w in fused_layers:
        a = 0.5 * w + 0.5 * torch.eye(n, dtype=torch.float64)
        a = a / a.sum(-1, keepdim=True)
        result = a @ result
    return result[:, row, 1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "manifest.json")
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(4321)
    model = VisionTransformer(**CONFIG).eval()
    randomize(model, gen)
    save_safetensors(os.path.join(args.out, "torchvision.safetensors"), model.state_dict())
    inputs = []
    store = capture_attention(model, inputs)
    manifest = {"config": CONFIG, "cases": []}
    for tag, (h, w) in SIZES.items():
        store.clear()
        inputs.clear()
        images = torch.randn(2, 3, h, w, generator=gen)
        logits = model(images) if tag == "native" else forward_any_size(model, images, CONFIG["patch_size"])
        target = 3
        model.zero_grad()
        logits[:, target].sum().backward()
        attentions = [a.detach().double() for a in store]
        gradients = [a.grad.detach().double() for a in store]
        grid = (h // CONFIG["patch_size"], w // CONFIG["patch_size"])
        maps = {}
        for how in ("mean", "max", "min"):
            maps[f"cls_{how}"] = fuse(attentions[-1], how)[:, 0, 1:]
        maps["cls_head2"] = attentions[-1][:, 2, 0, 1:]
        for how in ("mean", "max"):
            for ratio in (0.0, 0.5):
                fused = [discard(fuse(a, how), ratio) for a in attentions]
                maps[f"rollout_{how}_{ratio}"] = rollout(fused)
        # Patch attention: the token of cell (1, 2)'s row, one layer or rolled out.
        query = 1 + PATCH_CELL[0] * grid[1] + PATCH_CELL[1]
        maps["patch_last_mean"] = fuse(attentions[-1], "mean")[:, query, 1:]
        maps["patch_layer1_head2"] = attentions[1][:, 2, query, 1:]
        maps["patch_rollout_mean_0.0"] = rollout([fuse(a, "mean") for a in attentions], query)
        maps["patch_rollout_max_0.5"] = rollout(
            [discard(fuse(a, "max"), 0.5) for a in attentions], query)
        weighted = [(a * g).clamp(min=0).mean(1) for a, g in zip(attentions, gradients)]
        maps["grad_rollout"] = rollout(weighted)
        n = attentions[0].shape[-1]
        relevance = torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
        for cam in weighted:
            relevance = relevance + cam @ relevance
        maps["relevance"] = relevance[:, 0, 1:]
        for name, layer in (("gradcam_last", -1), ("gradcam_layer1", 1)):
            tokens = inputs[layer].detach().double()[:, 1:]
            grads = inputs[layer].grad.detach().double()[:, 1:]
            channel_weights = grads.mean(1, keepdim=True)
            maps[name] = (tokens * channel_weights).sum(-1).clamp(min=0)
        write_raw(os.path.join(args.out, f"{tag}_input.f32"), images)
        case = {"tag": tag, "input_shape": list(images.shape), "grid": list(grid),
                "target_class": target, "maps": []}
        for name, m in maps.items():
            write_raw(os.path.join(args.out, f"{tag}_{name}.f32"), m.reshape(2, *grid))
            case["maps"].append(name)
        manifest["cases"].append(case)
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)


if __name__ == "__main__":
    main()
