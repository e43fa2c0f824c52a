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
# included) and divided by the deliveries the load verified. Prints `Ir/deliveries N`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/sockeye}
shift || true
if [ $# -eq 0 ]; then
  set -- --subscribers 500 --topics 50 --publishers 50 --rate 20
fi
# shellcheck source=benches/callgrind-run.sh
. benches/callgrind-run.sh
count target/callgrind-fanout "$BIN" /pubsub deliveries fanout --duration 3 --warmup 0.5 "$@"
