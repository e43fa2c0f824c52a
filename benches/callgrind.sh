#!/usr/bin/env bash
# User-space instructions per echoed message in `sockeye serve`, counted by callgrind: a figure
# that does not move with the machine's load, for claims about the hot path.
#
#   benches/callgrind.sh [BINARY] [SIZE] [IN_FLIGHT]      (defaults: target/release/sockeye 16 16)
#
# The server (one worker, under valgrind) echoes for `sockeye load echo` (one connection,
# IN_FLIGHT messages of SIZE bytes in flight, 4 s after a 1 s warm-up); instructions are counted
# from the load's start to its end and divided by the messages the load verified. Build first:
# `cargo build --release -p sockeye-cli`. Prints `Ir/msg N`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/sockeye}
SIZE=${2:-16}
INFLIGHT=${3:-16}
OUT=target/callgrind
mkdir -p "$OUT"
rm -f "$OUT"/cg.out*
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" --dump-instr=no \
  --instr-atstart=no "$BIN" serve --threads 1 --addr "127.0.0.1:$PORT" >"$OUT/serve.log" 2>&1 &
VPID=$!
trap 'kill $VPID 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do grep -q listening "$OUT/serve.log" 2>/dev/null && break; sleep 0.2; done
callgrind_control -i on "$VPID" >/dev/null
taskset -c 1 "$BIN" load echo --url "ws://127.0.0.1:$PORT/" --connections 1 \
  --in-flight "$INFLIGHT" --size "$SIZE" --duration 4 --json >"$OUT/load.json"
callgrind_control -d "$VPID" >/dev/null
sleep 1
kill "$VPID"
wait "$VPID" 2>/dev/null || true
IR=$(grep -h "^summary:" "$OUT"/cg.out* | awk '{s += $2} END {print s}')
MSGS=$(python3 -c "import json; print(json.load(open('$OUT/load.json'))['verified'])")
echo "Ir=$IR messages=$MSGS"
python3 -c "print('Ir/msg', round($IR / $MSGS))"
echo "per function: callgrind_annotate --inclusive=no $OUT/cg.out.1"
