#!/usr/bin/env bash
# User-space instructions per echoed message in `sockeye serve`, counted by callgrind: a figure
# that does not move with the machine's load, for claims about the hot path.
#
#   benches/callgrind.sh [BINARY] [SIZE] [IN_FLIGHT]      (defaults: target/release/sockeye 16 16)
#
# The server (one worker, under valgrind) echoes for `sockeye load echo` (one connection,
# IN_FLIGHT messages of SIZE bytes in flight, 4 s after a 1 s warm-up); instructions are counted
# from the load's start to its end and divided by the messages the load verified. Build first:
# `cargo build --release -p sockeye-cli`. Prints `Ir/verified N` (instructions per message).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/sockeye}
SIZE=${2:-16}
INFLIGHT=${3:-16}
# shellcheck source=benches/callgrind-run.sh
. benches/callgrind-run.sh
count target/callgrind "$BIN" / verified echo --connections 1 --in-flight "$INFLIGHT" \
  --size "$SIZE" --duration 4
