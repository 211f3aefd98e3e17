#!/usr/bin/env python3
"""Writes benches/REPORT.md and its SVG charts (benches/report/) from one run of the bench
suite: the text the bench binaries printed (in OUT: compile.txt and operators.txt, and a
directory per broker with broker.txt, model_gateway.txt, pipeline_gateway.txt, memory.txt)
and criterion's estimates (in CRITERION). Every figure is given with the baseline measured in
the same run on the same broker, and their ratio; each broker gets its own columns.

Usage: bench_report.py OUT CRITERION MACHINE_LINE [BROKER...]   (run by scripts/bench-report.sh;
BROKERS default to kafka and tansu, those with no directory in OUT are left out)
"""

import json
import os
import re
import sys

OUT, CRITERION, MACHINE = sys.argv[1], sys.argv[2], sys.argv[3]
BROKERS = [b for b in (sys.argv[4:] or ["kafka", "tansu"]) if os.path.isdir(os.path.join(OUT, b))]
if not BROKERS:
    sys.exit(f"bench_report: no broker results in {OUT}")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHARTS = os.path.join(ROOT, "benches", "report")

TITLE = {"kafka": "Apache Kafka 4.3.2", "tansu": "tansu 0.6"}
SHORT = {"kafka": "Kafka", "tansu": "tansu"}
COLOUR = {"kafka": "#4a7bd0", "tansu": "#e0953a"}
# flowc's own client settings on each broker (runtime/src/kafka/config.rs and broker.rs), to
# set beside the raw ones.
FLOWC_SETTINGS = {
    "kafka": "linger.ms=0, max.in.flight=1, acks=all, idempotence, fetch.wait.max.ms=100",
    "tansu": "linger.ms=0, max.in.flight=1, acks=all, fetch.wait.max.ms=10",
}
# Why each broker's raw clients use the settings they do (benches/common RawSettings; measured
# on this machine with FLOWC_BENCH_RAW_* before choosing).
WHY = {
    "kafka": "Apache Kafka answers a waiting fetch as soon as a record arrives, so a long `fetch.wait.max.ms` "
    "costs a round trip nothing and saves idle polling: librdkafka's default 500 ms (a hop and the raw pipe "
    "measured as fast as at 1 ms and 100 ms, within the noise)",
    "tansu": "tansu holds every fetch for the whole `fetch.wait.max.ms` even when data arrives, so a hop pays "
    "about half the wait: 1 ms gives the lowest round trip (measured 1.8 ms a hop, against 1.9 at 2 ms, 2.9 at "
    "5 and 5.6 at 10, flowc's own setting); an idle consumer then polls a thousand times a second, which cost "
    "flowc's side of the same run nothing measurable",
}
COMMON_WHY = [
    "* Both: `linger.ms=0` for the round trips (a record leaves at once); the raw pipe's relays linger 2 ms,",
    "  because a relay queues its batch record by record and without a linger librdkafka sends the first",
    "  records in requests of their own (the raw pipe measured at a third of its rate with `linger.ms=0`,",
    "  and slower with flowc's `linger.ms=0` + one request in flight). `acks=all` as flowc (it commits only",
    "  what is acknowledged); no idempotence, which flowc pays for on Kafka and a raw client need not.",
    "* The round trip is timed from the send until the consumer has the record; the acknowledgement is",
    "  awaited after that, untimed, as in a flowc hop, where the next consumer reads a record while its",
    "  producer's acknowledgement is still on the way.",
]


def text(name, broker=None):
    path = os.path.join(OUT, broker, name + ".txt") if broker else os.path.join(OUT, name + ".txt")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def grab(pattern, s, what):
    m = re.search(pattern, s)
    if not m:
        sys.exit(f"bench_report: no {what} in the bench output (pattern {pattern!r})")
    return [float(g.replace(",", "")) for g in m.groups()]


def grab_text(pattern, s, what):
    m = re.search(pattern, s)
    if not m:
        sys.exit(f"bench_report: no {what} in the bench output (pattern {pattern!r})")
    return m.group(1)


def criterion(group, bench):
    base = os.path.join(CRITERION, group, bench, "new")
    with open(os.path.join(base, "estimates.json")) as f:
        mean_ns = json.load(f)["mean"]["point_estimate"]
    elements = None
    with open(os.path.join(base, "benchmark.json")) as f:
        throughput = json.load(f).get("throughput") or {}
        elements = throughput.get("Elements")
    return mean_ns, elements


def bar_chart(name, title, rows, unit, goal=None, series=None):
    """Horizontal bars, hand-drawn SVG. rows: (label, value) for one series, or with `series`
    (a list of (key, legend, colour)), (label, {key: value}) with one bar per series present.
    Writes benches/report/NAME.svg and returns the Markdown image line."""
    width, left, bar_h, gap, top = 680, 250, 18, 12, 40
    if series is None:
        series = [("", None, "#4a7bd0")]
        rows = [(label, {"": value}) for label, value in rows]
    legend = [x for x in series if x[1]]
    if legend:
        top += 20
    bars = [(label, [(k, c, values[k]) for k, _, c in series if values.get(k) is not None]) for label, values in rows]
    height = top + sum(len(b) * bar_h + gap for _, b in bars) + 30
    values = [v for _, b in bars for _, _, v in b]
    vmax = max(values + ([goal] if goal else [])) * 1.15 or 1
    scale = (width - left - 80) / vmax
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{title}</text>',
    ]
    x = left
    for _, series_name, colour in legend:
        out.append(f'<rect x="{x}" y="32" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16}" y="42">{series_name}</text>')
        x += 30 + 7 * len(series_name)
    y = top
    for label, group in bars:
        out.append(f'<text x="{left - 8}" y="{y + len(group) * bar_h / 2 + 4:.1f}" text-anchor="end">{label}</text>')
        for _, colour, value in group:
            w = max(1, value * scale)
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{colour}"/>')
            out.append(f'<text x="{left + w + 5:.1f}" y="{y + bar_h * 0.65:.1f}">{value:.3g} {unit}</text>')
            y += bar_h
        y += gap
    if goal:
        x = left + goal * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 24}" stroke="#d04a4a" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 3:.1f}" y="{height - 10}" fill="#d04a4a">goal {goal}</text>')
    out.append("</svg>")
    os.makedirs(CHARTS, exist_ok=True)
    with open(os.path.join(CHARTS, name + ".svg"), "w") as f:
        f.write("\n".join(out) + "\n")
    return f"![{title}](report/{name}.svg)"


def broker_series():
    return [(b, TITLE[b], COLOUR[b]) for b in BROKERS]


def broker_table(first, what, rows):
    """A table with, per broker, the measured value, its baseline and their ratio. rows:
    (label, {broker: (value, baseline, ratio)}) of preformatted strings."""
    head = f"| {first} |" + "".join(f" {SHORT[b]}: {what} | {SHORT[b]}: baseline | {SHORT[b]}: ratio |" for b in BROKERS)
    lines = [head, "|---|" + "---:|---:|---:|" * len(BROKERS)]
    for label, cells in rows:
        lines.append(f"| {label} |" + "".join(" {} | {} | {} |".format(*cells[b]) for b in BROKERS))
    return lines


def parse(broker):
    r = {}
    b = text("broker", broker)
    r["settings"] = grab_text(r"(?m)^broker: \S+ \(raw clients: (.*)\)\s*$", b, "raw settings")
    r["flowc_rate"], r["raw_rate"], r["pipe_ratio"] = grab(
        r"median flowc ([\d.]+) records/s, raw rdkafka pipe ([\d.]+) records/s, ratio ([\d.]+)", b, "broker ratio")
    r["records"] = int(grab(r"round 0 flowc: (\d+) records", b, "broker record count")[0])
    r["rounds"] = len(re.findall(r"round \d+ flowc:", b))

    p = text("pipeline_gateway", broker)
    r["g50"], r["g99"] = grab(r"gateway\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", p, "gateway latency")
    r["f50"], r["f99"] = grab(r"floor\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", p, "floor latency")
    r["m50"], r["m99"] = grab(r"model\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", p, "model call latency")
    r["hop50"], r["hop99"], r["hops"] = grab(r"raw hop\s+p50 ([\d.]+) ms\s+p99 ([\d.]+) ms\s+\((\d+) produce", p, "raw hop")
    r["hop_settings"] = grab_text(r"(?m)^raw hop .*round trips on \S+; (.*)\)\s*$", p, "raw hop settings")
    r["samples"] = int(grab(r"latency \((\d+) sequential requests\)", p, "latency samples")[0])
    r["requests"], r["clients"] = (int(x) for x in grab(r"throughput \((\d+) requests, (\d+) concurrent callers\)", p, "request count"))
    r["crossed"] = int(grab(r"floor .*\((\d+) raw round trips", p, "topics crossed")[0])
    r["http_rate"], = grab(r"gateway HTTP\s+([\d.]+) requests/s", p, "HTTP throughput")
    r["grpc_rate"], = grab(r"gateway gRPC\s+([\d.]+) requests/s", p, "gRPC throughput")
    r["pipe_rate"], = grab(r"raw pipe\s+([\d.]+) records/s", p, "raw pipe")

    m = text("model_gateway", broker)
    r["d50"], r["d99"] = grab(r"direct\s+latency:.*?p50 ([\d.]+) ms, p99 ([\d.]+) ms", m, "direct latency")
    r["t50"], r["t99"] = grab(r"topics\s+latency:.*?p50 ([\d.]+) ms, p99 ([\d.]+) ms", m, "topics latency")
    r["mf50"], r["mf99"] = grab(r"floor\s+latency:.*?p50 ([\d.]+) ms, p99 ([\d.]+) ms", m, "model gateway floor")
    r["mhop50"], r["mhop99"] = grab(r"raw hop\s+p50 ([\d.]+) ms\s+p99 ([\d.]+) ms", m, "model gateway raw hop")
    r["direct_rate"], = grab(r"direct\s+throughput:.*= ([\d.]+) calls/s", m, "direct throughput")
    r["topics_rate"], = grab(r"topics\s+throughput:.*= ([\d.]+) records/s", m, "topics throughput")
    r["tp_ratio"], = grab(r"throughput topics/direct ([\d.]+)", m, "model gateway throughput ratio")
    r["round_trips"] = int(grab(r"topics\s+latency:\s+(\d+) sequential", m, "model gateway round trips")[0])
    r["model_records"] = int(grab(r"topics\s+throughput: (\d+) records", m, "model gateway records")[0])

    mem = text("memory", broker)
    r["w_idle"], r["w_peak"] = grab(r"worker\s+idle RSS\s+([\d.]+) MiB\s+peak RSS\s+([\d.]+) MiB", mem, "worker memory")
    r["gw_idle"], r["gw_peak"] = grab(r"gateway\s+idle RSS\s+([\d.]+) MiB\s+peak RSS\s+([\d.]+) MiB", mem, "gateway memory")
    r["load"] = grab_text(r"load: (.*)", mem, "memory load")
    return r


def env_overrides():
    """The FLOWC_BENCH_* variables the run was made with (bench-report.sh writes env.txt)."""
    path = os.path.join(OUT, "env.txt")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return sorted(line.strip() for line in f if line.startswith("FLOWC_BENCH_") and not line.startswith("FLOWC_BENCH_BROKER="))


def seconds():
    path = os.path.join(OUT, "seconds.txt")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {k: int(v) for k, v in (line.split() for line in f if line.strip())}


def main():
    R = {b: parse(b) for b in BROKERS}
    names = " and ".join(TITLE[b] for b in BROKERS)
    lines = ["# flowc benchmark report", "", f"Made by `scripts/bench-report.sh {' '.join(BROKERS)}` on {MACHINE}.", ""]
    lines += [
        f"The broker benches ran on {names}, one broker after the other (each bench starts its own).",
        "Every figure comes with the baseline measured on the same broker in the same run and the",
        "ratio between them; these machines are noisy, so compare ratios, not absolute numbers",
        "across runs or across brokers. The raw baselines use each broker's fastest raw client",
        "settings (see [Raw round trip per hop](#raw-round-trip-per-hop)), flowc its own.",
        "",
    ]
    overrides = env_overrides()
    lines += [("Record counts: the benches' defaults." if not overrides else
               "Record counts: the benches' defaults but " + ", ".join(f"`{o}`" for o in overrides) + "."), ""]

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
              "`cargo bench -p flowc-runtime --bench operators` (no broker). Baseline: the same work on in-memory stores.", "",
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

    # 3. The raw floor of one hop, per broker: what the broker benches' baselines are made of.
    lines += ["## Raw round trip per hop", "",
              "The floor the latency baselines below are built from: produce one record (acks=all) and read it",
              "back with a consumer already waiting on the topic, with the fastest raw client settings of that",
              "broker (`RawSettings` in `benches/common/mod.rs`; the raw pipe's relays and the readers that time",
              "the benches use them too). Measured by `pipeline_gateway`, interleaved with its gateway calls,",
              "and again by `model_gateway`, interleaved with its model calls through the topics.", "",
              "| broker | p50 | p99 | round trips | p50 (model_gateway run) | raw client settings | flowc's own settings |",
              "|---|---:|---:|---:|---:|---|---|"]
    for b in BROKERS:
        r = R[b]
        lines.append(f"| {TITLE[b]} | {r['hop50']:.2f} ms | {r['hop99']:.2f} ms | {r['hops']:,.0f} | {r['mhop50']:.2f} ms | "
                     f"{r['hop_settings']} | {FLOWC_SETTINGS[b]} |")
    lines.append("")
    for b in BROKERS:
        lines.append(f"* {TITLE[b]}: {WHY[b]}.")
    lines += COMMON_WHY + [""]

    # 4. Pipeline throughput against the raw broker pipe.
    r0 = R[BROKERS[0]]
    lines += ["## Pipeline throughput against a raw rdkafka pipe", "",
              f"`cargo bench --bench broker`: a 1-step plan (three relays over four topics, one model call); "
              f"baseline: three raw relays over four topics with the same model call, on the same broker. "
              f"Median of {r0['rounds']} rounds of {r0['records']:,} records each side.", ""]
    lines += broker_table("measure", "flowc", [
        ("records/s (goal ≥ 0.7)", {b: (f"{R[b]['flowc_rate']:,.0f} /s", f"{R[b]['raw_rate']:,.0f} /s", f"{R[b]['pipe_ratio']:.2f}") for b in BROKERS}),
    ])
    lines.append("")

    # 5. Synchronous latency and throughput through the pipeline gateway.
    lines += ["## Synchronous calls through the pipeline gateway", "",
              f"`cargo bench --bench pipeline_gateway`: the same 1-step pipeline, {r0['samples']} sequential requests, then "
              f"{r0['requests']:,} requests from {r0['clients']} concurrent callers. Latency baseline: {r0['crossed']} raw "
              "produce→consume round trips (one per topic a request crosses) plus one direct model call, "
              "interleaved with the requests; throughput baseline: the raw pipe. The last row is flowc's cost "
              f"per topic crossed, (gateway p50 − model call p50) / {r0['crossed']}, against the raw hop p50.", ""]

    def cell(value, base, fmt="{:.2f} ms"):
        return (fmt.format(value), fmt.format(base), f"{value / base:.2f}")

    per_hop = {b: (R[b]["g50"] - R[b]["m50"]) / R[b]["crossed"] for b in BROKERS}
    lines += broker_table("measure", "gateway", [
        ("latency p50 (goal ≤ 1.2)", {b: cell(R[b]["g50"], R[b]["f50"]) for b in BROKERS}),
        ("latency p99", {b: cell(R[b]["g99"], R[b]["f99"]) for b in BROKERS}),
        ("throughput HTTP (goal ≥ 0.7)", {b: cell(R[b]["http_rate"], R[b]["pipe_rate"], "{:,.0f} /s") for b in BROKERS}),
        ("throughput gRPC (goal ≥ 0.7)", {b: cell(R[b]["grpc_rate"], R[b]["pipe_rate"], "{:,.0f} /s") for b in BROKERS}),
        ("per topic crossed, p50", {b: cell(per_hop[b], R[b]["hop50"]) for b in BROKERS}),
    ])
    lines.append("")

    # 6. Model gateway overhead.
    lines += ["## Model gateway overhead", "",
              "`cargo bench --bench model_gateway`: model calls through the topics (the worker's model-call step: "
              f"two topics) against, for latency ({r0['round_trips']} sequential round trips), 2 raw round trips plus "
              f"one direct call (the floor, interleaved), and for throughput ({r0['model_records']:,} records), "
              "calling the same server directly with 16 calls in flight.", ""]
    lines += broker_table("measure", "topics", [
        ("latency p50", {b: cell(R[b]["t50"], R[b]["mf50"]) for b in BROKERS}),
        ("latency p99", {b: cell(R[b]["t99"], R[b]["mf99"]) for b in BROKERS}),
        ("throughput", {b: cell(R[b]["topics_rate"], R[b]["direct_rate"], "{:,.0f} /s") for b in BROKERS}),
    ])
    lines += ["", "A direct call alone: " + ", ".join(
        f"{SHORT[b]} run p50 {R[b]['d50']:.3f} ms (p99 {R[b]['d99']:.3f} ms)" for b in BROKERS) + ".", ""]

    # 7. Memory.
    lines += ["## Memory under load", "",
              "`cargo bench --bench memory`: worker and gateway as separate `flowc` processes; "
              "baseline: each process's resident memory when ready and idle. Load: "
              + "; ".join(f"{SHORT[b]}: {R[b]['load']}" for b in BROKERS) + ".", ""]
    lines += broker_table("process", "peak RSS", [
        ("worker", {b: cell(R[b]["w_peak"], R[b]["w_idle"], "{:.1f} MiB") for b in BROKERS}),
        ("gateway", {b: cell(R[b]["gw_peak"], R[b]["gw_idle"], "{:.1f} MiB") for b in BROKERS}),
    ])
    mem_rows = [(label, {b: R[b][key] for b in BROKERS}) for label, key in
                [("worker idle", "w_idle"), ("worker peak", "w_peak"), ("gateway idle", "gw_idle"), ("gateway peak", "gw_peak")]]
    lines += ["", bar_chart("memory", "resident memory idle and at peak under load (MiB)", mem_rows, "MiB", series=broker_series()), ""]

    # All ratios in one picture.
    rows = [
        ("pipeline / raw pipe", {b: R[b]["pipe_ratio"] for b in BROKERS}),
        ("gateway HTTP / raw pipe", {b: R[b]["http_rate"] / R[b]["pipe_rate"] for b in BROKERS}),
        ("gateway gRPC / raw pipe", {b: R[b]["grpc_rate"] / R[b]["pipe_rate"] for b in BROKERS}),
        ("model calls topics / direct", {b: R[b]["tp_ratio"] for b in BROKERS}),
    ]
    lat_rows = [
        ("gateway p50 / floor p50", {b: R[b]["g50"] / R[b]["f50"] for b in BROKERS}),
        ("per topic / raw hop (p50)", {b: per_hop[b] / R[b]["hop50"] for b in BROKERS}),
        ("model calls p50 / floor p50", {b: R[b]["t50"] / R[b]["mf50"] for b in BROKERS}),
    ]
    lines += ["## Ratios", "",
              bar_chart("ratios", "throughput as a ratio to its baseline (same broker, same run)",
                        rows + [(label, {"none": v}) for label, v in op_rows], "", goal=0.7,
                        series=broker_series() + [("none", "no broker", "#888888")]), "",
              bar_chart("latency", "latency as a ratio to its floor (same broker, same run)", lat_rows, "", goal=1.2,
                        series=broker_series()), ""]

    # The Kafka Streams comparison runs on its own (`cargo bench --bench kstreams`, several
    # minutes): its latest results live in benches/kstreams/RESULTS.md; the summary points there.
    kstreams = os.path.join(ROOT, "benches", "kstreams", "RESULTS.md")
    if os.path.exists(kstreams):
        with open(kstreams) as f:
            text = f.read()
        summary = [l for l in text.splitlines() if l.startswith("`join flowc/kafka-streams throughput ratio")]
        lines += ["## Kafka Streams side by side", "",
                  "`cargo bench --bench kstreams`: the relay, join and chain topologies on flowc (a `flowc worker` "
                  "process) and on Kafka Streams 4.3.2 (the JVM engine Seldon Core 2 uses), same records, same "
                  "broker, same run, A B A B. Every table, how it is fair, and where flowc is behind: "
                  "[kstreams/RESULTS.md](kstreams/RESULTS.md).", ""]
        lines += [l for l in summary] + [""]
        lines += ["![flowc / Kafka Streams](report/kstreams.svg)", ""]

    took = seconds()
    if took:
        lines += ["## Run time", "", "| bench | " + " | ".join(["no broker"] + [SHORT[b] for b in BROKERS]) + " |",
                  "|---|" + "---:|" * (1 + len(BROKERS))]
        for bench in ["compile", "operators", "broker", "model_gateway", "pipeline_gateway", "memory"]:
            cells = [took.get(f"bench-report/{bench}")] + [took.get(f"{b}/{bench}") for b in BROKERS]
            lines.append(f"| {bench} | " + " | ".join("" if c is None else f"{c} s" for c in cells) + " |")
        total = sum(took.values())
        lines += [f"| all | {total} s ({total / 60:.1f} min) |" + " |" * len(BROKERS), ""]
    print("\n".join(lines))


main()
