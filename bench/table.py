#!/usr/bin/env python3
"""Prints the comparison table of bench/compare.sh from the JSON files of one run.

Usage: table.py ATELIER.json DIFFUSERS_F32.json [DIFFUSERS_BF16.json ...]
Several atelier files may be given as ATELIER.json,ATELIER_BF16.json (comma-separated):
each becomes its own column group.
"""
import json
import sys


def load(p):
    with open(p) as f:
        return json.load(f)


def main():
    ours = [load(p) for p in sys.argv[1].split(",")]
    f32 = load(sys.argv[2])
    bf16 = load(sys.argv[3]) if len(sys.argv) > 3 else None
    ref32 = {r["component"]: r for r in f32["components"]}
    ref16 = {r["component"]: r for r in bf16["components"]} if bf16 else {}
    print(f"f32 matmul ceiling: torch {f32['matmul_gflops']:.1f} GFLOP/s"
          + (f", torch bf16 {bf16['matmul_gflops']:.1f}" if bf16 else "")
          + "".join(f", atelier {o.get('mode', o['dtype'])} {o['matmul_gflops']:.1f}" for o in ours))
    head = "| component | diffusers f32 s | diffusers bf16 s |"
    rule = "|---|---:|---:|"
    for o in ours:
        head += f" atelier {o.get('mode', o['dtype'])} s | vs f32 | vs bf16 | GFLOP/s |"
        rule += "---:|---:|---:|---:|"
    print(head)
    print(rule)
    names = [r["component"] for r in ours[0]["components"]]
    for name in names:
        r32 = ref32.get(name)
        r16 = ref16.get(name)
        line = f"| {name} | {r32['seconds']:.3f} |" if r32 else f"| {name} | – |"
        line += f" {r16['seconds']:.3f} |" if r16 else " – |"
        for o in ours:
            r = next((x for x in o["components"] if x["component"] == name), None)
            if r is None:
                line += " – | – | – | – |"
                continue
            v32 = f"{r['seconds'] / r32['seconds']:.2f}x" if r32 else "–"
            v16 = f"{r['seconds'] / r16['seconds']:.2f}x" if r16 else "–"
            line += f" {r['seconds']:.3f} | {v32} | {v16} | {r['gflops']:.0f} |"
        print(line)
    print("\nratio = atelier time / diffusers time (lower is better; < 1 means atelier is faster)")


if __name__ == "__main__":
    main()
