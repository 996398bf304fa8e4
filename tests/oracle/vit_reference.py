#!/usr/bin/python3
"""Reference ViT logits from torchvision's VisionTransformer (Debian's python3-torchvision).

For each config it builds torchvision's model with random weights, writes them as safetensors in
three layouts (torchvision's own keys; timm's keys + config.json; Hugging Face's keys with q, k, v
split + config.json + preprocessor_config.json) and writes logits for fixed inputs: at the trained
size, and at a non-square size after resampling the position embeddings in torch (bicubic,
align_corners=False, antialias=True: timm's resample_abs_pos_embed).

Usage: vit_reference.py --out DIR [--configs small,base]
"""
import argparse
import json
import os
import struct

import torch
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer

CONFIGS = {
    # name: (image, patch, layers, heads, dim, mlp, classes, non-square input (h, w))
    "small": dict(image_size=64, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64,
                  mlp_dim=128, num_classes=10, other_size=(48, 80)),
    "patch8": dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                   mlp_dim=96, num_classes=5, other_size=(40, 24)),
    "base": dict(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768,
                 mlp_dim=3072, num_classes=1000, other_size=(160, 256)),
}

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata=None):
    """The safetensors layout (8-byte LE header size, JSON header, raw LE data), written by hand:
    Debian has no python3-safetensors."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (len(text) + 8) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def randomize(model, generator):
    """torchvision zero-initialises the head and biases; random values everywhere make every
    tensor matter to the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln.weight")):
                p.copy_(1.0 + 0.1 * noise)
            elif name in ("class_token", "encoder.pos_embedding"):
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.05 * noise)


def timm_keys(sd):
    out = {}
    for k, v in sd.items():
        n = k.replace("class_token", "cls_token").replace("conv_proj", "patch_embed.proj")
        n = n.replace("encoder.pos_embedding", "pos_embed").replace("encoder.ln.", "norm.")
        n = n.replace("heads.head.", "head.").replace("encoder.layers.encoder_layer_", "blocks.")
        n = n.replace(".ln_1.", ".norm1.").replace(".ln_2.", ".norm2.")
        n = n.replace(".self_attention.in_proj_", ".attn.qkv.").replace(".self_attention.out_proj.", ".attn.proj.")
        n = n.replace(".mlp.0.", ".mlp.fc1.").replace(".mlp.3.", ".mlp.fc2.")
        out[n] = v
    return out


def hf_keys(sd, dim):
    out = {}
    for k, v in sd.items():
        if k == "class_token":
            out["vit.embeddings.cls_token"] = v
        elif k == "encoder.pos_embedding":
            out["vit.embeddings.position_embeddings"] = v
        elif k.startswith("conv_proj."):
            out["vit.embeddings.patch_embeddings.projection." + k.split(".")[-1]] = v
        elif k.startswith("encoder.ln."):
            out["vit.layernorm." + k.split(".")[-1]] = v
        elif k.startswith("heads.head."):
            out["classifier." + k.split(".")[-1]] = v
        elif k.startswith("encoder.layers.encoder_layer_"):
            rest = k[len("encoder.layers.encoder_layer_"):]
            i, sub = rest.split(".", 1)
            p = f"vit.encoder.layer.{i}."
            kind = sub.split(".")[-1]
            if sub.startswith("self_attention.in_proj_"):
                kind = sub.split("_")[-1]
                q, kk, vv = v.split(dim, 0)
                out[p + "attention.attention.query." + kind] = q
                out[p + "attention.attention.key." + kind] = kk
                out[p + "attention.attention.value." + kind] = vv
            elif sub.startswith("self_attention.out_proj."):
                out[p + "attention.output.dense." + kind] = v
            elif sub.startswith("ln_1."):
                out[p + "layernorm_before." + kind] = v
            elif sub.startswith("ln_2."):
                out[p + "layernorm_after." + kind] = v
            elif sub.startswith("mlp.0."):
                out[p + "intermediate.dense." + kind] = v
            elif sub.startswith("mlp.3."):
                out[p + "output.dense." + kind] = v
            else:
                raise KeyError(k)
        else:
            raise KeyError(k)
    return out


def encode_any_size(model, images, patch):
    """torchvision's encoder layers on any input size, with the position embeddings resampled:
    the tokens after the final norm."""
    b, _, h, w = images.shape
    gh, gw = h // patch, w // patch
    x = model.conv_proj(images).flatten(2).transpose(1, 2)
    pos = model.encoder.pos_embedding
    side = int(round((pos.shape[1] - 1) ** 0.5))
    grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False, antialias=True)
    pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], 1)
    x = torch.cat([model.class_token.expand(b, -1, -1), x], 1) + pos
    return model.encoder.ln(model.encoder.layers(model.encoder.dropout(x)))


def forward_any_size(model, images, patch):
    return model.heads(encode_any_size(model, images, patch)[:, 0])


def random_attn_pool(dim, mlp, generator):
    """timm's AttentionPoolLatent parameters (one latent query), by their timm names."""
    shapes = {"latent": (1, 1, dim), "q.weight": (dim, dim), "q.bias": (dim,),
              "kv.weight": (2 * dim, dim), "kv.bias": (2 * dim,), "proj.weight": (dim, dim),
              "proj.bias": (dim,), "norm.weight": (dim,), "norm.bias": (dim,),
              "mlp.fc1.weight": (mlp, dim), "mlp.fc1.bias": (mlp,), "mlp.fc2.weight": (dim, mlp),
              "mlp.fc2.bias": (dim,)}
    pool = {k: 0.2 * torch.randn(s, generator=generator) for k, s in shapes.items()}
    pool["norm.weight"] += 1.0
    return pool


def attn_pool_forward(pool, tokens, heads):
    """timm's AttentionPoolLatent.forward (pool='token', no qk_norm), written out: the latent
    query attends over `tokens` (B, N, D), then proj and a residual MLP on the normed result."""
    b, n, dim = tokens.shape
    hd = dim // heads
    q = F.linear(pool["latent"].expand(b, -1, -1), pool["q.weight"], pool["q.bias"])
    q = q.reshape(b, 1, heads, hd).transpose(1, 2)
    kv = F.linear(tokens, pool["kv.weight"], pool["kv.bias"]).reshape(b, n, 2, heads, hd)
    k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
    weights = torch.softmax((q * hd ** -0.5) @ k.transpose(-2, -1), -1)
    x = (weights @ v).transpose(1, 2).reshape(b, 1, dim)
    x = F.linear(x, pool["proj.weight"], pool["proj.bias"])
    h = F.layer_norm(x, (dim,), pool["norm.weight"], pool["norm.bias"], 1e-6)
    h = F.linear(F.gelu(F.linear(h, pool["mlp.fc1.weight"], pool["mlp.fc1.bias"])),
                 pool["mlp.fc2.weight"], pool["mlp.fc2.bias"])
    return (x + h)[:, 0]


def write_raw(path, tensor):
    tensor.detach().contiguous().float().numpy().tofile(path)


def map_pool_entries(out):
    """The small config with timm's attention-pool (`map`) head, as timm checkpoints: once with
    the pool reading the patch tokens only (timm's default since mid-2025) and once with
    pool_include_prefix=True (the class token too)."""
    entries = []
    for name, include_prefix in (("small_map", False), ("small_map_prefix", True)):
        cfg = dict(CONFIGS["small"])
        other = cfg.pop("other_size")
        gen = torch.Generator().manual_seed(4321)
        model = VisionTransformer(**cfg).eval()
        randomize(model, gen)
        pool = random_attn_pool(cfg["hidden_dim"], cfg["mlp_dim"], gen)
        d = os.path.join(out, name)
        os.makedirs(os.path.join(d, "timm"), exist_ok=True)
        tensors = timm_keys(model.state_dict())
        tensors.update({"attn_pool." + k: v for k, v in pool.items()})
        save_safetensors(os.path.join(d, "timm", "model.safetensors"), tensors)
        json.dump({"architecture": "vit_small_map_test", "num_classes": cfg["num_classes"],
                   "global_pool": "map",
                   "model_args": {"num_heads": cfg["num_heads"], "global_pool": "map",
                                  "pool_include_prefix": include_prefix},
                   "pretrained_cfg": {"input_size": [3, cfg["image_size"], cfg["image_size"]],
                                      "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}},
                  open(os.path.join(d, "timm", "config.json"), "w"), indent=1)
        entry = {"name": name, "config": cfg, "cases": []}
        for tag, (h, w) in (("native", (cfg["image_size"], cfg["image_size"])), ("other", tuple(other))):
            images = torch.randn(2, 3, h, w, generator=gen)
            with torch.no_grad():
                tokens = encode_any_size(model, images, cfg["patch_size"])
                pooled = attn_pool_forward(pool, tokens if include_prefix else tokens[:, 1:],
                                           cfg["num_heads"])
                logits = model.heads(pooled)
            write_raw(os.path.join(d, f"{tag}_input.f32"), images)
            write_raw(os.path.join(d, f"{tag}_logits.f32"), logits)
            entry["cases"].append({"tag": tag, "input_shape": list(images.shape),
                                   "logits_shape": list(logits.shape)})
        entries.append(entry)
    return entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--configs", default="small,patch8,base")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # The manifest is the "complete" marker: remove it first, write it last and atomically.
    manifest_path = os.path.join(args.out, "manifest.json")
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
    torch.set_num_threads(2)
    manifest = []
    for name in args.configs.split(","):
        cfg = dict(CONFIGS[name])
        other = cfg.pop("other_size")
        gen = torch.Generator().manual_seed(1234)
        model = VisionTransformer(**cfg).eval()
        randomize(model, gen)
        sd = model.state_dict()
        d = os.path.join(args.out, name)
        for sub in ("timm", "hf"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        save_safetensors(os.path.join(d, "torchvision.safetensors"), sd)
        save_safetensors(os.path.join(d, "timm", "model.safetensors"), timm_keys(sd))
        arch = "vit_base_patch16_224" if name == "base" else f"vit_{name}_test"
        timm_cfg = {"architecture": arch, "num_classes": cfg["num_classes"], "global_pool": "token",
                    "model_args": {"num_heads": cfg["num_heads"]},
                    "pretrained_cfg": {"tag": "oracle", "input_size": [3, cfg["image_size"], cfg["image_size"]],
                                       "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
                                       "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                                       "num_classes": cfg["num_classes"]}}
        if name != "base":
            timm_cfg["label_names"] = [f"label {i}" for i in range(cfg["num_classes"])]
        json.dump(timm_cfg, open(os.path.join(d, "timm", "config.json"), "w"), indent=1)
        save_safetensors(os.path.join(d, "hf", "model.safetensors"), hf_keys(sd, cfg["hidden_dim"]))
        hf_cfg = {"architectures": ["ViTForImageClassification"], "model_type": "vit",
                  "hidden_size": cfg["hidden_dim"], "num_hidden_layers": cfg["num_layers"],
                  "num_attention_heads": cfg["num_heads"], "intermediate_size": cfg["mlp_dim"],
                  "hidden_act": "gelu", "layer_norm_eps": 1e-6, "image_size": cfg["image_size"],
                  "patch_size": cfg["patch_size"], "num_channels": 3, "qkv_bias": True,
                  "id2label": {str(i): f"hf label {i}" for i in range(cfg["num_classes"])}}
        json.dump(hf_cfg, open(os.path.join(d, "hf", "config.json"), "w"), indent=1)
        json.dump({"do_resize": True, "size": {"height": cfg["image_size"], "width": cfg["image_size"]},
                   "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                   "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
                  open(os.path.join(d, "hf", "preprocessor_config.json"), "w"), indent=1)

        entry = {"name": name, "config": cfg, "cases": []}
        for tag, (h, w) in (("native", (cfg["image_size"], cfg["image_size"])), ("other", tuple(other))):
            images = torch.randn(2, 3, h, w, generator=gen)
            with torch.no_grad():
                logits = model(images) if tag == "native" else forward_any_size(model, images, cfg["patch_size"])
                if tag == "native":  # the manual path must agree with torchvision's own forward
                    assert torch.allclose(logits, forward_any_size(model, images, cfg["patch_size"]), atol=1e-5)
            write_raw(os.path.join(d, f"{tag}_input.f32"), images)
            write_raw(os.path.join(d, f"{tag}_logits.f32"), logits)
            entry["cases"].append({"tag": tag, "input_shape": list(images.shape),
                                   "logits_shape": list(logits.shape)})
        manifest.append(entry)
    if "small" in args.configs.split(","):
        manifest += map_pool_entries(args.out)
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)


if __name__ == "__main__":
    main()
