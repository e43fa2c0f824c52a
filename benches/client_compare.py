#!/usr/bin/env python3
"""The client side, measured: sockeye-client's AsyncWebSocket against tokio-tungstenite's
client, both on one current-thread tokio runtime in `peer-client-bench` (benches/peers), echoing
against one `sockeye serve` worker.

The server runs pinned to one core, the client to another (`taskset`). Each round runs every
client in turn for each scenario; the tables give messages per second and the client's CPU time
per message (utime + stime of the client process while its loops ran, and the user part alone),
medians and min-max over the rounds, and sockeye's CPU per message as a ratio to
tokio-tungstenite's.

With --callgrind, each client also runs under `valgrind --tool=callgrind` for a fixed number of
echoes, twice (N and 2N per connection): the difference of the two totals divided by the extra
echoes is the user-space instructions per message, without the setup, and the same whatever
else runs on the machine.

    python3 benches/client_compare.py                  # 5 rounds of 5 s, 16 B and 64 KiB
    python3 benches/client_compare.py --rounds 3 --seconds 3 --callgrind

It builds what it runs (`cargo build --release -p sockeye-cli` here and `cargo build --release
--bin peer-client-bench` in benches/peers; --no-build skips both). Loopback only; the server it
starts is stopped by its PID.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
SOCKEYE = os.path.join(ROOT, "target", "release", "sockeye")
BENCH = os.path.join(PEERS, "target", "release", "peer-client-bench")
CLIENTS = ["sockeye", "tungstenite"]
# (name, message size, connections)
SCENARIOS = [("16B", 16, 10), ("64KiB", 64 << 10, 10)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"client_compare.py: the server did not listen on {port} within {limit} s")


def bench(client, url, size, connections, core, extra, prefix=()):
    command = list(prefix) + [BENCH, "--client", client, "--url", url, "--size", str(size),
                              "--connections", str(connections)] + extra
    out = subprocess.run(["taskset", "-c", str(core)] + command, capture_output=True,
                         text=True, timeout=900, check=False)
    if out.returncode != 0:
        sys.exit(f"client_compare.py: {' '.join(command)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def instructions(client, url, size, connections, core, per_connection):
    """User-space instructions per echo: (Ir(2N) - Ir(N)) / (N x connections)."""
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (per_connection, 2 * per_connection):
            out_file = os.path.join(tmp, f"{client}-{n}.out")
            prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
            bench(client, url, size, connections, core, ["--messages", str(n)], prefix)
            with open(out_file) as f:
                total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
            totals.append(total)
    return (totals[1] - totals[0]) / (per_connection * connections)


def cell(values, digits=1):
    med = statistics.median(values)
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--callgrind", action="store_true",
                        help="also count instructions per message under callgrind")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "sockeye-cli"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "--bin", "peer-client-bench"], cwd=PEERS,
                       check=True)
    port = free_port()
    url = f"ws://127.0.0.1:{port}/"
    server = subprocess.Popen(["taskset", "-c", str(args.server_core), SOCKEYE, "serve",
                               "--addr", f"127.0.0.1:{port}", "--threads", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        results = {(s[0], c): [] for s in SCENARIOS for c in CLIENTS}
        for round_ in range(args.rounds):
            for name, size, connections in SCENARIOS:
                for client in CLIENTS:
                    r = bench(client, url, size, connections, args.client_core,
                              ["--seconds", str(args.seconds)])
                    results[(name, client)].append(r)
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
        counts = {}
        if args.callgrind:
            for name, size, connections in SCENARIOS:
                per = 200 if size < 4096 else 20
                for client in CLIENTS:
                    counts[(name, client)] = instructions(client, url, size, connections,
                                                          args.client_core, per)
    finally:
        server.kill()
        server.wait()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# {stamp}, {args.rounds} rounds of {args.seconds:g} s; server on core "
          f"{args.server_core} (`sockeye serve --threads 1`), client on core {args.client_core}")
    print()
    print("| scenario | client | messages/s | client CPU µs/msg | of which user | CPU ÷ tungstenite |"
          + (" instructions/msg |" if counts else ""))
    print("|---|---|---:|---:|---:|---:|" + ("---:|" if counts else ""))
    for name, size, connections in SCENARIOS:
        base = statistics.median(r["cpu_seconds"] / r["messages"]
                                 for r in results[(name, "tungstenite")])
        for client in CLIENTS:
            runs = results[(name, client)]
            rates = [r["messages"] / r["seconds"] for r in runs]
            cpu = [r["cpu_seconds"] / r["messages"] * 1e6 for r in runs]
            user = [r["user_seconds"] / r["messages"] * 1e6 for r in runs]
            ratio = statistics.median(cpu) / (base * 1e6)
            row = (f"| {name} x{connections} | {client} | {cell(rates, 0)} | {cell(cpu, 2)} | "
                   f"{statistics.median(user):.2f} | {ratio:.2f} |")
            if counts:
                row += f" {counts[(name, client)]:,.0f} |"
            print(row)


if __name__ == "__main__":
    main()
