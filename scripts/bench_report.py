#!/usr/bin/env python3
"""Writes benches/REPORT.md and its SVG charts (benches/report/) from one run of the bench
suite: the text the bench binaries printed (in OUT) and criterion's estimates (in CRITERION).
Every figure is given with the baseline measured in the same run and their ratio.

Usage: bench_report.py OUT CRITERION MACHINE_LINE   (run by scripts/bench-report.sh)
"""

import json
import os
import re
import sys

OUT, CRITERION, MACHINE = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHARTS = os.path.join(ROOT, "benches", "report")


def text(name):
    with open(os.path.join(OUT, name + ".txt"), encoding="utf-8", errors="replace") as f:
        return f.read()


def grab(pattern, s, what):
    m = re.search(pattern, s)
    if not m:
        sys.exit(f"bench_report: no {what} in the bench output (pattern {pattern!r})")
    return [float(g.replace(",", "")) for g in m.groups()]


def criterion(group, bench):
    base = os.path.join(CRITERION, group, bench, "new")
    with open(os.path.join(base, "estimates.json")) as f:
        mean_ns = json.load(f)["mean"]["point_estimate"]
    elements = None
    with open(os.path.join(base, "benchmark.json")) as f:
        throughput = json.load(f).get("throughput") or {}
        elements = throughput.get("Elements")
    return mean_ns, elements


def bar_chart(name, title, rows, unit, goal=None):
    """Horizontal bars: rows of (label, value). Writes benches/report/NAME.svg."""
    width, left, bar_h, gap, top = 640, 230, 22, 10, 40
    height = top + len(rows) * (bar_h + gap) + 30
    vmax = max([v for _, v in rows] + ([goal] if goal else [])) * 1.15 or 1
    scale = (width - left - 70) / vmax
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{title}</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = max(1, value * scale)
        out.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7}" text-anchor="end">{label}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#4a7bd0"/>')
        out.append(f'<text x="{left + w + 5:.1f}" y="{y + bar_h * 0.7}">{value:.3g} {unit}</text>')
    if goal:
        x = left + goal * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 24}" stroke="#d04a4a" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 3:.1f}" y="{height - 10}" fill="#d04a4a">goal {goal}</text>')
    out.append("</svg>")
    os.makedirs(CHARTS, exist_ok=True)
    with open(os.path.join(CHARTS, name + ".svg"), "w") as f:
        f.write("\n".join(out) + "\n")
    return f"![{title}](report/{name}.svg)"


def main():
    lines = ["# flowc benchmark report", "", f"Made by `scripts/bench-report.sh` on {MACHINE}.", ""]
    lines += [
        "Every figure comes with the baseline measured in the same run and the ratio between them;",
        "these machines are noisy, so compare ratios, not absolute numbers across runs.",
        "",
    ]

    # 1. Compile time against pipeline size (criterion; baseline: the 10-step pipeline per step).
    sizes = [10, 100, 1000, 10000]
    per_step = []
    for n in sizes:
        ns, _ = criterion("compile", str(n))
        per_step.append((n, ns / 1e3, ns / n / 1e3))
    base = per_step[0][2]
    lines += ["## Compile time against pipeline size", "",
              "`cargo bench --bench compile`: generated pipelines, each step joining the two before it.",
              "Baseline: time per step of the 10-step pipeline.", "",
              "| steps | compile time | per step | per step / baseline |", "|---:|---:|---:|---:|"]
    for n, total_us, step_us in per_step:
        lines.append(f"| {n:,} | {total_us / 1e3:,.2f} ms | {step_us:,.1f} µs | {step_us / base:.2f} |")
    lines += ["", bar_chart("compile", "compile time per step (µs)", [(f"{n:,} steps", s) for n, _, s in per_step], "µs"), ""]

    # 2. Operators: RocksDB state against in-memory state (criterion).
    lines += ["## Step runtime: RocksDB against in-memory state", "",
              "`cargo bench -p flowc-runtime --bench operators`. Baseline: the same work on in-memory stores.", "",
              "| bench | RocksDB | in memory (baseline) | ratio |", "|---|---:|---:|---:|"]
    op_rows = []
    for group in ["join", "pipeline"]:
        rocks_ns, elements = criterion(group, "rocksdb")
        mem_ns, _ = criterion(group, "memory")
        per = elements or 1
        rocks_rate, mem_rate = per / (rocks_ns / 1e9), per / (mem_ns / 1e9)
        lines.append(f"| {group} | {rocks_rate:,.0f} /s | {mem_rate:,.0f} /s | {rocks_rate / mem_rate:.2f} |")
        op_rows.append((f"{group}: RocksDB / memory", rocks_rate / mem_rate))
    lines.append("")

    # 3. Pipeline throughput against the raw broker pipe.
    b = text("broker")
    flowc_rate, raw_rate, ratio = grab(r"median flowc ([\d.]+) records/s, raw rdkafka pipe ([\d.]+) records/s, ratio ([\d.]+)", b, "broker ratio")
    lines += ["## Pipeline throughput against a raw rdkafka pipe", "",
              "`cargo bench --bench broker`: a 1-step plan (3 hops, one model call) on tansu; baseline: three raw relays with the same hops and the same model call.", "",
              "| flowc | raw pipe (baseline) | ratio (goal ≥ 0.7) |", "|---:|---:|---:|",
              f"| {flowc_rate:,.0f} records/s | {raw_rate:,.0f} records/s | {ratio:.2f} |", ""]

    # 4. Synchronous latency and throughput through the pipeline gateway.
    p = text("pipeline_gateway")
    g50, g99 = grab(r"gateway\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", p, "gateway latency")
    f50, f99 = grab(r"floor\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", p, "floor latency")
    http_rate, = grab(r"gateway HTTP\s+([\d.]+) requests/s", p, "HTTP throughput")
    grpc_rate, = grab(r"gateway gRPC\s+([\d.]+) requests/s", p, "gRPC throughput")
    pipe_rate, = grab(r"raw pipe\s+([\d.]+) records/s", p, "raw pipe")
    lines += ["## Synchronous calls through the pipeline gateway", "",
              "`cargo bench --bench pipeline_gateway`: the same 1-step pipeline. Latency baseline: 3 raw produce→consume round trips plus one direct model call; throughput baseline: the raw pipe.", "",
              "| measure | gateway | baseline | ratio |", "|---|---:|---:|---:|",
              f"| latency p50 (goal ≤ 1.2) | {g50:.2f} ms | {f50:.2f} ms | {g50 / f50:.2f} |",
              f"| latency p99 | {g99:.2f} ms | {f99:.2f} ms | {g99 / f99:.2f} |",
              f"| throughput HTTP (goal ≥ 0.7) | {http_rate:,.0f} /s | {pipe_rate:,.0f} /s | {http_rate / pipe_rate:.2f} |",
              f"| throughput gRPC (goal ≥ 0.7) | {grpc_rate:,.0f} /s | {pipe_rate:,.0f} /s | {grpc_rate / pipe_rate:.2f} |", ""]

    # 5. Model gateway overhead.
    m = text("model_gateway")
    t50, = grab(r"topics\s+latency:.*?p50 ([\d.]+) ms", m, "topics latency")
    d50, = grab(r"direct\s+latency:.*?p50 ([\d.]+) ms", m, "direct latency")
    tp_ratio, = grab(r"throughput topics/direct ([\d.]+)", m, "model gateway throughput ratio")
    lines += ["## Model gateway overhead", "",
              "`cargo bench --bench model_gateway`: model calls through the topics (worker's model-call step) against calling the same server directly (baseline).", "",
              "| measure | through topics | direct (baseline) | ratio |", "|---|---:|---:|---:|",
              f"| latency p50 | {t50:.2f} ms | {d50:.3f} ms | {t50 / d50:.1f} |",
              f"| throughput | | | {tp_ratio:.2f} |", ""]

    # 6. Memory.
    mem = text("memory")
    w_idle, w_peak = grab(r"worker\s+idle RSS\s+([\d.]+) MiB\s+peak RSS\s+([\d.]+) MiB", mem, "worker memory")
    gw_idle, gw_peak = grab(r"gateway\s+idle RSS\s+([\d.]+) MiB\s+peak RSS\s+([\d.]+) MiB", mem, "gateway memory")
    load = re.search(r"load: (.*)", mem).group(1)
    lines += ["## Memory under load", "",
              f"`cargo bench --bench memory`: worker and gateway as separate processes; {load}. Baseline: each process's resident memory when ready and idle.", "",
              "| process | peak RSS under load | idle RSS (baseline) | ratio |", "|---|---:|---:|---:|",
              f"| worker | {w_peak:.1f} MiB | {w_idle:.1f} MiB | {w_peak / w_idle:.2f} |",
              f"| gateway | {gw_peak:.1f} MiB | {gw_idle:.1f} MiB | {gw_peak / gw_idle:.2f} |", "",
              bar_chart("memory", "peak resident memory under load (MiB)", [("worker idle", w_idle), ("worker peak", w_peak), ("gateway idle", gw_idle), ("gateway peak", gw_peak)], "MiB"), ""]

    # All ratios in one picture.
    rows = [("pipeline / raw pipe", ratio), ("gateway HTTP / raw pipe", http_rate / pipe_rate),
            ("gateway gRPC / raw pipe", grpc_rate / pipe_rate), ("model calls topics / direct", tp_ratio)] + op_rows
    lines += ["## Throughput ratios", "", bar_chart("ratios", "throughput as a ratio to its baseline", rows, "", goal=0.7), ""]
    print("\n".join(lines))


main()
