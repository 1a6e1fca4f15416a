#!/usr/bin/env python3
"""Soak (issue 13): N tiny text-to-image jobs through a running `atelier serve`, paced to take
a fixed time, each submitted with `Prefer: wait` (polled after, if still running); the server's RSS sampled throughout.

Reports throughput, end-to-end latency p50/p99, errors (non-2xx answers, failed or
lost jobs) and RSS over time, and checks that RSS at the end is within 10% of RSS after
warm-up (the first WARMUP fraction of the run). Stdlib only.

Usage: bench/soak.py BASE_URL KEY SERVER_PID [jobs (10000)] [minutes (30)] [out dir]
"""
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

BASE, KEY, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
JOBS = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
MINUTES = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
OUT = sys.argv[6] if len(sys.argv) > 6 else "target/soak"
WARMUP = 0.1
CLIENTS = 16
os.makedirs(OUT, exist_ok=True)


def call(method, path, body=None, wait=False):
    req = urllib.request.Request(BASE + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", f"Bearer {KEY}")
    if wait:
        req.add_header("Prefer", "wait=60")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]
    except Exception as e:  # connection reset, timeout
        return 0, str(e)


def status_mib(field):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib():
    return status_mib("VmRSS")


# Prompts without digits: numbers in a prompt read as leetspeak to the screening lists
# (1011 -> "loli", 8008 -> "boob"), and a blocked prompt is a correct refusal, not a soak error.
PROMPTS = ["a lighthouse at dusk", "a quiet harbour at dawn", "a red bicycle by a wall",
           "a bowl of fruit, oil painting", "a mountain lake in autumn", "a cat asleep on a rug"]
lock = threading.Lock()
next_job = 0
e2e_ms, errors, outcomes = [], [], {}
start = time.monotonic()
interval = MINUTES * 60 / JOBS


def client():
    global next_job
    while True:
        with lock:
            i = next_job
            next_job += 1
        if i >= JOBS:
            return
        # Pace: job i starts no earlier than its slot.
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        status, job = call("POST", "/v1/models/atelier/text-to-image/predictions",
                           {"input": {"prompt": PROMPTS[i % len(PROMPTS)], "width": 64,
                                      "height": 64, "steps": 2, "seed": i}}, wait=True)
        if status not in (200, 201):
            with lock:
                errors.append(f"submit {i}: {status} {job!r}")
            continue
        got = job
        while True:
            if got["status"] not in ("succeeded", "failed", "canceled"):
                time.sleep(0.5)
                status, got = call("GET", f"/v1/predictions/{job['id']}")
            if status not in (200, 201):
                with lock:
                    errors.append(f"status {job['id']}: {status} {got!r}")
                break
            if got["status"] in ("succeeded", "failed", "canceled"):
                with lock:
                    outcomes[got["status"]] = outcomes.get(got["status"], 0) + 1
                    e2e_ms.append((time.monotonic() - t0) * 1000)
                    if got["status"] != "succeeded":
                        errors.append(f"job {job['id']}: {got['status']} {got.get('error')}")
                break


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
for t in threads:
    t.start()
samples = []
with open(f"{OUT}/rss.csv", "w") as f:
    f.write("seconds,rss_mib,anon_mib,file_mib,jobs_done,errors\n")
    while any(t.is_alive() for t in threads):
        el = time.monotonic() - start
        with lock:
            done, errs = len(e2e_ms), len(errors)
        r = rss_mib()
        samples.append((el, r, done))
        f.write(f"{el:.0f},{r:.1f},{status_mib('RssAnon'):.1f},{status_mib('RssFile'):.1f},{done},{errs}\n")
        f.flush()
        if len(samples) % 6 == 1:
            print(f"[{el/60:5.1f} min] {done}/{JOBS} jobs, {errs} errors, RSS {r:.1f} MiB", flush=True)
        time.sleep(10)
elapsed = time.monotonic() - start
end_rss = rss_mib()
warm = [r for (el, r, _) in samples if el >= WARMUP * MINUTES * 60]
warm_rss = warm[0] if warm else samples[0][1]
peak = max(r for _, r, _ in samples)
drift = (end_rss - warm_rss) / warm_rss * 100
summary = {
    "jobs": JOBS, "minutes": round(elapsed / 60, 2), "outcomes": outcomes,
    "throughput_jobs_per_s": round(len(e2e_ms) / elapsed, 2),
    "end_to_end_ms": {"p50": round(pct(e2e_ms, 50), 1), "p99": round(pct(e2e_ms, 99), 1)},
    "errors": len(errors), "first_errors": errors[:5],
    "rss_mib": {"after_warmup": round(warm_rss, 1), "peak": round(peak, 1), "end": round(end_rss, 1),
                "end_vs_warm_pct": round(drift, 1)},
    "rss_within_10pct": abs(drift) <= 10,
}
json.dump(summary, open(f"{OUT}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
sys.exit(0 if not errors and abs(drift) <= 10 else 1)
