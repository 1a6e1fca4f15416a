#!/usr/bin/env python3
"""Time SD-Turbo components with diffusers/PyTorch on the weights `atelier bench --write-weights` wrote.

Same components, shapes and statistic (median of N after one warm-up) as `atelier bench`, so the
two JSON files can be compared line by line (bench/compare.sh does that).
"""
import argparse
import json
import statistics
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel


def timed(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", help="diffusers folder written by `atelier bench --write-weights`")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--only", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dt = getattr(torch, a.dtype)
    flops = {
        "text encoder, 1 prompt": 45e9,
        "unet step 512x512 batch 1": 804e9,
        "unet step 512x512 batch 2": 1609e9,
        "unet step 256x256 batch 1": 181e9,
        "unet step 256x256 batch 2": 362e9,
        "vae decode 64x64 -> 512x512": 2515e9,
        "vae decode 32x32 -> 256x256": 622e9,
        "pipeline 1 step 512x512": 3364e9,
        "pipeline 1 step 256x256": 848e9,
    }
    unet = UNet2DConditionModel.from_pretrained(f"{a.weights}/unet", torch_dtype=dt).eval()
    vae = AutoencoderKL.from_pretrained(f"{a.weights}/vae", torch_dtype=dt).eval()
    text = CLIPTextModel.from_pretrained(f"{a.weights}/text_encoder", torch_dtype=dt).eval()
    n = 4096
    x, y = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    with torch.inference_mode():
        mm = timed(lambda: x @ y, a.runs)
        ceiling = 2 * n**3 / mm / 1e9
        print(f"matmul {n}^3 {a.dtype}: {mm:.3f} s = {ceiling:.1f} GFLOP/s")
        rows = []
        for name, flop in flops.items():
            if a.only and a.only not in name:
                continue
            if name.startswith("pipeline"):
                side = 64 if "512" in name else 32
                ids = torch.tensor([[min(49406, 320 + i * 97) for i in range(77)]])
                s = torch.randn(1, 4, side, side, dtype=dt)
                t = torch.full((1,), 999.0)

                def fn(ids=ids, s=s, t=t):
                    ctx = text(ids)[0]
                    eps = unet(s, t, ctx).sample
                    return vae.decode(s - eps)
            elif name.startswith("text"):
                ids = torch.tensor([[min(49406, 320 + i * 97) for i in range(77)]])
                fn = lambda: text(ids)
            elif name.startswith("unet"):
                side = 64 if "512" in name else 32
                b = 2 if name.endswith("2") else 1
                s = torch.randn(b, 4, side, side, dtype=dt)
                ctx = torch.randn(b, 77, 1024, dtype=dt)
                t = torch.full((b,), 999.0)
                fn = lambda s=s, ctx=ctx, t=t: unet(s, t, ctx)
            else:
                side = 64 if "64x64" in name else 32
                z = torch.randn(1, 4, side, side, dtype=dt)
                fn = lambda z=z: vae.decode(z)
            secs = timed(fn, a.runs)
            gf = flop / secs / 1e9
            print(f"{name:<30} {secs:8.3f} s  {gf:7.1f} GFLOP/s  {100 * gf / ceiling:5.1f}% of ceiling")
            rows.append({"component": name, "seconds": secs, "gflops": gf, "flop": flop})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"engine": "diffusers", "dtype": a.dtype, "matmul_gflops": ceiling, "components": rows}, f, indent=2)


if __name__ == "__main__":
    main()
