#!/usr/bin/python3
"""Training throughput: `attn train classifier` against the same recipe written in PyTorch.

Both peers train the shipped Fashion-MNIST recipe (apps/train_classifier.cpp's defaults): the
fashion-vit architecture (four 3x3 conv + BatchNorm + ReLU stem stages, strides 1, 2, 1, 2, a 1x1
projection to 49 tokens of width 128, 6 pre-norm blocks with exact GELU, no class token, mean
pooling with fc_norm, LayerNorm eps 1e-6), batch 128, random crop after 2-pixel zero padding,
horizontal flip, random erasing (p 0.25), label smoothing 0.1, AdamW (weight decay 0.05, none on
1-d parameters and position embeddings), per-step warm-up + cosine learning rate and gradient
clipping at 1.0, in fp32 and, where the CPU computes bf16 natively (avx512_bf16 or amx_bf16 in
/proc/cpuinfo, as attnkit's --precision auto decides), under bf16 autocast.

attnkit runs as the real binary, `attn train classifier --limit STEPS*BATCH --val-count 0
--epochs 2`, and its figure is the second epoch's `images_per_second` from log.jsonl: the
trainer's own clock over that epoch's steps (batch assembly, augmentation, forward, backward,
clipping, optimizer step), so start-up, the first epoch's warm-up, validation and checkpoint
writes are all outside it. PyTorch (Debian's python3-torch, which runs on the same
libtorch_cpu as attn) runs in this process the same loop with the same ops, the same batches and
the same augmentation draws (every random number comes from the same (seed, step) generators):
--warmup untimed steps, then the STEPS steps of attnkit's second epoch, timed as one block with
the same span of work. Both sides' Linear layers train through at::linear (one addmm with the
bias for (B, N, D) inputs): nn.Linear here, attention::Linear's exact path in attnkit (which
used the C++ frontend's functional linear, a matmul and then `+= bias`, 10-13% slower in bf16,
until this script showed it). Each round runs attnkit
fp32, PyTorch fp32, attnkit bf16, PyTorch bf16, in that order; the table gives each peer's median
images/s over the rounds and attnkit/PyTorch (above 1 = attnkit faster), with the CPU, its
features, the load average and the date at the top.

Usage: tests/bench/train_vs_pytorch.py --attn build/apps/attn [--steps 40] [--batch-size 128]
       [--rounds 2] [--threads 2] [--warmup 2] [--json out.json]
"""
import argparse
import datetime
import gzip
import json
import math
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

# The recipe: ClassifierTrainOptions and AugmentOptions defaults, fashion_mnist_preprocess().
RECIPE = dict(batch_size=128, lr=1e-3, min_lr=1e-5, warmup_epochs=2, weight_decay=0.05,
              label_smoothing=0.1, grad_clip=1.0, crop_padding=2, flip=True, erase=0.25,
              seed=0, mean=0.2860, std=0.3530, classes=10)
# fashion_vit_config() in apps/train_classifier.cpp, the rest ViTConfig's defaults.
VIT = dict(in_channels=1, image_size=28, patch_size=4, stem_channels=(32, 64, 64, 128),
           stem_strides=(1, 2, 1, 2), dim=128, depth=6, num_heads=4, mlp_hidden_dim=256,
           norm_eps=1e-6, num_classes=10)


# ---------------------------------------------------------------------------------------------
# The machine


def describe_cpu():
    """(model name, {flag: present}) from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    return model, {name: name in flags for name in FLAGS}


# ---------------------------------------------------------------------------------------------
# Data and randomness, as vision/data and vision/train do them


def read_idx(path):
    """An idx file of unsigned bytes (gzip or plain) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, kind, ndims = struct.unpack(">HBB", data[:4])
    if zero != 0 or kind != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes")
    shape = struct.unpack(f">{ndims}I", data[4:4 + 4 * ndims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndims).reshape(shape)


def load_fashion_train(directory):
    """Training images (N, 1, 28, 28) uint8 and labels (N) int64, as load_fashion_mnist."""
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(directory, name)):
                return os.path.join(directory, name)
        raise FileNotFoundError(f"{directory}: no {stem}[.gz]")
    images = read_idx(find("train-images-idx3-ubyte"))
    labels = read_idx(find("train-labels-idx1-ubyte"))
    return (torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


def mix_seed(seed, stream, index):
    """vision/train/train_state.cpp's mix_seed (splitmix64's finaliser), in uint64 arithmetic."""
    mask = (1 << 64) - 1
    x = (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + index) & mask
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & mask
    x ^= x >> 29
    return x


def generator(seed):
    # at::detail::createCPUGenerator(seed) is an mt19937 seeded so: the same stream.
    return torch.Generator().manual_seed(seed)


def uniform(gen, low=0.0, high=1.0):
    return torch.empty(1, dtype=torch.double).uniform_(low, high, generator=gen).item()


def augment_geometry(images, pad, flip, gen):
    """Random crop after zero padding and horizontal flip, per image, on uint8 pixels."""
    batch, _, height, width = images.shape
    padded = torch.constant_pad_nd(images, [pad, pad, pad, pad], 0.0) if pad > 0 else images
    out = torch.empty_like(images)
    flips = (torch.rand(batch, generator=gen) < 0.5).tolist()
    offsets = torch.randint(2 * pad + 1, (batch, 2), generator=gen, dtype=torch.long).tolist()
    for b in range(batch):
        crop = padded[b].narrow(1, offsets[b][0], height).narrow(2, offsets[b][1], width)
        if flip and flips[b]:
            crop = crop.flip([2])
        out[b].copy_(crop)
    return out


def normalize_pixels(pixels, mean, std):
    # x / 255, then (x - mean) / std in float32, as preprocess.cpp (torchvision's order).
    out = pixels.to(torch.float32).contiguous().div_(255)
    return out.sub_(torch.tensor([mean], dtype=torch.float32).view(1, 1, 1)).div_(
        torch.tensor([std], dtype=torch.float32).view(1, 1, 1))


def random_erase_(images, probability, gen):
    """timm's RandomErasing, mode 'pixel', in place on normalised images (augment.cpp)."""
    if probability <= 0:
        return
    batch, _, height, width = images.shape
    area = float(height * width)
    for b in range(batch):
        if uniform(gen) >= probability:
            continue
        for _ in range(10):
            target = area * uniform(gen, 0.02, 1.0 / 3.0)
            aspect = math.exp(uniform(gen, math.log(0.3), math.log(1.0 / 0.3)))
            # std::lround rounds halves away from zero; Python's round() would not.
            h = int(math.floor(math.sqrt(target * aspect) + 0.5))
            w = int(math.floor(math.sqrt(target / aspect) + 0.5))
            if h < 1 or w < 1 or h >= height or w >= width:
                continue
            top = torch.randint(height - h + 1, (1,), generator=gen, dtype=torch.long).item()
            left = torch.randint(width - w + 1, (1,), generator=gen, dtype=torch.long).item()
            images[b].narrow(1, top, h).narrow(2, left, w).normal_(0.0, 1.0, generator=gen)
            break


def smooth_targets(labels, classes, smoothing):
    targets = torch.full((labels.shape[0], classes), smoothing / classes)
    return targets.scatter_add_(1, labels.view(-1, 1),
                                torch.full((labels.shape[0], 1), 1.0 - smoothing))


def soft_cross_entropy(logits, targets):
    return -(targets * torch.log_softmax(logits.to(torch.float32), 1)).sum(1).mean()


def warmup_cosine_lr(step, warmup_steps, total_steps, base_lr, min_lr):
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps - 1)
    progress = min(max((step - warmup_steps) / decay_steps, 0.0), 1.0)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# The model: vision/models/{vit,vit_block,patch_embed}.cpp and attention/*, with attnkit's
# parameter names so the two state dicts can be compared key by key.


class StemConv(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class PatchEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        channels, stride = c["in_channels"], 1
        stages = []
        for cout, s in zip(c["stem_channels"], c["stem_strides"]):
            stages.append(StemConv(channels, cout, s))
            channels, stride = cout, stride * s
        self.stem = nn.ModuleList(stages)
        kernel = c["patch_size"] // stride  # 1: a 1x1 projection after the stride-4 stem
        self.proj = nn.Conv2d(channels, c["dim"], kernel, stride=kernel)

    def forward(self, x):
        for stage in self.stem:
            x = stage(x)
        return self.proj(x).flatten(2).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, residual):
        batch, tokens, dim = x.shape
        head_dim = dim // self.heads
        qkv = self.qkv(x)
        bf16 = qkv.dtype == torch.bfloat16  # under autocast
        q, k, v = qkv.view(batch, tokens, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        # attend_core: scale q, matmul, softmax in fp32, weights back to bf16 for the product.
        q = q * (1.0 / math.sqrt(head_dim))
        weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)), -1, dtype=torch.float32)
        out = torch.matmul(weights.to(torch.bfloat16) if bf16 else weights, v)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        # Linear::forward_add when training. nn.Linear is at::linear, not attnkit's C++-frontend
        # linear (matmul + bias add): idiomatic PyTorch, and the docstring says so.
        return residual + self.proj(out)


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, residual):
        return residual + self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm1 = nn.LayerNorm(c["dim"], eps=c["norm_eps"])
        self.attn = SelfAttention(c["dim"], c["num_heads"])
        self.norm2 = nn.LayerNorm(c["dim"], eps=c["norm_eps"])
        self.mlp = FeedForward(c["dim"], c["mlp_hidden_dim"])

    def forward(self, x):
        h = self.attn(self.norm1(x), x)
        return self.mlp(self.norm2(h), h)


class FashionViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        grid = c["image_size"] // c["patch_size"]
        self.patch_embed = PatchEmbed(c)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, c["dim"]))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["depth"]))
        self.fc_norm = nn.LayerNorm(c["dim"], eps=c["norm_eps"])  # fc_norm: no final `norm`
        self.head = nn.Linear(c["dim"], c["num_classes"])
        self.initialize()

    @torch.no_grad()
    def initialize(self):
        # initialize_weights(): "truncated" normals clamped at 2 std, zero Linear biases.
        self.pos_embed.normal_(0.0, 0.02).clamp_(-0.04, 0.04)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.02).clamp_(-0.04, 0.04)
                m.bias.zero_()

    def forward(self, images):
        x = torch.cat([self.patch_embed(images)], 1) + self.pos_embed  # no prefix tokens
        for block in self.blocks:
            x = block(x)
        return self.head(self.fc_norm(x.mean(1)))


def make_optimizer(model, lr, weight_decay):
    """AdamW, no decay on 1-d parameters or tokens / position embeddings (timm's rule)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.dim() <= 1 or any(s in name for s in
                                   ("pos_embed", "cls_token", "dist_token", "reg_token", "latent"))
        (no_decay if skip else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def safetensors_shapes(path):
    """{name: shape} from a safetensors file's header."""
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


# ---------------------------------------------------------------------------------------------
# The two peers


def time_attnkit(args, precision, out_dir):
    """Runs `attn train classifier`; returns (epoch-2 images/s, epoch-1 images/s, stderr)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [args.attn, "train", "classifier", "--fashion-dir", args.fashion_dir,
               "--out", out_dir, "--limit", str(args.steps * args.batch_size), "--val-count",
               "0", "--epochs", "2", "--batch-size", str(args.batch_size), "--threads",
               str(args.threads), "--precision", precision]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"train_vs_pytorch: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if len(lines) != 2 or lines[1]["precision"] != precision:
        sys.exit(f"train_vs_pytorch: unexpected {out_dir}/log.jsonl: {lines}")
    return lines[1]["images_per_second"], lines[0]["images_per_second"], done.stderr


def pytorch_step(model, optimizer, state, train_images, train_labels, step, bf16):
    """One step of ClassifierTrainer::run's loop at global step `step`; returns the loss."""
    r = RECIPE
    epoch, batch = divmod(step, state["batches_per_epoch"])
    gen = generator(mix_seed(r["seed"], 2, step))
    torch.manual_seed(mix_seed(r["seed"], 3, step))  # dropout's stream (no dropout here)
    indices = state["orders"][epoch].narrow(0, batch * state["batch_size"], state["batch_size"])
    pixels = augment_geometry(train_images.index_select(0, indices), r["crop_padding"], r["flip"],
                              gen)
    labels = train_labels.index_select(0, indices)
    images = normalize_pixels(pixels, r["mean"], r["std"])
    random_erase_(images, r["erase"], gen)
    targets = smooth_targets(labels, r["classes"], r["label_smoothing"])
    lr = warmup_cosine_lr(step, state["warmup_steps"], state["total_steps"], r["lr"], r["min_lr"])
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = soft_cross_entropy(model(images), targets)
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        sys.exit(f"train_vs_pytorch: PyTorch loss {loss_value} at step {step}")
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), r["grad_clip"])
    optimizer.step()
    return loss_value


def time_pytorch(args, bf16, train_images, train_labels):
    """--warmup untimed steps, then attnkit's second epoch (STEPS steps) timed; images/s."""
    torch.manual_seed(RECIPE["seed"])
    model = FashionViT(VIT).train()
    optimizer = make_optimizer(model, RECIPE["lr"], RECIPE["weight_decay"])
    n = args.steps
    # The schedule of attnkit's 2-epoch run; it changes the numbers, not the work.
    state = dict(batches_per_epoch=n, batch_size=args.batch_size,
                 warmup_steps=int(RECIPE["warmup_epochs"] * n), total_steps=2 * n)
    # Each epoch's shuffle, drawn before its clock starts as in ClassifierTrainer::run.
    state["orders"] = {epoch: torch.randperm(train_images.shape[0], generator=generator(
        mix_seed(RECIPE["seed"], 1, epoch))) for epoch in (0, 1)}
    for step in range(min(args.warmup, n)):
        pytorch_step(model, optimizer, state, train_images, train_labels, step, bf16)
    start = time.perf_counter()
    for step in range(n, 2 * n):
        pytorch_step(model, optimizer, state, train_images, train_labels, step, bf16)
    return n * args.batch_size / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn", required=True, help="path to the attn binary")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed PyTorch steps per run")
    parser.add_argument("--fashion-dir", default=FASHION_DIR)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.steps < 1 or args.batch_size < 2 or args.rounds < 1:
        parser.error("--steps and --rounds must be >= 1, --batch-size >= 2 (BatchNorm)")
    torch.set_num_threads(args.threads)
    cpu_model, flags = describe_cpu()
    native_bf16 = flags["avx512_bf16"] or flags["amx_bf16"]
    precisions = ["fp32", "bf16"] if native_bf16 else ["fp32"]

    images, labels = load_fashion_train(args.fashion_dir)
    limit = args.steps * args.batch_size
    if limit > images.shape[0]:
        parser.error(f"--steps x --batch-size = {limit} is more than the {images.shape[0]} "
                     "training images")
    # --limit keeps the first LIMIT examples; with --val-count 0 all of them train, in order.
    train_images, train_labels = images[:limit].contiguous(), labels[:limit].contiguous()

    model = FashionViT(VIT)
    torch_params = sum(p.numel() for p in model.parameters())
    torch_buffers = sum(b.numel() for b in model.buffers())
    torch_shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    del model

    load_before = os.getloadavg()[0]  # a shared machine's noise shows here
    samples = {(peer, p): [] for p in precisions for peer in ("attnkit", "pytorch")}
    attn_first_epoch = {p: [] for p in precisions}
    attn_params = None
    scratch = tempfile.mkdtemp(prefix="train_vs_pytorch-", dir="/tmp")
    try:
        for r in range(args.rounds):
            for precision in precisions:
                out_dir = os.path.join(scratch, precision)
                ips, first, stderr = time_attnkit(args, precision, out_dir)
                samples[("attnkit", precision)].append(ips)
                attn_first_epoch[precision].append(first)
                if attn_params is None:
                    # "attn train: ... 10 classes; 949098 parameters"
                    attn_params = int(re.search(r"; (\d+) parameters", stderr).group(1))
                    attn_shapes = safetensors_shapes(os.path.join(out_dir, "best.safetensors"))
                    if attn_shapes != torch_shapes or attn_params != torch_params:
                        differ = sorted({(k, tuple(v)) for k, v in attn_shapes.items()} ^
                                        {(k, tuple(v)) for k, v in torch_shapes.items()})
                        sys.exit("train_vs_pytorch: the PyTorch model is not attnkit's: "
                                 f"{attn_params} against {torch_params} parameters; "
                                 f"differing tensors: {differ[:10]}")
                samples[("pytorch", precision)].append(
                    time_pytorch(args, precision == "bf16", train_images, train_labels))
                print(f"train_vs_pytorch: round {r + 1}/{args.rounds} {precision}: attnkit "
                      f"{ips:.1f}, pytorch {samples[('pytorch', precision)][-1]:.1f} images/s",
                      file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    rows = []
    for precision in precisions:
        attn = statistics.median(samples[("attnkit", precision)])
        pt = statistics.median(samples[("pytorch", precision)])
        rows.append({"precision": precision, "attnkit_images_per_second": attn,
                     "pytorch_images_per_second": pt, "attnkit_over_pytorch": attn / pt,
                     "attnkit_runs": samples[("attnkit", precision)],
                     "pytorch_runs": samples[("pytorch", precision)],
                     "attnkit_first_epoch_runs": attn_first_epoch[precision]})
    today = datetime.date.today()
    load_after = os.getloadavg()[0]
    features = " ".join(name if on else f"no-{name}" for name, on in flags.items())
    print(f"{today}  CPU: {cpu_model} ({features}); bf16 "
          f"{'native: fp32 and bf16 autocast' if native_bf16 else 'not native: fp32 only'}")
    print(f"fashion-vit training, batch {args.batch_size}, threads {args.threads}; PyTorch "
          f"{torch.__version__}; parameters: attnkit {attn_params:,}, PyTorch {torch_params:,} "
          f"(+{torch_buffers:,} BatchNorm buffer values)")
    print(f"median of {args.rounds} interleaved rounds; each run times {args.steps} steps "
          f"(attnkit: epoch 2 of 2 from log.jsonl; PyTorch: after {args.warmup} warm-up steps); "
          f"load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"{'precision':<10}{'attnkit img/s':>15}{'pytorch img/s':>15}{'attnkit/pytorch':>17}")
    for row in rows:
        print(f"{row['precision']:<10}{row['attnkit_images_per_second']:>15.1f}"
              f"{row['pytorch_images_per_second']:>15.1f}{row['attnkit_over_pytorch']:>16.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": str(today), "cpu": cpu_model, "flags": flags,
                       "load_average": [load_before, load_after], "threads": args.threads,
                       "batch_size": args.batch_size, "steps": args.steps,
                       "rounds": args.rounds, "warmup": args.warmup,
                       "pytorch": torch.__version__,
                       "parameters": {"attnkit": attn_params, "pytorch": torch_params},
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
