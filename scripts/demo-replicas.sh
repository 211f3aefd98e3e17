#!/usr/bin/env bash
# Partitions moving between worker replicas, on a local broker: one worker holds every
# partition, a second joins and they share them, the first leaves and the second takes them
# all; `flowc status --partitions` shows each step, and a request is answered at the end.
#
#   ./scripts/demo-replicas.sh          # on Apache Kafka (FLOWC_DEMO_BROKER=tansu: on tansu)
#
# Plain processes on 127.0.0.1, stopped on exit; logs in target/demo-replicas/.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FLOWC_TARGET_DIR:-$HOME/.cache/flowc/target}}"
kind="${FLOWC_DEMO_BROKER:-kafka}"
./scripts/setup-build-deps.sh
case "$kind" in
    kafka) export FLOWC_KAFKA_HOME; FLOWC_KAFKA_HOME="$(./scripts/install-kafka.sh | tail -n 1)" ;;
    tansu) export FLOWC_TANSU; FLOWC_TANSU="$(./scripts/install-broker.sh | tail -n 1)" ;;
    *) echo "FLOWC_DEMO_BROKER must be kafka or tansu (got $kind)" >&2; exit 2 ;;
esac
cargo build --release --locked --bin flowc
flowc="$CARGO_TARGET_DIR/release/flowc"
out=target/demo-replicas
rm -rf "$out" && mkdir -p "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
broker_port="$(free_port)"
model_port="$(free_port)"
b="127.0.0.1:$broker_port"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "==> flowc dev-broker --kind $kind on $b"
"$flowc" dev-broker --kind "$kind" --port "$broker_port" >"$out/broker.out" 2>"$out/broker.log" &
pids+=($!)
for _ in $(seq 1 600); do
    [ -s "$out/broker.out" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$out/broker.log" >&2; exit 1; }
    sleep 0.1
done
[ -s "$out/broker.out" ] || { echo "the broker did not start:" >&2; cat "$out/broker.log" >&2; exit 1; }
"$flowc" model-server samples/join.yaml --listen "127.0.0.1:$model_port" >"$out/model-server.log" 2>&1 &
pids+=($!)
echo "==> flowc apply samples/join.yaml --partitions 4"
"$flowc" apply samples/join.yaml -b "$b" --partitions 4 | grep -v '^  [+~]'

start_worker() {
    FLOWC_LOG=info,librdkafka=warn "$flowc" worker -b "$b" --state-dir "$out/$1-state" \
        --model-server "http://127.0.0.1:$model_port" -X "client.id=$1" >"$out/$1.log" 2>&1 &
    pids+=($!)
    eval "pid_${1//-/_}=$!"
}
# Waits until the tfsimple3 join group shows exactly the members named, then prints status.
show_when() {
    local want="$1" deadline=$((SECONDS + 60))
    while true; do
        status="$("$flowc" status --partitions -b "$b")"
        got="$(echo "$status" | awk '/^  tfsimple3 /{on=1; next} /^  [^ ]/{on=0} on && /: /{sub(/^ +/, ""); sub(/:.*/, ""); print}' | sort | tr '\n' ' ')"
        [ "$got" = "$want " ] && break
        [ $SECONDS -gt $deadline ] && { echo "status never showed: $want (got: $got)"; echo "$status"; exit 1; }
        sleep 1
    done
    echo "$status" | sed -n '/^  tfsimple3 /,/^  [^ ]/p' | sed '$d'
}

echo "==> one worker (replica-a) holds every partition"
start_worker replica-a
show_when "replica-a"
echo "==> replica-b joins: the group rebalances and they share the partitions"
start_worker replica-b
show_when "replica-a replica-b"
echo "==> replica-a leaves (SIGTERM): replica-b takes them all"
kill -TERM "$pid_replica_a"
show_when "replica-b"
echo "==> a request is still answered"
key="$("$flowc" send join @samples/requests/join.json -b "$b")"
"$flowc" read join --key "$key" --wait-ms 60000 -b "$b"
