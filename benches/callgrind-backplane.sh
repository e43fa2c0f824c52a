#!/usr/bin/env bash
# User-space instructions a node spends per publish it forwards to NATS, counted by callgrind.
#
#   benches/callgrind-backplane.sh [BINARY]     (default target/release/sockeye)
#
# Node A (one worker, under valgrind) takes the publishes of `sockeye load fanout` (10
# publishers, 10 topics, 200/s each, 3 s after a 0.5 s warm-up); its subscribers are on node B.
# Run twice: with both nodes joined by a nats-server (Debian's, on a free port), node A
# forwarding every publish, and with no backplane, node A only reading them (the load then
# reports every message lost: expected). Instructions are counted from the load's start to its
# end and divided by the publishes of the whole run. Prints both counts and their difference,
# the instructions forwarding adds per publish.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/sockeye}
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
OUT=target/callgrind-backplane
RATE=200 TOPICS=10 DURATION=3 WARMUP=0.5

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
  for _ in $(seq 1 150); do grep -q listening "$1" 2>/dev/null && return; sleep 0.2; done
  echo "no start line in $1" >&2
  exit 1
}

# count MODE: prints the instructions per publish of node A.
count() {
  local mode=$1 dir=$OUT/$1
  rm -rf "$dir" && mkdir -p "$dir"
  local np pa pb nats=()
  np=$(free_port) pa=$(free_port) pb=$(free_port)
  taskset -c 0 "$NATS_SERVER" -a 127.0.0.1 -p "$np" >"$dir/nats.log" 2>&1 &
  local broker=$!
  if [ "$mode" = nats ]; then nats=(--nats "nats://127.0.0.1:$np"); fi
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" --dump-instr=no \
    --instr-atstart=no "$BIN" serve --threads 1 --addr "127.0.0.1:$pa" "${nats[@]}" \
    >"$dir/a.log" 2>&1 &
  local a=$!
  taskset -c 0 "$BIN" serve --threads 1 --addr "127.0.0.1:$pb" "${nats[@]}" >"$dir/b.log" 2>&1 &
  local b=$!
  trap 'kill $a $b $broker 2>/dev/null || true' EXIT
  wait_for "$dir/a.log"
  wait_for "$dir/b.log"
  sleep 1
  callgrind_control -i on "$a" >/dev/null
  taskset -c 1 "$BIN" load fanout --url "ws://127.0.0.1:$pb/pubsub" \
    --publish-url "ws://127.0.0.1:$pa/pubsub" --subscribers 10 --topics "$TOPICS" \
    --publishers "$TOPICS" --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
    --settle 1 --json >"$dir/load.json" 2>"$dir/load.err" || [ "$mode" = apart ]
  callgrind_control -d "$a" >/dev/null
  sleep 1
  kill "$a" "$b" "$broker"
  wait "$a" 2>/dev/null || true
  trap - EXIT
  local ir
  ir=$(grep -h "^summary:" "$dir"/cg.out* | awk '{s += $2} END {print s}')
  python3 -c "print(round($ir / ($RATE * $TOPICS * ($DURATION + $WARMUP))))"
}

with=$(count nats)
without=$(count apart)
echo "node A, Ir per publish: $with forwarding to NATS, $without without a backplane"
echo "Ir/forwarded $((with - without))"
echo "per function: callgrind_annotate --inclusive=no $OUT/nats/cg.out.1"
