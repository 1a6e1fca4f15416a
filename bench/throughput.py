#!/usr/bin/env python3
"""Images per minute through a real `atelier serve`, at several (max batch, concurrency) pairs.

Each configuration starts its own server on the same weights, runs one warm-up job (model load,
convolution choice), then keeps CONCURRENCY requests in flight until IMAGES jobs have finished.
A client submits a job and polls it to the end, then submits the next. Reported per row:
images/minute over the timed part, the latency of each job (submit to terminal) as p50/max, and
the mean batch size the workers formed (from each job's metrics).

Standard library only: usage in bench/throughput.sh.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def run_job(base, model, args, seed):
    body = {"input": {"prompt": f"a photo of a cat on a sofa, take {seed}", "model": model,
                      "width": args.size, "height": args.size, "steps": args.steps,
                      "guidance_scale": args.guidance, "seed": seed}}
    t = time.monotonic()
    job = call("POST", f"{base}/v1/models/atelier/text-to-image/predictions", body)
    while job["status"] not in ("succeeded", "failed", "canceled"):
        time.sleep(0.05)
        job = call("GET", f"{base}/v1/predictions/{job['id']}")
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['status']}: {job.get('error')}")
    return time.monotonic() - t, job["metrics"].get("batch_size", 1)


def measure(args, max_batch, concurrency):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="atelier-throughput-")
    log = open(os.path.join(data, "server.log"), "w")
    server = subprocess.Popen(
        [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data", data, "--models", args.weights,
         "--max-batch", str(max_batch), "--batch-wait-ms", str(args.batch_wait_ms if max_batch > 1 else 0),
         "--no-watermark", "--max-queue", "100000"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("the server did not come up; see " + data)
        model = os.path.basename(os.path.normpath(args.weights))
        run_job(base, model, args, 0)  # warm-up: load, convolution choice
        latencies, batches = [], []
        lock = threading.Lock()
        issued = [0]

        def client():
            while True:
                with lock:
                    if issued[0] >= args.images:
                        return
                    issued[0] += 1
                    seed = issued[0]
                lat, b = run_job(base, model, args, seed)
                with lock:
                    latencies.append(lat)
                    batches.append(b)

        t = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.monotonic() - t
        if len(latencies) != args.images:
            raise SystemExit("some clients failed; see the server log in " + data)
        return {
            "max_batch": max_batch, "concurrency": concurrency, "images": args.images,
            "wall_s": wall, "images_per_min": 60 * args.images / wall,
            "p50_s": statistics.median(latencies), "max_s": max(latencies),
            "mean_batch": statistics.mean(batches),
        }
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default="target/release/atelier")
    p.add_argument("--weights", required=True, help="a diffusers model folder")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--guidance", type=float, default=0.0)
    p.add_argument("--images", type=int, default=8, help="timed jobs per configuration")
    p.add_argument("--configs", default="1x1,1x4,4x4", help="MAXBATCHxCONCURRENCY, comma separated")
    p.add_argument("--batch-wait-ms", type=int, default=0, help="passed to serve for rows with max batch > 1")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    rows = []
    print(f"{args.size}x{args.size}, {args.steps} step(s), guidance {args.guidance}, {args.images} timed jobs per row, "
          f"batch wait {args.batch_wait_ms} ms")
    print("| max batch | concurrent requests | images/min | p50 latency s | max latency s | mean batch formed |")
    print("|---:|---:|---:|---:|---:|---:|")
    for cfg in args.configs.split(","):
        b, c = (int(x) for x in cfg.split("x"))
        r = measure(args, b, c)
        rows.append(r)
        print(f"| {b} | {c} | {r['images_per_min']:.2f} | {r['p50_s']:.1f} | {r['max_s']:.1f} | {r['mean_batch']:.2f} |",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
