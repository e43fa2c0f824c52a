#!/usr/bin/env python3
"""Topics across two sockeye nodes over NATS, next to one node: `sockeye load fanout` with its
publishers on node A and its subscribers on node B (`--publish-url`), and the same load against
one node without a backplane; plus the broker's own hop (a NATS client publishing to another,
`crates/sockeye-nats/examples/rtt.rs`) at the same rate.

Every process is started fresh for each run: `nats-server` (Debian's; `.ci/interop-setup`
installs it) and the nodes pinned to --server-cores, the load generator and the rtt client to
--load-cores. Per run it records the load's JSON summary and the CPU time (utime + stime from
/proc/PID/stat) of each node and of the broker; the tables give the median and min-max over
the rounds:

- latency p50/p99 of one node, of two nodes, and the broker's hop alone;
- deliveries/s;
- each node's and the broker's CPU per publish: with two nodes, node A only reads the
  publishes and forwards them (its subscribers are on node B); with one node, the node reads
  and delivers them; with two nodes and no backplane (nothing is delivered: the load reports
  every message lost, which is expected there), node A only reads them, so that the
  difference from the two-node run is what forwarding costs.

    python3 benches/backplane.py                  # 3 rounds of 5 s per scenario
    python3 benches/backplane.py --quick          # 1 round of 1 s
    python3 benches/backplane.py --only 10x10-10k

It builds what it runs (`cargo build --release -p sockeye-cli` and the rtt example) unless
--no-build. Loopback only; every process it starts is stopped by its PID.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

from compare import cpu_seconds, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKEYE = os.path.join(ROOT, "target", "release", "sockeye")
RTT = os.path.join(ROOT, "target", "release", "examples", "rtt")

# (name, subscribers, topics, publishers, rate per topic)
SCENARIOS = [
    ("1x10-100", 10, 1, 1, 100),
    ("10x10-10k", 10, 10, 10, 1000),
    ("10x10-50k", 10, 10, 10, 5000),
    ("1x100-1k", 100, 1, 1, 1000),
    ("10x100-10k", 100, 10, 10, 1000),
]


def nats_server():
    for path in ("/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if os.path.exists(path):
            return path
    sys.exit("nats-server is missing: run `bash .ci/interop-setup` (Debian package nats-server)")


def pinned(cores, command, **kw):
    return subprocess.Popen(["taskset", "-c", cores] + command, stdin=subprocess.DEVNULL, **kw)


def wait_port(port, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listens on {port} after {limit} s")


class Procs:
    """Processes started for one run, stopped by PID at the end."""

    def __init__(self):
        self.procs = []

    def start(self, cores, command, port):
        proc = pinned(cores, command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_port(port)
        return proc

    def stop(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def run(args, scenario, mode):
    """mode: "one" (one node), "two" (two nodes over NATS), "apart" (two nodes, no backplane:
    node A only reads the publishes, for its CPU without forwarding)."""
    name, subscribers, topics, publishers, rate = scenario
    two_nodes = mode != "one"
    procs = Procs()
    try:
        nats_port = free_port()
        broker = procs.start(args.server_cores, [nats_server(), "-a", "127.0.0.1", "-p",
                                                 str(nats_port)], nats_port)
        nats = ["--nats", f"nats://127.0.0.1:{nats_port}"] if mode != "apart" else []
        port_a = free_port()
        port_b = free_port() if two_nodes else port_a
        serve = [SOCKEYE, "serve", "--threads", "1"]
        a = procs.start(args.server_cores, serve + ["--addr", f"127.0.0.1:{port_a}"] +
                        (nats if two_nodes else []), port_a)
        b = procs.start(args.server_cores, serve + ["--addr", f"127.0.0.1:{port_b}"] + nats,
                        port_b) if two_nodes else a
        target = ["--url", f"ws://127.0.0.1:{port_b}/pubsub"]
        if two_nodes:
            target += ["--publish-url", f"ws://127.0.0.1:{port_a}/pubsub", "--settle", "1"]
        before = {p.pid: cpu_seconds(p.pid) for p in (broker, a, b)}
        out = subprocess.run(
            ["taskset", "-c", args.load_cores, SOCKEYE, "load", "fanout"] + target +
            ["--subscribers", str(subscribers), "--topics", str(topics), "--publishers",
             str(publishers), "--rate", str(rate), "--duration", str(args.duration),
             "--warmup", "1", "--json"],
            capture_output=True, text=True, timeout=120 + 2 * args.duration)
        after = {p.pid: cpu_seconds(p.pid) for p in (broker, a, b)}
        if out.returncode != 0 and mode != "apart":
            sys.exit(f"load fanout failed: {out.stdout} {out.stderr}")
        summary = json.loads(out.stdout)
        # Publishes over the whole run (warmup included), for CPU per publish.
        total = rate * topics * (args.duration + 1.0)
        latency = summary["latency_us"] or {}
        return {
            "p50": latency.get("p50"),
            "p99": latency.get("p99"),
            "deliveries_per_sec": summary["deliveries_per_sec"],
            "lost": summary["lost"] + summary["lost_tail"],
            "a_us_per_publish": (after[a.pid] - before[a.pid]) / total * 1e6,
            "b_us_per_publish": (after[b.pid] - before[b.pid]) / total * 1e6,
            "broker_us_per_publish": (after[broker.pid] - before[broker.pid]) / total * 1e6,
        }
    finally:
        procs.stop()


def broker_hop(args, rate):
    procs = Procs()
    try:
        port = free_port()
        procs.start(args.server_cores, [nats_server(), "-a", "127.0.0.1", "-p", str(port)], port)
        out = subprocess.run(
            ["taskset", "-c", args.load_cores, RTT, f"nats://127.0.0.1:{port}", str(rate),
             str(max(1, round(args.duration)))], capture_output=True, text=True, timeout=60 + args.duration)
        if out.returncode != 0:
            sys.exit(f"rtt failed: {out.stderr}")
        r = json.loads(out.stdout)
        return {"p50": r["p50_us"], "p99": r["p99_us"]}
    finally:
        procs.stop()


def cell(values, digits=0):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    fmt = f"{{:.{digits}f}}"
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--quick", action="store_true", help="1 round of 1 s")
    p.add_argument("--server-cores", default="0")
    p.add_argument("--load-cores", default="1")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--only", help="comma-separated scenario names")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 1.0
    if not args.no_build:
        for cmd in (["cargo", "build", "--release", "-q", "-p", "sockeye-cli"],
                    ["cargo", "build", "--release", "-q", "-p", "sockeye-nats", "--example",
                     "rtt"]):
            subprocess.run(cmd, cwd=ROOT, check=True)
    print(f"{args.rounds} rounds of {args.duration:g} s; servers on cores {args.server_cores}, "
          f"load on {args.load_cores}; median (min-max)\n")
    only = set(args.only.split(",")) if args.only else None
    for scenario in SCENARIOS:
        name, subscribers, topics, publishers, rate = scenario
        if only and name not in only:
            continue
        results = {"one node": [], "two nodes": [], "two nodes, no backplane": [],
                   "broker hop": []}
        for _ in range(args.rounds):
            results["one node"].append(run(args, scenario, "one"))
            results["two nodes"].append(run(args, scenario, "two"))
            results["two nodes, no backplane"].append(run(args, scenario, "apart"))
            results["broker hop"].append(broker_hop(args, rate * topics))
        print(f"## {name}: {topics} topic(s), {subscribers} subscribers, {publishers} "
              f"publisher(s) at {rate}/s per topic ({rate * topics}/s in all), 16 B")
        print("| | p50 µs | p99 µs | deliveries/s | lost | node A CPU µs/publish | "
              "node B CPU µs/publish | broker CPU µs/publish |")
        print("|---|---|---|---|---|---|---|---|")
        for label, rs in results.items():
            get = lambda k: [r.get(k) for r in rs]
            print(f"| {label} | {cell(get('p50'))} | {cell(get('p99'))} | "
                  f"{cell(get('deliveries_per_sec'))} | {cell(get('lost'))} | "
                  f"{cell(get('a_us_per_publish'), 2)} | {cell(get('b_us_per_publish'), 2)} | "
                  f"{cell(get('broker_us_per_publish'), 2)} |")
        forwarding = statistics.median(r["a_us_per_publish"] for r in results["two nodes"])
        reading = statistics.median(r["a_us_per_publish"]
                                    for r in results["two nodes, no backplane"])
        added = (statistics.median(r["p50"] for r in results["two nodes"]) -
                 statistics.median(r["p50"] for r in results["one node"]))
        hop = statistics.median(r["p50"] for r in results["broker hop"])
        print(f"\nnode A (its publishers' node) spends {forwarding:.2f} µs of CPU per publish "
              f"with the backplane, {reading:.2f} without (reading the publishes only): "
              f"forwarding costs {forwarding - reading:.2f} µs per publish; the backplane adds "
              f"{added:.0f} µs to p50, the broker's own hop is {hop:.0f} µs\n")

if __name__ == "__main__":
    main()
