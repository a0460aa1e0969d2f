#!/usr/bin/env python3
"""Draws docs/concurrency.svg from target/guide-report.md (written by `cargo bench --bench guide`).

Throughput (million operations per second, all threads together) per store and thread count,
one panel per workload. Standard library only.
"""
import html
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
report = (root / "target" / "guide-report.md").read_text()
section = report.split("### concurrency", 1)[1].split("### ", 1)[0]
lines = [l for l in section.splitlines() if l.startswith("|")]
stores = [c.strip() for c in lines[0].strip("|").split("|")][1:-1]
data = {}  # (workload, store) -> [(threads, mops)]
for line in lines[2:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    m = re.match(r"(\w+), (\d+) threads", cells[0])
    if not m:
        continue
    workload, threads = m.group(1), int(m.group(2))
    for store, cell in zip(stores, cells[1:]):
        t = re.match(r"([\d.]+) (ns|µs)", cell)
        if t:
            ns = float(t.group(1)) * (1000 if t.group(2) == "µs" else 1)
            data.setdefault((workload, store), []).append((threads, 1000.0 / ns))

colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
workloads = ["reads", "writes", "mixed"]
W, H, pad = 300, 240, 45
ymax = max(v for series in data.values() for _, v in series) * 1.1
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W*3}" height="{H+60}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>']
for p, workload in enumerate(workloads):
    x0 = p * W
    svg.append(f'<text x="{x0+W/2}" y="15" text-anchor="middle" font-size="13">{workload}</text>')
    svg.append(f'<line x1="{x0+pad}" y1="{H}" x2="{x0+W-10}" y2="{H}" stroke="black"/>')
    svg.append(f'<line x1="{x0+pad}" y1="25" x2="{x0+pad}" y2="{H}" stroke="black"/>')
    for k in range(5):
        v = ymax * k / 4
        y = H - (H - 25) * k / 4
        svg.append(f'<text x="{x0+pad-4}" y="{y+4}" text-anchor="end">{v:.0f}</text>')
    xs = {1: 0, 2: 1, 4: 2, 8: 3}
    for t, i in xs.items():
        x = x0 + pad + 20 + i * (W - pad - 50) / 3
        svg.append(f'<text x="{x}" y="{H+14}" text-anchor="middle">{t}</text>')
    for c, store in enumerate(stores):
        pts = sorted(data.get((workload, store), []))
        coords = [(x0 + pad + 20 + xs[t] * (W - pad - 50) / 3, H - (H - 25) * v / ymax) for t, v in pts]
        if coords:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            svg.append(f'<polyline points="{path}" fill="none" stroke="{colors[c % 5]}" stroke-width="2"/>')
    svg.append(f'<text x="{x0+W/2}" y="{H+28}" text-anchor="middle">threads (2 cores)</text>')
svg.append(f'<text x="12" y="{H/2}" transform="rotate(-90 12 {H/2})" text-anchor="middle">million ops/s, all threads</text>')
for c, store in enumerate(stores):
    x = 60 + c * 160
    svg.append(f'<rect x="{x}" y="{H+40}" width="12" height="12" fill="{colors[c % 5]}"/>')
    svg.append(f'<text x="{x+16}" y="{H+50}">{html.escape(store)}</text>')
svg.append("</svg>")
out = root / "docs" / "concurrency.svg"
out.write_text("\n".join(svg))
print(f"wrote {out}", file=sys.stderr)
