#!/usr/bin/python3
"""The benchmark: attnkit (fp32 and --precision auto), PyTorch eager and ONNX Runtime on one ViT.

Every peer runs the same random torchvision weights: PyTorch eager (Debian's python3-torch) in
this process, attnkit on them after `attn import`, ONNX Runtime (npm `onnxruntime-node`, CPU
execution provider, graph optimisation 'all') on a `torch.onnx` export. The peers take turns:
each round runs every peer for --runs-per-round timed passes after --warmup, the order rotating
from round to round, so a machine whose speed drifts treats them alike. The table gives the
median over all rounds (>= 10 passes) in ms per image and each peer's speed relative to ONNX
Runtime fp32 (above 1 = faster), with the CPU, its features and the date at the top.

ONNX Runtime is installed on first use with `npm install --ignore-scripts onnxruntime-node` into
--ort-dir (nothing outside it is touched); without npm or the registry, that peer is left out.

`--attn-isa avx2` runs attnkit as it runs on a CPU with AVX2 and FMA only (an AMD Zen 3, say):
oneDNN is capped at its AVX2 kernels (ONEDNN_MAX_CPU_ISA), OpenBLAS at Haswell's, and attnkit's
own choices (`--precision auto`, 7-bit int8 activations without VNNI) see only avx2 and fma
(ATTNKIT_CPU_FEATURES). The other peers keep the whole CPU: ONNX Runtime has no such switch, so
the ratios are attnkit-on-AVX2 against ONNX-Runtime-on-this-CPU, a harder comparison than a real
AVX2 machine gives.

Usage: tests/bench/bench_peers.py --attn build/apps/attn [--models vit_base_patch16_224]
       [--batch-sizes 1,8] [--threads 2] [--rounds 4] [--runs-per-round 3] [--json out.json]
       [--attn-precisions fp32,auto] [--attn-isa native|avx2]
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from vit_reference import save_safetensors  # noqa: E402
from make_random_vit import MODELS  # noqa: E402  (the torchvision configs of the timm names)

# Times one ONNX model: argv = model batch runs warmup threads; prints the pass times in ms.
ORT_SCRIPT = r"""
const ort = require(process.env.ATTNKIT_ORT_MODULE);
(async () => {
  const [model, batch, runs, warmup, threads] = process.argv.slice(2).map((v, i) => i ? +v : v);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionProviders: ['cpu']});
  const data = new Float32Array(batch * 3 * 224 * 224);
  for (let i = 0; i < data.length; ++i) data[i] = Math.sin(i) * 2;
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [batch, 3, 224, 224])};
  for (let i = 0; i < warmup; ++i) await session.run(feeds);
  const times = [];
  for (let i = 0; i < runs; ++i) {
    const start = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  console.log(JSON.stringify(times));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


def install_ort(ort_dir):
    """The path of the onnxruntime-node module, installed into ort_dir if needed; None without."""
    module = os.path.join(ort_dir, "node_modules", "onnxruntime-node")
    if os.path.isdir(module):
        return module
    if not shutil.which("npm") or not shutil.which("node"):
        print("bench: node/npm not found: ONNX Runtime is left out", file=sys.stderr)
        return None
    os.makedirs(ort_dir, exist_ok=True)
    print(f"bench: installing onnxruntime-node into {ort_dir}", file=sys.stderr)
    done = subprocess.run(["npm", "install", "--prefix", ort_dir, "--ignore-scripts", "--no-audit",
                           "--no-fund", "onnxruntime-node"], capture_output=True, text=True)
    if done.returncode != 0 or not os.path.isdir(module):
        print("bench: npm install onnxruntime-node failed: ONNX Runtime is left out\n" +
              done.stderr[-2000:], file=sys.stderr)
        return None
    return module


def time_pytorch(model, batch, runs, warmup):
    torch.manual_seed(1)
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    return times


# What --attn-isa avx2 sets for attnkit's processes (see the docstring).
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell", "ATTNKIT_CPU_FEATURES": "avx2,fma"}


def attn_env(args):
    return dict(os.environ, **AVX2_ONLY) if args.attn_isa == "avx2" else None


def time_attn(args, model_file, batch, precisions):
    out = subprocess.run(
        [args.attn, "bench", "--model", model_file, "--batch-sizes", str(batch), "--precision",
         *precisions, "--runs", str(args.runs_per_round), "--warmup", str(args.warmup),
         "--threads", str(args.threads), "--json"],
        check=True, capture_output=True, text=True, env=attn_env(args))
    return [(row["precision"], row["ms_per_batch_runs"]) for row in json.loads(out.stdout)]


def time_ort(args, script, module, onnx_file, batch):
    env = dict(os.environ, ATTNKIT_ORT_MODULE=module)
    out = subprocess.run(["node", script, onnx_file, str(batch), str(args.runs_per_round),
                          str(args.warmup), str(args.threads)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn", required=True, help="path to the attn binary")
    parser.add_argument("--models", default="vit_base_patch16_224",
                        help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs-per-round", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ort-dir", default=os.path.join(tempfile.gettempdir(), "attnkit-ort"))
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--attn-precisions", default="fp32,auto",
                        help="attnkit's --precision values, timed in one process (fp32,bf16,int8,auto)")
    parser.add_argument("--attn-isa", choices=["native", "avx2"], default="native",
                        help="avx2: attnkit limited to AVX2 + FMA kernels (the other peers are not)")
    args = parser.parse_args()
    precisions = args.attn_precisions.split(",")
    if args.rounds * args.runs_per_round < 10:
        parser.error("--rounds x --runs-per-round must be at least 10 (a median of >= 10 passes)")
    torch.set_num_threads(args.threads)
    info = json.loads(subprocess.run([args.attn, "info", "--json"], check=True,
                                     capture_output=True, text=True, env=attn_env(args)).stdout)
    features = " ".join(name for name, present in info["cpu"]["features"].items() if present)
    module = install_ort(args.ort_dir)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "ort_time.js")
        with open(script, "w") as f:
            f.write(ORT_SCRIPT)
        for name in args.models.split(","):
            torch.manual_seed(0)
            model = VisionTransformer(**MODELS[name]).eval()
            tv = os.path.join(tmp, name + ".torchvision.safetensors")
            ours = os.path.join(tmp, name + ".safetensors")
            save_safetensors(tv, model.state_dict())
            subprocess.run([args.attn, "import", tv, "-o", ours], check=True,
                           stderr=subprocess.DEVNULL)
            onnx_file = None
            if module:
                onnx_file = os.path.join(tmp, name + ".onnx")
                # With grad enabled: under no_grad torchvision takes its fused attention fast
                # path, which has no ONNX export.
                torch.onnx.export(model, torch.randn(1, 3, 224, 224), onnx_file,
                                  input_names=["images"], output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                                  opset_version=14)
            auto_name = None
            for batch in batches:
                samples = {}
                peers = ["attnkit", "pytorch"] + (["ort"] if onnx_file else [])
                for r in range(args.rounds):
                    order = peers[r % len(peers):] + peers[:r % len(peers)]
                    for peer in order:
                        if peer == "attnkit":
                            timed = time_attn(args, ours, batch, precisions)
                            for asked, (ran, values) in zip(precisions, timed):
                                label = f"attnkit {asked}" + (f" ({ran})" if asked == "auto" else "")
                                if asked == "auto":
                                    auto_name = ran
                                samples.setdefault(label, []).extend(values)
                        elif peer == "pytorch":
                            samples.setdefault("pytorch eager fp32", []).extend(
                                time_pytorch(model, batch, args.runs_per_round, args.warmup))
                        else:
                            samples.setdefault("onnxruntime fp32", []).extend(
                                time_ort(args, script, module, onnx_file, batch))
                    print(f"bench: {name} batch {batch}: round {r + 1}/{args.rounds}",
                          file=sys.stderr)
                for peer, values in samples.items():
                    results.append({"model": name, "batch": batch, "peer": peer,
                                    "ms_per_image": statistics.median(values) / batch,
                                    "passes": len(values)})
    print(f"{datetime.date.today()}  CPU: {info['cpu']['model']} ({info['cpu']['vector_units']}; "
          f"{features})")
    if args.attn_isa == "avx2":
        print("attnkit limited to AVX2 + FMA (" +
              " ".join(f"{k}={v}" for k, v in AVX2_ONLY.items()) +
              "); PyTorch and ONNX Runtime use the whole CPU")
    print(f"threads {args.threads}; LibTorch {info['libtorch']}; median of "
          f"{args.rounds * args.runs_per_round} passes per peer in {args.rounds} interleaved "
          f"rounds after {args.warmup} warm-up; attnkit auto = {auto_name or 'fp32'}")
    print(f"{'model':<24}{'batch':>6}  {'peer':<26}{'ms/image':>10}{'vs ORT fp32':>13}")
    for row in results:
        ort = [r for r in results if r["model"] == row["model"] and r["batch"] == row["batch"]
               and r["peer"] == "onnxruntime fp32"]
        row["speed_vs_ort_fp32"] = ort[0]["ms_per_image"] / row["ms_per_image"] if ort else None
        ratio = f"{row['speed_vs_ort_fp32']:.2f}x" if ort else "-"
        print(f"{row['model']:<24}{row['batch']:>6}  {row['peer']:<26}"
              f"{row['ms_per_image']:>10.1f}{ratio:>13}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": str(datetime.date.today()), "cpu": info["cpu"],
                       "threads": args.threads, "rows": results}, f, indent=2)


if __name__ == "__main__":
    main()
