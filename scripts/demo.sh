#!/usr/bin/env bash
# The main job, from a fresh clone: build flowc, compile a sample pipeline, draw its DAG, then
# run it end to end on a local broker (Apache Kafka, KRaft; FLOWC_DEMO_BROKER=tansu for the
# light one without a JVM), started by `flowc dev-broker`, with the reference model server,
# one worker and the pipeline gateway: the request goes in once asynchronously (through the
# topics, with `flowc send`/`flowc read`) and once synchronously (HTTP POST to the gateway, as a
# Seldon client calls it), and both answers are printed.
#
#   ./scripts/demo.sh [join|chain|conditional|pipeline-inputs|triggers|cycle]
#
# Everything runs as plain processes on 127.0.0.1 and is stopped on exit; logs are kept in
# target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FLOWC_TARGET_DIR:-$HOME/.cache/flowc/target}}"
name="${1:-join}"
sample="samples/$name.yaml"
request="samples/requests/$name.json"
[ -f "$sample" ] && [ -f "$request" ] || { echo "no sample $sample with a request $request" >&2; exit 2; }

kind="${FLOWC_DEMO_BROKER:-kafka}"
./scripts/setup-build-deps.sh
case "$kind" in
    kafka) export FLOWC_KAFKA_HOME; FLOWC_KAFKA_HOME="$(./scripts/install-kafka.sh | tail -n 1)" ;;
    tansu) export FLOWC_TANSU; FLOWC_TANSU="$(./scripts/install-broker.sh | tail -n 1)" ;;
    *) echo "FLOWC_DEMO_BROKER must be kafka or tansu (got $kind)" >&2; exit 2 ;;
esac
cargo build --release --locked --bin flowc
flowc="$CARGO_TARGET_DIR/release/flowc"

echo "==> flowc compile $sample"
"$flowc" compile "$sample"
mkdir -p target/demo
"$flowc" graph "$sample" -o target/demo/dag.svg

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
broker_port="$(free_port)"
model_port="$(free_port)"
bootstrap="127.0.0.1:$broker_port"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "==> flowc dev-broker --kind $kind --port $broker_port (log: target/demo/broker.log)"
"$flowc" dev-broker --kind "$kind" --port "$broker_port" >target/demo/broker.out 2>target/demo/broker.log &
pids+=($!)
# It prints its bootstrap address once it answers a metadata request.
for _ in $(seq 1 600); do
    [ -s target/demo/broker.out ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat target/demo/broker.log >&2; exit 1; }
    sleep 0.1
done
[ -s target/demo/broker.out ] || { echo "the broker did not start:" >&2; cat target/demo/broker.log >&2; exit 1; }

echo "==> flowc model-server on 127.0.0.1:$model_port"
"$flowc" model-server "$sample" --listen "127.0.0.1:$model_port" >target/demo/model-server.log 2>&1 &
pids+=($!)

echo "==> flowc apply $sample"
"$flowc" apply "$sample" -b "$bootstrap" --partitions 2

echo "==> flowc worker (log: target/demo/worker.log)"
rm -rf target/demo/state
"$flowc" worker -b "$bootstrap" --state-dir target/demo/state \
    --model-server "http://127.0.0.1:$model_port" >target/demo/worker.log 2>&1 &
pids+=($!)

gateway_port="$(free_port)"
echo "==> flowc gateway on 127.0.0.1:$gateway_port (HTTP; log: target/demo/gateway.log)"
"$flowc" gateway -b "$bootstrap" --http-listen "127.0.0.1:$gateway_port" --grpc-listen "127.0.0.1:$(free_port)" \
    --model-server "http://127.0.0.1:$model_port" >target/demo/gateway.log 2>&1 &
pids+=($!)

pipeline="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pipeline"])' "$request")"
echo "==> flowc send $pipeline @$request"
key="$("$flowc" send "$pipeline" "@$request" -b "$bootstrap")"
echo "request key: $key"
echo "==> flowc read $pipeline --key $key"
"$flowc" read "$pipeline" --key "$key" --wait-ms 60000 -b "$bootstrap"
echo "==> POST http://127.0.0.1:$gateway_port/v2/pipelines/$pipeline/infer (synchronous, through the gateway)"
python3 - "http://127.0.0.1:$gateway_port" "$pipeline" "$request" <<'PY'
import sys, time, urllib.request, urllib.error
base, pipeline, request = sys.argv[1:4]
for _ in range(300):  # until the gateway holds its partitions and the models are ready
    try:
        urllib.request.urlopen(f"{base}/v2/pipelines/{pipeline}/ready", timeout=5)
        break
    except (urllib.error.URLError, OSError):
        time.sleep(0.2)
body = open(request, "rb").read()
r = urllib.request.Request(f"{base}/v2/pipelines/{pipeline}/infer", data=body,
                           headers={"content-type": "application/json"})
try:
    with urllib.request.urlopen(r, timeout=60) as answer:
        print(answer.read().decode())
        print("x-request-id:", answer.headers.get("x-request-id"))
except urllib.error.HTTPError as e:
    sys.exit(f"HTTP {e.code}: {e.read().decode()}")
PY
echo "==> flowc status"
"$flowc" status -b "$bootstrap"
echo "The compiled DAG is in target/demo/dag.svg (open it in a browser)."
