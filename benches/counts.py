#!/usr/bin/env python3
"""User-space instructions per operation, counted by `valgrind --tool=callgrind`, against a kept
baseline (benches/counts-baseline.json).

Timings on a shared machine move 10-40 % between runs; instruction counts move by a few
instructions. Two kinds of count:

  echo-*   `sockeye serve --threads 1` and the raw `mio` floor (benches/peers peer-floor), each
           under callgrind (counting from the load's start to its end, pinned to core 0), while
           `sockeye load echo` (one connection, pinned to core 1) runs for --seconds; the server's
           instructions divided by the echoes the load verified. System calls run in the kernel
           and are not counted.
  path-*   the criterion benches' code paths (benches/counts.rs), N and 2N operations in two
           runs under callgrind; the difference divided by N, so that start-up cancels out.

  python3 benches/counts.py                 # every count, with the change from the baseline
  python3 benches/counts.py --only echo     # names containing "echo"
  python3 benches/counts.py --save          # ...and write the counts as the new baseline

Quote the table in every note about the hot path. Build first or let it build (--no-build skips
`cargo build --release -p sockeye-cli`, the peers and `cargo bench --bench counts --no-run`).
"""

import argparse
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOCKEYE = os.path.join(ROOT, "target", "release", "sockeye")
FLOOR = os.path.join(HERE, "peers", "target", "release", "peer-floor")
BASELINE = os.path.join(HERE, "counts-baseline.json")

# (name, payload size, messages in flight on the one connection). One 16 B message in flight
# is left out: each echo is then a turn of the event loop, and what the timers do per turn
# depends on how many turns a second the server makes under valgrind (5,500 to 7,400
# instructions per echo in three runs); these move by under 0.1 % (the floor's 1 MiB by 2 %).
ECHOES = [("16B-x16", "16", 16), ("4KiB-x16", "4KiB", 16), ("1MiB-x1", "1MiB", 1)]
# Operations per path in the first run (the second runs twice as many).
PATH_OPS = {"mask-4KiB": 2000, "frame-decode": 100000, "handshake": 2000, "utf8-4KiB": 2000,
            "read-16B": 50000, "send-16B": 50000, "deflate-4KiB": 200, "deflate-4KiB-fresh": 200,
            "deflate-256B": 500, "deflate-256B-warm": 500, "inflate-4KiB": 500}


def run(what, args, cwd=ROOT):
    print(f"# {what}", file=sys.stderr, flush=True)
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"counts.py: {what} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout + done.stderr


def build():
    run("cargo build --release -p sockeye-cli", ["cargo", "build", "--release", "-p",
                                                 "sockeye-cli"])
    run("cargo build --release --bin peer-floor (benches/peers)",
        ["cargo", "build", "--release", "--bin", "peer-floor"], cwd=os.path.join(HERE, "peers"))


def counts_binary():
    out = run("cargo bench --bench counts --no-run",
              ["cargo", "bench", "--bench", "counts", "--no-run"])
    found = re.findall(r"\((\S*counts-[0-9a-f]+)\)", out)
    if not found:
        sys.exit(f"counts.py: no counts bench binary in:\n{out[-2000:]}")
    return os.path.join(ROOT, found[-1])


def total_ir(path):
    """The instructions a callgrind output file counted (its `summary:` or `totals:` line)."""
    total = 0
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


def path_count(binary, name, ops, out_dir):
    irs = []
    for n in (ops, 2 * ops):
        out = os.path.join(out_dir, f"cg.{name}.{n}")
        run(f"callgrind {name} x{n}",
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, name, str(n)])
        irs.append(total_ir(out))
    return (irs[1] - irs[0]) / ops


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_count(server, size, in_flight, seconds, out_dir):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    if server == "sockeye":
        command = [SOCKEYE, "serve", "--threads", "1", "--addr", addr]
    else:
        command = [FLOOR, "--addr", addr, "--workers", "1"]
    out = os.path.join(out_dir, f"cg.echo.{server}.{size}.{in_flight}")
    log = open(os.path.join(out_dir, f"{server}.log"), "w+")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         "--dump-instr=no", "--instr-atstart=no"] + command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            log.seek(0)
            if "listening" in log.read():
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                sys.exit(f"counts.py: {server} did not start:\n{log.read()[-2000:]}")
            time.sleep(0.2)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                       capture_output=True)
        load = subprocess.run(
            ["taskset", "-c", "1", SOCKEYE, "load", "echo", "--url", f"ws://{addr}/",
             "--connections", "1", "--in-flight", str(in_flight), "--size", size,
             "--duration", str(seconds), "--warmup", "0.5", "--json"],
            capture_output=True, text=True, timeout=seconds + 120)
        if load.returncode != 0:
            sys.exit(f"counts.py: load against {server} failed:\n{load.stdout}{load.stderr}")
        verified = json.loads(load.stdout)["verified"]
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                       capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    ir = sum(total_ir(os.path.join(out_dir, f)) for f in os.listdir(out_dir)
             if f.startswith(os.path.basename(out)))
    return ir / verified


def table(counts, baseline):
    rows = [("count", "baseline", "now", "change")]
    for name, value in counts.items():
        base = baseline.get(name)
        change = "" if not base else f"{(value - base) / base * 100:+.1f} %"
        rows.append((name, "" if base is None else f"{base:,.0f}", f"{value:,.0f}", change))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="count only the names containing this text")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds of load per echo count (default 3)")
    parser.add_argument("--save", action="store_true", help="write the counts as the baseline")
    parser.add_argument("--no-build", action="store_true")
    opts = parser.parse_args()
    if not opts.no_build:
        build()
    binary = counts_binary()
    baseline = {}
    if os.path.exists(BASELINE):
        with open(BASELINE) as f:
            saved = json.load(f)
        baseline = saved["counts"]
        print(f"# baseline: {saved['date']}, commit {saved['commit']}")
    counts = {}
    with tempfile.TemporaryDirectory(prefix="counts-", dir=os.path.join(ROOT, "target")) as tmp:
        for name, size, in_flight in ECHOES:
            for server in ("sockeye", "floor"):
                key = f"echo-{name}-{server}"
                if opts.only and opts.only not in key:
                    continue
                counts[key] = echo_count(server, size, in_flight, opts.seconds, tmp)
        for name, ops in PATH_OPS.items():
            key = f"path-{name}"
            if opts.only and opts.only not in key:
                continue
            counts[key] = path_count(binary, name, ops, tmp)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# {date}, commit {commit}{' with changes' if dirty else ''}; user-space "
          "instructions per echo (echo-*) or per operation (path-*)")
    table(counts, baseline)
    if opts.save:
        merged = dict(baseline, **counts)
        with open(BASELINE, "w") as f:
            json.dump({"date": date, "commit": commit + ("+" if dirty else ""),
                       "counts": {k: round(v, 1) for k, v in merged.items()}}, f, indent=1)
            f.write("\n")
        print(f"# saved to {os.path.relpath(BASELINE, ROOT)}")


if __name__ == "__main__":
    main()
