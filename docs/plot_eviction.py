#!/usr/bin/env python3
"""Draws docs/eviction.svg from target/eviction.csv (written by `cargo bench --bench eviction`).

Hit ratio against cache size (entries) per policy and peer, one panel per workload. Standard
library only.
"""
import csv
import html
import math
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
rows = list(csv.DictReader((root / "target" / "eviction.csv").open()))
workloads = []
caches = []
data = {}  # (workload, cache) -> [(entries, ratio)]
for row in rows:
    workload = row["workload"].split(" (")[0]
    if workload not in workloads:
        workloads.append(workload)
    if row["cache"] not in caches:
        caches.append(row["cache"])
    data.setdefault((workload, row["cache"]), []).append((int(row["entries"]), float(row["hit_ratio"]) * 100))

colors = ["#d62728", "#ff9896", "#8c564b", "#7f7f7f", "#2ca02c", "#1f77b4", "#9467bd", "#000000"]
W, H, pad, top = 260, 230, 42, 28
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W*len(workloads)}" height="{H+80}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>']
for p, workload in enumerate(workloads):
    x0 = p * W
    points = [pt for c in caches for pt in data.get((workload, c), [])]
    sizes = sorted({e for e, _ in points})
    ymax = max(v for _, v in points) * 1.08
    lo, hi = math.log(sizes[0]), math.log(sizes[-1])
    def X(entries):
        span = (hi - lo) or 1.0
        return x0 + pad + 15 + (math.log(entries) - lo) / span * (W - pad - 40)
    def Y(v):
        return H - (H - top) * v / ymax
    svg.append(f'<text x="{x0+W/2}" y="15" text-anchor="middle" font-size="13">{html.escape(workload)}</text>')
    svg.append(f'<line x1="{x0+pad}" y1="{H}" x2="{x0+W-10}" y2="{H}" stroke="black"/>')
    svg.append(f'<line x1="{x0+pad}" y1="{top}" x2="{x0+pad}" y2="{H}" stroke="black"/>')
    for k in range(5):
        v = ymax * k / 4
        svg.append(f'<text x="{x0+pad-4}" y="{Y(v)+4:.1f}" text-anchor="end">{v:.0f}%</text>')
    for entries in sizes:
        svg.append(f'<text x="{X(entries):.1f}" y="{H+14}" text-anchor="middle">{entries}</text>')
    for c, cache in enumerate(caches):
        pts = sorted(data.get((workload, cache), []))
        if not pts:
            continue
        dash = ' stroke-dasharray="4,3"' if cache in ("ARC (published)", "Belady") else ""
        path = " ".join(f"{X(e):.1f},{Y(v):.1f}" for e, v in pts)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{colors[c % len(colors)]}" stroke-width="2"{dash}/>')
        for e, v in pts:
            svg.append(f'<circle cx="{X(e):.1f}" cy="{Y(v):.1f}" r="2.5" fill="{colors[c % len(colors)]}"/>')
    svg.append(f'<text x="{x0+W/2}" y="{H+28}" text-anchor="middle">cache size (entries)</text>')
svg.append(f'<text x="12" y="{H/2}" transform="rotate(-90 12 {H/2})" text-anchor="middle">hit ratio</text>')
for c, cache in enumerate(caches):
    x = 40 + (c % 4) * 190
    y = H + 42 + (c // 4) * 18
    svg.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colors[c % len(colors)]}"/>')
    svg.append(f'<text x="{x+16}" y="{y+10}">{html.escape(cache)}</text>')
svg.append("</svg>")
out = root / "docs" / "eviction.svg"
out.write_text("\n".join(svg))
print(f"wrote {out}", file=sys.stderr)
