# Shared by callgrind.sh and callgrind-fanout.sh (sourced, not run): counts the user-space
# instructions of `sockeye serve` (one worker, under callgrind) while a `sockeye load` mode
# runs against it, and divides them by one field of the load's JSON summary.
#
#   count OUT_DIR BINARY PATH FIELD LOAD_ARGS...
#
# PATH is the URL path served, FIELD the summary's count to divide by (`verified`,
# `deliveries`). Prints `Ir=N FIELD=M` and `Ir/FIELD R`.
count() {
  local out=$1 bin=$2 path=$3 field=$4
  shift 4
  mkdir -p "$out"
  rm -f "$out"/cg.out*
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --dump-instr=no \
    --instr-atstart=no "$bin" serve --threads 1 --addr "127.0.0.1:$port" >"$out/serve.log" 2>&1 &
  VPID=$!
  trap 'kill $VPID 2>/dev/null || true' EXIT
  for _ in $(seq 1 150); do grep -q listening "$out/serve.log" 2>/dev/null && break; sleep 0.2; done
  callgrind_control -i on "$VPID" >/dev/null
  taskset -c 1 "$bin" load "$@" --url "ws://127.0.0.1:$port$path" --json >"$out/load.json"
  callgrind_control -d "$VPID" >/dev/null
  sleep 1
  kill "$VPID"
  wait "$VPID" 2>/dev/null || true
  local ir n
  ir=$(grep -h "^summary:" "$out"/cg.out* | awk '{s += $2} END {print s}')
  n=$(python3 -c "import json; print(json.load(open('$out/load.json'))['$field'])")
  echo "Ir=$ir $field=$n"
  python3 -c "print('Ir/$field', round($ir / $n))"
  echo "per function: callgrind_annotate --inclusive=no $out/cg.out.1"
}
