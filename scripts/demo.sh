#!/usr/bin/env bash
# The main job, from a fresh clone: build flowc, compile a sample pipeline, print its plan and
# write the DAG picture.
#
#   ./scripts/demo.sh [samples/join.yaml]
#
# Running the pipeline end to end on a local broker arrives with the workers (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FLOWC_TARGET_DIR:-$HOME/.cache/flowc/target}}"
sample="${1:-samples/join.yaml}"

./scripts/setup-build-deps.sh
cargo build --release --locked --bin flowc
flowc="$CARGO_TARGET_DIR/release/flowc"

echo "==> flowc compile $sample"
"$flowc" compile "$sample"

mkdir -p target
echo "==> flowc graph $sample -o target/dag.svg"
"$flowc" graph "$sample" -o target/dag.svg
echo "Open target/dag.svg in a browser to see the compiled DAG."
