#!/usr/bin/env python3
"""End-to-end echo scenarios: `sockeye load` against `sockeye serve`, side by side.

Each round starts a fresh server pinned to one core and the load generator pinned to another,
runs one scenario, and records the load generator's figures together with the server's own CPU
time (utime + stime from /proc) and resident memory. Prints medians and min-max over the rounds.

    cargo build --release -p sockeye
    python3 benches/echo.py --rounds 3 --duration 5            # every scenario
    python3 benches/echo.py --only idle --rounds 1             # one scenario

Loopback only; every process it starts is stopped by its PID.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# name -> (load arguments, extra server arguments)
SCENARIOS = {
    "16B-1": (["echo", "-c", "100", "-s", "16", "--in-flight", "1"], []),
    "16B-16": (["echo", "-c", "100", "-s", "16", "--in-flight", "16"], []),
    "4KiB": (["echo", "-c", "100", "-s", "4KiB", "--in-flight", "1"], []),
    "1MiB": (["echo", "-c", "10", "-s", "1MiB", "--in-flight", "1"], []),
    "latency-64B": (["latency", "-c", "100", "-s", "64"], []),
    "4KiB-json-deflate": (
        ["echo", "-c", "100", "-s", "4KiB", "--text", "--deflate"],
        ["--deflate", "--deflate-threshold", "0"],
    ),
    "4KiB-json": (["echo", "-c", "100", "-s", "4KiB", "--text"], []),
    "idle": (["connect", "-c", "10000", "--concurrency", "128"], []),
    "idle-deflate": (
        ["connect", "-c", "10000", "--concurrency", "128", "--deflate"], ["--deflate"]),
    # Every connection compresses and decompresses, so each holds both deflate states.
    "10k-deflate-w15": (
        ["echo", "-c", "10000", "-s", "4KiB", "--text", "--deflate"],
        ["--deflate", "--deflate-threshold", "0"]),
    "10k-deflate-w9": (
        ["echo", "-c", "10000", "-s", "4KiB", "--text", "--deflate", "--deflate-window-bits", "9"],
        ["--deflate", "--deflate-threshold", "0", "--deflate-window-bits", "9",
         "--deflate-client-window-bits", "9"]),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def wait_listening(port, proc, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not listen in time")


def run_once(binary, name, args, server_extra, duration, cores):
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", cores[0], binary, "serve", "--addr", f"127.0.0.1:{port}",
         "--threads", "1", "--max-connections", "20000"] + server_extra,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, server)
        base_rss = rss_bytes(server.pid)
        peak = [base_rss]
        done = threading.Event()

        def sample():
            while not done.wait(0.1):
                try:
                    peak[0] = max(peak[0], rss_bytes(server.pid))
                except OSError:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu_before = cpu_seconds(server.pid)
        timing = ["--hold", str(duration)] if args[0] == "connect" else \
            ["-d", str(duration), "--warmup", "0"]
        load = subprocess.run(
            ["taskset", "-c", cores[1], binary, "load"] + args + timing +
            ["--url", f"ws://127.0.0.1:{port}/", "--json"],
            capture_output=True, text=True, timeout=duration + 120)
        cpu = cpu_seconds(server.pid) - cpu_before
        done.set()
        sampler.join()
        if load.returncode != 0:
            raise RuntimeError(f"{name}: load failed: {load.stderr.strip()[-400:]}")
        result = json.loads(load.stdout.strip().splitlines()[-1])
        result["server_cpu_s"] = cpu
        result["server_rss_base"] = base_rss
        result["server_rss_peak"] = peak[0]
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def summarize(name, runs):
    def med(values):
        return statistics.median(values), min(values), max(values)

    if runs[0]["mode"] == "connect":
        hs = med([r["handshakes_per_s"] for r in runs])
        per_conn = med([(r["server_rss_peak"] - r["server_rss_base"]) / max(r["still_open"], 1)
                        for r in runs])
        cpu_hs = med([r["server_cpu_s"] / max(r["established"], 1) * 1e6 for r in runs])
        return (f"{name:18} handshakes/s {hs[0]:>10.0f} ({hs[1]:.0f}-{hs[2]:.0f})  "
                f"server CPU/handshake {cpu_hs[0]:6.1f} us  "
                f"RSS/connection {per_conn[0]:6.0f} B ({per_conn[1]:.0f}-{per_conn[2]:.0f})")
    rate = med([r["echoes_per_s"] for r in runs])
    if runs[0]["connections"] >= 1000:
        per_conn = med([(r["server_rss_peak"] - r["server_rss_base"]) / r["established"]
                        for r in runs])
        return (f"{name:18} echoes/s {rate[0]:>10.0f}  connections {runs[0]['established']}  "
                f"RSS/connection {per_conn[0] / 1024:7.1f} KiB "
                f"({per_conn[1] / 1024:.1f}-{per_conn[2] / 1024:.1f})")
    cpu = med([r["server_cpu_s"] / max(r["echoes"], 1) * 1e6 for r in runs])
    line = (f"{name:18} echoes/s {rate[0]:>10.0f} ({rate[1]:.0f}-{rate[2]:.0f})  "
            f"server CPU/echo {cpu[0]:7.2f} us ({cpu[1]:.2f}-{cpu[2]:.2f})")
    if runs[0].get("rtt_us"):
        p50 = med([r["rtt_us"]["p50"] for r in runs])
        p99 = med([r["rtt_us"]["p99"] for r in runs])
        line += f"  rtt p50 {p50[0]:.0f} us p99 {p99[0]:.0f} us"
    if runs[0].get("compression_ratio"):
        ratio = med([r["compression_ratio"] for r in runs])
        line += f"  payload/wire {ratio[0]:.2f}"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "sockeye"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--cores", default="0,1", help="server core,load core")
    opts = parser.parse_args()
    cores = opts.cores.split(",")
    names = opts.only or list(SCENARIOS)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {opts.rounds} rounds of "
          f"{opts.duration:g} s, server on core {cores[0]}, load on core {cores[1]}")
    for name in names:
        args, server_extra = SCENARIOS[name]
        runs = [run_once(opts.binary, name, args, server_extra, opts.duration, cores)
                for _ in range(opts.rounds)]
        print(summarize(name, runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
