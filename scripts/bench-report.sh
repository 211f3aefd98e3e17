#!/usr/bin/env bash
# Runs the whole bench suite and writes benches/REPORT.md (with SVG charts in benches/report/):
# compile time against pipeline size and operator throughput (no broker), then, on each broker
# named (default: Apache Kafka, then tansu), pipeline throughput and latency against the raw
# floor, model gateway overhead and memory under load. Every ratio is taken against the
# baseline measured on the same broker in the same run. About 5 minutes a broker on 2 cores
# once built.
#
#   ./scripts/bench-report.sh                 # kafka, then tansu
#   ./scripts/bench-report.sh tansu           # only the brokers named (kafka, tansu)
#
# The benches' FLOWC_BENCH_* variables (record counts, callers; see each bench's header) pass
# through; the report states the counts each run used.
set -euo pipefail
cd "$(dirname "$0")/.."

brokers=("$@")
[ ${#brokers[@]} -eq 0 ] && brokers=(kafka tansu)
for b in "${brokers[@]}"; do
    case "$b" in
        kafka | tansu) ;;
        *) echo "bench-report: unknown broker '$b' (kafka or tansu)" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FLOWC_TARGET_DIR:-$HOME/.cache/flowc/target}}"
./scripts/setup-build-deps.sh
for b in "${brokers[@]}"; do
    case "$b" in
        kafka) FLOWC_KAFKA_HOME="$(./scripts/install-kafka.sh | tail -n 1)"; export FLOWC_KAFKA_HOME ;;
        tansu) FLOWC_TANSU="$(./scripts/install-broker.sh | tail -n 1)"; export FLOWC_TANSU ;;
    esac
done
out=target/bench-report
rm -rf "$out" && mkdir -p "$out"
env | grep '^FLOWC_BENCH_' > "$out/env.txt" || true
# Build every bench once and run the binaries themselves: a `cargo bench` per bench would
# rebuild whatever changed in the work tree meanwhile, inside the timings and with other code.
executables() {
    cargo bench --locked "$@" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])'
}
cargo bench --locked --benches --no-run 2>&1 | tail -n 3
cargo bench --locked -p flowc-runtime --bench operators --no-run 2>&1 | tail -n 3
declare -A exe
while read -r name path; do exe[$name]="$path"; done < <(executables --benches; executables -p flowc-runtime --bench operators)
for bench in compile operators broker model_gateway pipeline_gateway memory; do
    [ -n "${exe[$bench]:-}" ] || { echo "bench-report: no executable for bench $bench" >&2; exit 1; }
done

run() {
    local file="$1" bench="$2" dir="${3:-.}"
    local started=$SECONDS
    echo "==> ${FLOWC_BENCH_BROKER:-} $bench (output: $file)"
    # As `cargo bench` runs it: from its package's directory, with `--bench`.
    (cd "$dir" && "${exe[$bench]}" --bench) 2>&1 | tee "$file" | tail -n 12
    echo "$(basename "$(dirname "$file")")/$(basename "$file" .txt) $((SECONDS - started))" >> "$out/seconds.txt"
}
run "$out/compile.txt" compile
run "$out/operators.txt" operators runtime
for b in "${brokers[@]}"; do
    mkdir -p "$out/$b"
    for bench in broker model_gateway pipeline_gateway memory; do
        FLOWC_BENCH_BROKER="$b" run "$out/$b/$bench.txt" "$bench"
    done
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
mem="$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
machine="$(date -u +%Y-%m-%d), $(nproc) cores ($cpu), $mem RAM, $(uname -sr), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' with uncommitted changes')"
python3 scripts/bench_report.py "$out" "$CARGO_TARGET_DIR/criterion" "$machine" "${brokers[@]}" > benches/REPORT.md.new
mv benches/REPORT.md.new benches/REPORT.md
echo "wrote benches/REPORT.md"
