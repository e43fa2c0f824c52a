#!/usr/bin/env bash
# User-space instructions per delivery of `sockeye serve`'s /pubsub, counted by callgrind: the
# fan-out counterpart of callgrind.sh, for claims about the publish path.
#
#   benches/callgrind-fanout.sh [BINARY] [LOAD OPTIONS...]
#       (defaults: target/release/sockeye --subscribers 500 --topics 50 --publishers 50
#        --rate 20, 3 s after a 0.5 s warm-up)
#
# The server (one worker, under valgrind) serves `sockeye load fanout` (the same binary);
# instructions are counted from the load's start to its end (handshakes and subscriptions
# included) and divided by the deliveries the load verified. Prints `Ir/delivery N`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/sockeye}
shift || true
if [ $# -eq 0 ]; then
  set -- --subscribers 500 --topics 50 --publishers 50 --rate 20
fi
OUT=target/callgrind-fanout
mkdir -p "$OUT"
rm -f "$OUT"/cg.out*
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" --dump-instr=no \
  --instr-atstart=no "$BIN" serve --threads 1 --addr "127.0.0.1:$PORT" >"$OUT/serve.log" 2>&1 &
VPID=$!
trap 'kill $VPID 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do grep -q listening "$OUT/serve.log" 2>/dev/null && break; sleep 0.2; done
callgrind_control -i on "$VPID" >/dev/null
taskset -c 1 "$BIN" load fanout --url "ws://127.0.0.1:$PORT/pubsub" --duration 3 --warmup 0.5 \
  "$@" --json >"$OUT/load.json"
callgrind_control -d "$VPID" >/dev/null
sleep 1
kill "$VPID"
wait "$VPID" 2>/dev/null || true
IR=$(grep -h "^summary:" "$OUT"/cg.out* | awk '{s += $2} END {print s}')
N=$(python3 -c "import json; print(json.load(open('$OUT/load.json'))['deliveries'])")
echo "Ir=$IR deliveries=$N"
python3 -c "print('Ir/delivery', round($IR / $N))"
echo "per function: callgrind_annotate --inclusive=no $OUT/cg.out.1"
