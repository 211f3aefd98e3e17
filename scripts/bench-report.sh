#!/usr/bin/env bash
# Runs the whole bench suite and writes benches/REPORT.md (with SVG charts in benches/report/):
# compile time against pipeline size, operator throughput, pipeline throughput and latency
# against the raw-broker floor, model gateway overhead and memory under load, each as a ratio
# to its baseline from the same run. About 10 minutes on 2 cores once built.
#
#   ./scripts/bench-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FLOWC_TARGET_DIR:-$HOME/.cache/flowc/target}}"
./scripts/setup-build-deps.sh
FLOWC_TANSU="$(./scripts/install-broker.sh | tail -n 1)"
export FLOWC_TANSU
out=target/bench-report
rm -rf "$out" && mkdir -p "$out"

run() {
    local name="$1"; shift
    echo "==> cargo bench $* (output: $out/$name.txt)"
    cargo bench "$@" 2>&1 | tee "$out/$name.txt" | grep -vE '^\s*(Compiling|Running|Finished)' | tail -n 12
}
run compile --bench compile
run operators -p flowc-runtime --bench operators
run broker --bench broker
run model_gateway --bench model_gateway
run pipeline_gateway --bench pipeline_gateway
run memory --bench memory

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
mem="$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
machine="$(date -u +%Y-%m-%d), $(nproc) cores ($cpu), $mem RAM, $(uname -sr), commit $(git rev-parse --short HEAD)"
python3 scripts/bench_report.py "$out" "$CARGO_TARGET_DIR/criterion" "$machine" > benches/REPORT.md
echo "wrote benches/REPORT.md"
