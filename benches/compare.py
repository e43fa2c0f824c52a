#!/usr/bin/env python3
"""Side-by-side echo and fan-out benchmarks: `sockeye load` against sockeye and its peers.

Servers (benches/README.md says what each one is):
  sockeye        `sockeye serve` (the root workspace's release build, or --sockeye-bin)
  sockeye-shared `sockeye serve --deflate-no-context-takeover` (deflate scenarios only): every
                 message compressed from a fresh context
  sockeye-window `sockeye serve --deflate-history 32KiB` (deflate scenarios only): a send
                 history as long as the window, the compression of a compressor per connection
  sockeye-nowarm `sockeye serve --deflate-warm-streams 0` (deflate scenarios only): the send
                 history without the warm streams lent to frequent senders
  floor          benches/peers peer-floor: raw mio, no validation, the floor of this kernel;
                 peer-floor-fanout for the fan-out scenarios
  tungstenite    benches/peers peer-tungstenite: tokio + tokio-tungstenite
  fastws         benches/peers peer-fastws: hyper 1 + fastwebsockets
  py-websockets  benches/peers/ws_echo.py: Python websockets, permessage-deflate;
                 ws_pubsub.py for the fan-out scenarios
  node-ws        benches/peers/ws_echo.js: Node ws, permessage-deflate; ws_pubsub.js for the
                 fan-out scenarios

The Rust peers have no permessage-deflate, so they run the plain scenarios and the Python and
Node peers run the deflate ones; sockeye runs all. The `-tls` scenarios (wss://) run sockeye,
tungstenite and fastws, each terminating TLS itself with a development certificate that
`peer-cert` makes once per invocation (a throwaway CA, which the load generator trusts, and a
certificate for localhost signed by it) in a temporary folder under target/peers/.

For each scenario every server runs in turn, round after round, each run with a fresh server
process pinned to its own cores (`taskset`) and the load generator pinned to the others. Each
run records the load generator's JSON summary with the server's CPU time (utime + stime from
/proc/PID/stat) and resident memory (sampled from /proc/PID/statm). Each table gives the
median and min-max over the rounds, and CPU per message as a ratio to the floor and to
fastwebsockets (to sockeye for deflate); a TLS table also gives each server's CPU per message
over TLS divided by its own over plain TCP when the plain scenario ran first, and a last table
sums those ratios up.

The `fanout-` scenarios run `sockeye load fanout` against the /pubsub text protocol (sockeye
serve's /pubsub path, peer-floor-fanout, ws_pubsub.py, ws_pubsub.js): subscribers on topics,
publishers publishing to them, every delivery checked for loss, duplicates and order. Their
tables give deliveries/s, the server's CPU per delivery (as a ratio to the floor and to Node
ws), the delivery latency's p50 and p99 (as ratios to the floor) and the server's peak RSS; a
last table gathers the ratios to the floor.

    python3 benches/compare.py                              # everything, 3 rounds of 5 s
    python3 benches/compare.py --quick                      # smoke: 1 round of 1 s
    python3 benches/compare.py --only 16B-1,idle --servers sockeye,floor
    python3 benches/compare.py --only 4KiB --workers 1,2,4  # scaling with server workers
    python3 benches/compare.py --only 16B-1,16B-1-tls,idle,idle-tls   # what TLS costs
    python3 benches/compare.py --only fanout-1x1000-16B,fanout-1x1000-16B-p99

It builds what it runs (`cargo build --release -p sockeye-cli` here unless --sockeye-bin names
the binary, and `cargo build --release` in benches/peers; --no-build skips both) and installs
the Python and Node peers into target/peers/ (a venv with websockets, and ws under
target/peers/node) when a deflate or fan-out scenario needs them. Before measuring, each
server must pass a short echo check (a fan-out check for the fan-out scenarios). Loopback only;
every process it starts is stopped by its PID.
"""

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
SOCKEYE = os.path.join(ROOT, "target", "release", "sockeye")
PEER_BIN = os.path.join(PEERS, "target", "release")
VENV = os.path.join(ROOT, "target", "peers", "venv")
NODE_DIR = os.path.join(ROOT, "target", "peers", "node")
CERT_PARENT = os.path.join(ROOT, "target", "peers")
# The name the load generator sends in SNI and checks against the peer-cert certificate.
TLS_SERVER_NAME = "localhost"
WEBSOCKETS_VERSION = "14.1"
WS_VERSION = "8.18.0"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Scenario:
    """One load shape: the `sockeye load` arguments and sockeye's extra server arguments."""

    def __init__(self, load, sockeye=(), deflate=False, window_bits=15, min_duration=0.0,
                 tls=False, plain=None, path="/"):
        self.load = list(load)
        # The URL path the load connects to: /pubsub for the fan-out scenarios.
        self.path = path
        self.sockeye = list(sockeye)
        self.deflate = deflate
        self.window_bits = window_bits
        # wss://: the servers terminate TLS; `plain` names the same load over plain TCP.
        self.tls = tls
        self.plain = plain
        # Shorter runs measure nothing: the first round of messages outlasts them.
        self.min_duration = min_duration
        self.mode = self.load[0]

    def arg(self, *flags, default=None):
        for i, a in enumerate(self.load):
            if a in flags:
                return self.load[i + 1]
        return default

    def set_arg(self, flag, value):
        self.load[self.load.index(flag) + 1] = str(value)

    @property
    def fanout(self):
        return self.mode == "fanout"

    @property
    def connections(self):
        if self.fanout:
            return int(self.arg("--subscribers")) + int(self.arg("--publishers"))
        return int(self.arg("-c", "--connections"))

    def describe(self):
        if self.fanout:
            return self.describe_fanout()
        n = self.connections
        if self.mode == "connect":
            text = f"{n} connections opened ({self.arg('--concurrency')} at a time) and held idle"
        else:
            kind = "text" if "--text" in self.load else "binary"
            size = self.arg("-s", "--size", default="16")
            text = f"{n} connections x {size}{' B' if size.isdigit() else ''} {kind}"
            if self.mode == "echo":
                text += f", {self.arg('--in-flight', default='1')} in flight"
            else:
                text += ", 1 in flight, round trips timed"
        if self.deflate:
            text += f", permessage-deflate ({self.window_bits}-bit windows)"
        if self.tls:
            text += ", over TLS (wss://)"
        return text

    def describe_fanout(self):
        def count(flag, what):
            n = self.arg(flag)
            return f"{n} {what}{'' if n == '1' else 's'}"

        rate = self.arg("--rate")
        text = (f"{count('--topics', 'topic')}, {self.arg('--subscribers')} subscribers on "
                f"{self.arg('--per-subscriber')} each, {count('--publishers', 'publisher')} x "
                f"{self.arg('--size')} B, ")
        if rate == "0":
            return text + f"as fast as possible ({self.arg('--in-flight')} in flight each)"
        return text + f"{rate} publishes/s per topic"


DEFLATE = ["--deflate", "--deflate-threshold", "0"]
# zlib's memLevel of the Python and Node peers: sockeye serve's default, so that every server
# compresses with the same level, windows and memLevel.
DEFLATE_MEM_LEVEL = 5

# Names as in the old benches/echo.py.
SCENARIOS = {
    "16B-1": Scenario(["echo", "-c", "100", "-s", "16", "--in-flight", "1"]),
    "16B-16": Scenario(["echo", "-c", "100", "-s", "16", "--in-flight", "16"]),
    "4KiB": Scenario(["echo", "-c", "100", "-s", "4KiB", "--in-flight", "1"]),
    "1MiB": Scenario(["echo", "-c", "10", "-s", "1MiB", "--in-flight", "1"]),
    "latency-64B": Scenario(["latency", "-c", "100", "-s", "64"]),
    "4KiB-json": Scenario(["echo", "-c", "100", "-s", "4KiB", "--text"]),
    "4KiB-json-deflate": Scenario(
        ["echo", "-c", "100", "-s", "4KiB", "--text", "--deflate"], DEFLATE, deflate=True),
    # Small messages from a few busy connections: what the shared compressor's warm streams
    # are for (each message through the shared one would start with a reset).
    "256B-json-deflate": Scenario(
        ["echo", "-c", "4", "-s", "256", "--text", "--deflate"], DEFLATE, deflate=True),
    "idle": Scenario(["connect", "-c", "10000", "--concurrency", "128"]),
    "idle-deflate": Scenario(
        ["connect", "-c", "10000", "--concurrency", "128", "--deflate"], ["--deflate"],
        deflate=True),
    # Every connection compresses and decompresses, so each holds both deflate states.
    "10k-deflate-w15": Scenario(
        ["echo", "-c", "10000", "-s", "4KiB", "--text", "--deflate"], DEFLATE, deflate=True,
        min_duration=5),
    "10k-deflate-w9": Scenario(
        ["echo", "-c", "10000", "-s", "4KiB", "--text", "--deflate",
         "--deflate-window-bits", "9"],
        DEFLATE + ["--deflate-window-bits", "9", "--deflate-client-window-bits", "9"],
        deflate=True, window_bits=9, min_duration=5),
}


def over_tls(plain):
    """The plain scenario `plain` over TLS: the same load, every connection a full TLS
    handshake (the load generator resumes no sessions)."""
    s = SCENARIOS[plain]
    return Scenario(s.load, s.sockeye, deflate=s.deflate, window_bits=s.window_bits,
                    min_duration=s.min_duration, tls=True, plain=plain)


# After the plain ones, so that a full run has the plain figures to compare with.
SCENARIOS.update({f"{name}-tls": over_tls(name) for name in ["16B-1", "4KiB", "16B-16", "idle"]})

# Fan-out: publishes in flight per publisher when a scenario publishes as fast as it can (the
# load's closed loop: a publisher sends its next one when an earlier one has been delivered).
FANOUT_IN_FLIGHT = 8
# The latency variant's rate, publishes/s on its one topic (x 1000 subscribers = deliveries/s):
# about half of what the floor saturated at in fanout-1x1000-16B on the 2-core development
# machine (100 000 to 155 000 deliveries/s with the server on one core, nearly all of it in
# the kernel's sendto), and under the Python and Node peers' saturation there (66 000 and
# 82 000), so that every server keeps up and the latencies compare. On other hardware: half
# the floor's deliveries/s in fanout-1x1000-16B over 1000, if the slowest server keeps up.
FANOUT_P99_RATE = 50
# Descriptors a process needs besides its connections (listeners, epoll, pipes, libraries).
FANOUT_FD_SPARE = 256


def fanout(topics, subscribers, publishers, size, rate=0, in_flight=FANOUT_IN_FLIGHT,
           min_duration=0.0):
    """A fan-out scenario: each subscriber on one topic (spread evenly), `publishers` spread
    over the topics, `rate` publishes/s per topic (0: as fast as the closed loop goes, with
    `in_flight` publishes outstanding per publisher)."""
    load = ["fanout", "--topics", str(topics), "--subscribers", str(subscribers),
            "--per-subscriber", "1", "--publishers", str(publishers), "--size", str(size),
            "--rate", str(rate)]
    if rate == 0:
        load += ["--in-flight", str(in_flight)]
    return Scenario(load, min_duration=min_duration, path="/pubsub")


SCENARIOS.update({
    "fanout-1x1000-16B": fanout(1, 1000, 1, 16),
    "fanout-1x1000-1KiB": fanout(1, 1000, 1, 1024),
    "fanout-1x1000-16B-p99": fanout(1, 1000, 1, 16, rate=FANOUT_P99_RATE),
    # Closed loop too: at a fixed rate above what the server writes, the publishes wait in the
    # kernel's socket buffers (megabytes per publisher) and are still undelivered when the run
    # ends. One in flight per publisher is 100 publishes waiting, enough to keep a server
    # busy. 10 000 subscriptions take a while to set up: as for the 10k echo scenarios.
    "fanout-100x10000-16B": fanout(100, 10000, 100, 16, in_flight=1, min_duration=5),
    "fanout-100x10000-1KiB": fanout(100, 10000, 100, 1024, in_flight=1, min_duration=5),
})


class Server:
    """How to start one server; `plain`/`deflate`: the scenarios it runs; `tls`: whether it
    runs them over TLS too; `multi`: --workers; `fanout`: how to start its /pubsub server for
    the fan-out scenarios (None: it runs none)."""

    def __init__(self, name, command, plain, deflate, multi, tls=False, fanout=None):
        self.name, self.command = name, command
        self.plain, self.deflate, self.multi, self.tls = plain, deflate, multi, tls
        self.fanout = fanout

    def runs(self, scenario, workers):
        if scenario.fanout:
            fits = self.fanout is not None
        else:
            fits = self.deflate if scenario.deflate else self.plain
        if scenario.tls and not self.tls:
            return False
        return fits and (workers == 1 or self.multi)

    def command_for(self, scenario):
        return self.fanout if scenario.fanout else self.command


class Certificates:
    """peer-cert's development files, made once per invocation in a temporary folder under
    target/peers/: `ca` (trusted by the load generator), `cert` and `key` (the servers')."""

    def __init__(self):
        binary = os.path.join(PEER_BIN, "peer-cert")
        if not os.path.exists(binary):
            sys.exit("compare.py: no benches/peers/target/release/peer-cert: build benches/peers "
                     "(cargo build --release there), or run without --no-build")
        os.makedirs(CERT_PARENT, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="tls-", dir=CERT_PARENT)
        self.ca, self.cert, self.key = (os.path.join(self.dir, f)
                                        for f in ("ca.pem", "cert.pem", "key.pem"))
        run_step("peer-cert (a development CA and a certificate for localhost)",
                 [binary, "--ca", self.ca, "--cert", self.cert,
                  "--key", self.key])

    def server_args(self):
        return ["--tls-cert", self.cert, "--tls-key", self.key]

    def load_args(self):
        return ["--tls-ca", self.ca, "--tls-server-name", TLS_SERVER_NAME]

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_args(scenario, certs):
    return certs.server_args() if scenario.tls else []


def sockeye_command(addr, workers, scenario, level, certs):
    args = [SOCKEYE, "serve", "--addr", addr, "--threads", str(workers),
            "--max-connections", "20000"] + scenario.sockeye + tls_args(scenario, certs)
    if scenario.deflate:
        args += ["--deflate-level", str(level)]
    return args


def sockeye_shared_command(addr, workers, scenario, level, certs):
    # The server resets its compressor after every message (server_no_context_takeover, which
    # a server may choose alone): no send history. Same level; the wire bytes column shows what
    # the lost history costs.
    return sockeye_command(addr, workers, scenario, level, certs) + [
        "--deflate-no-context-takeover"]


def sockeye_window_command(addr, workers, scenario, level, certs):
    # A send history as long as the window (32 KiB at 15 bits): what a compressor of its own per
    # connection would refer to, so its wire bytes are the ratio of full context takeover.
    return sockeye_command(addr, workers, scenario, level, certs) + [
        "--deflate-history", "32KiB"]


def sockeye_nowarm_command(addr, workers, scenario, level, certs):
    # No warm streams: every message with context takeover goes through the shared compressor,
    # primed with the connection's send history.
    return sockeye_command(addr, workers, scenario, level, certs) + [
        "--deflate-warm-streams", "0"]


def peer_command(binary):
    return lambda addr, workers, scenario, level, certs: [
        os.path.join(PEER_BIN, binary), "--addr", addr, "--workers", str(workers)
    ] + tls_args(scenario, certs)


def python_command(addr, workers, scenario, level, certs):
    return [os.path.join(VENV, "bin", "python"), os.path.join(PEERS, "ws_echo.py"),
            "--addr", addr, "--level", str(level), "--window-bits", str(scenario.window_bits),
            "--mem-level", str(DEFLATE_MEM_LEVEL)]


def node_command(addr, workers, scenario, level, certs):
    return ["node", os.path.join(PEERS, "ws_echo.js"), "--addr", addr, "--level", str(level),
            "--window-bits", str(scenario.window_bits), "--mem-level", str(DEFLATE_MEM_LEVEL)]


def python_pubsub_command(addr, workers, scenario, level, certs):
    return [os.path.join(VENV, "bin", "python"), os.path.join(PEERS, "ws_pubsub.py"),
            "--addr", addr]


def node_pubsub_command(addr, workers, scenario, level, certs):
    return ["node", os.path.join(PEERS, "ws_pubsub.js"), "--addr", addr]


SERVERS = {s.name: s for s in [
    # `sockeye serve` answers /pubsub itself: the same command runs the fan-out scenarios.
    Server("sockeye", sockeye_command, plain=True, deflate=True, multi=True, tls=True,
           fanout=sockeye_command),
    Server("sockeye-shared", sockeye_shared_command, plain=False, deflate=True, multi=True),
    Server("sockeye-window", sockeye_window_command, plain=False, deflate=True, multi=True),
    Server("sockeye-nowarm", sockeye_nowarm_command, plain=False, deflate=True, multi=True),
    Server("floor", peer_command("peer-floor"), plain=True, deflate=False, multi=True,
           fanout=peer_command("peer-floor-fanout")),
    Server("tungstenite", peer_command("peer-tungstenite"), plain=True, deflate=False, multi=True,
           tls=True),
    Server("fastws", peer_command("peer-fastws"), plain=True, deflate=False, multi=True,
           tls=True),
    Server("py-websockets", python_command, plain=False, deflate=True, multi=False,
           fanout=python_pubsub_command),
    Server("node-ws", node_command, plain=False, deflate=True, multi=False,
           fanout=node_pubsub_command),
]}


# ---------------------------------------------------------------------------------------------
# Setup


def run_step(what, args, cwd=ROOT, env=None):
    print(f"# {what}", file=sys.stderr, flush=True)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"compare.py: {what} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def build(sockeye=True):
    """`sockeye` false: the sockeye binary was named with --sockeye-bin and is not built here."""
    if sockeye:
        run_step("cargo build --release -p sockeye-cli",
                 ["cargo", "build", "--release", "-p", "sockeye-cli"])
    run_step("cargo build --release (benches/peers)", ["cargo", "build", "--release"], cwd=PEERS)


def install(servers):
    """Installs the Python and Node peers at their pinned versions, when they are to run."""
    if "py-websockets" in servers:
        python = os.path.join(VENV, "bin", "python")
        have = subprocess.run([python, "-c", "import websockets; print(websockets.__version__)"],
                              capture_output=True, text=True) if os.path.exists(python) else None
        if have is None or have.stdout.strip() != WEBSOCKETS_VERSION:
            if not os.path.exists(python):
                run_step("python3 -m venv target/peers/venv", [sys.executable, "-m", "venv", VENV])
            run_step(f"pip install websockets=={WEBSOCKETS_VERSION}",
                     [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                      f"websockets=={WEBSOCKETS_VERSION}"])
    if "node-ws" in servers:
        package = os.path.join(NODE_DIR, "node_modules", "ws", "package.json")
        try:
            with open(package) as f:
                have = json.load(f).get("version")
        except OSError:
            have = None
        if have != WS_VERSION:
            run_step(f"npm install ws@{WS_VERSION}",
                     ["npm", "install", "--prefix", NODE_DIR, "--no-audit", "--no-fund",
                      "--no-update-notifier", "--save-exact", f"ws@{WS_VERSION}"])


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def fit_fanout(scenarios):
    """Scales the fan-out scenarios' subscribers down to what the open-file limit allows (the
    server and the load each hold one descriptor per connection), with a note; returns the
    scenarios that still run."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    kept = []
    for name in scenarios:
        s = SCENARIOS[name]
        if s.fanout and s.connections + FANOUT_FD_SPARE > limit:
            topics, publishers = int(s.arg("--topics")), int(s.arg("--publishers"))
            wanted = int(s.arg("--subscribers"))
            # Still the same number on every topic.
            fit = (limit - FANOUT_FD_SPARE - publishers) // topics * topics
            if fit < topics:
                print(f"# {name}: skipped: the open-file limit ({limit}) leaves no room for "
                      f"{topics} topics (raise it: ulimit -n 20000)", flush=True)
                continue
            s.set_arg("--subscribers", fit)
            print(f"# {name}: {fit} subscribers instead of {wanted}: the open-file limit is "
                  f"{limit} (raise it: ulimit -n 20000)", flush=True)
        kept.append(name)
    return kept


def placement(cores, workers):
    """Server cores and load cores: the server gets the first `workers` (leaving at least one
    for the load), the load generator the rest."""
    if len(cores) < 2:
        return cores, cores
    server = cores[:max(1, min(workers, len(cores) - 1))]
    return server, cores[len(server):]


# ---------------------------------------------------------------------------------------------
# One run


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


class Running:
    """A server process, started pinned, ready once it prints `listening on`."""

    def __init__(self, server, scenario, workers, level, cores, certs):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        env = dict(os.environ, NODE_PATH=os.path.join(NODE_DIR, "node_modules"))
        command = server.command_for(scenario)(self.addr, workers, scenario, level, certs)
        self.proc = subprocess.Popen(
            ["taskset", "-c", ",".join(map(str, cores))] + command, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = deque(maxlen=40)
        self.ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            if "listening on" in line:
                self.ready.set()

    def wait_ready(self, limit=20.0):
        deadline = time.monotonic() + limit
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                state = "exited" if self.proc.returncode is not None else "did not listen in time"
                raise RuntimeError(f"the server {state}: " + " | ".join(self.output))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def load(args, addr, cores, timeout, scenario, certs):
    """Runs `sockeye load ... --json` (over wss:// for a TLS scenario, trusting peer-cert's
    CA) on the scenario's URL path; returns its summary, or raises with its error."""
    if scenario.tls:
        target = ["--url", f"wss://{addr}{scenario.path}"] + certs.load_args()
    else:
        target = ["--url", f"ws://{addr}{scenario.path}"]
    done = subprocess.run(
        ["taskset", "-c", ",".join(map(str, cores)), SOCKEYE, "load"] + args + target +
        ["--json"], capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        detail = done.stderr.strip()[-400:] or (lines[-1] if lines else "no output")
        raise RuntimeError(f"load failed: {detail}")
    result = json.loads(lines[-1])
    if scenario.tls and not result.get("tls"):
        raise RuntimeError("the load generator did not use TLS")
    return result


def echo_check(server, scenario, workers, level, cores, certs):
    """A short echo check on a fresh server: binary with a 16-bit length and text with a 64-bit
    one, or compressed text for deflate; permessage-deflate must be negotiated. Over TLS for a
    TLS scenario, the server's certificate checked against peer-cert's CA."""
    server_cores, load_cores = placement(cores, workers)
    if scenario.fanout:
        return fanout_check(server, scenario, workers, level, server_cores, load_cores)
    if scenario.deflate:
        shapes = [["-s", "1KiB", "--text", "--deflate", "--deflate-level", str(level),
                   "--deflate-window-bits", str(scenario.window_bits)]]
    else:
        shapes = [["-s", "300"], ["-s", "70000", "--text"]]
    with Running(server, scenario, workers, level, server_cores, certs) as running:
        running.wait_ready()
        for shape in shapes:
            result = load(["echo", "-c", "4", "--in-flight", "2", "-d", "0.3", "--warmup", "0"]
                          + shape, running.addr, load_cores, 60, scenario, certs)
            if scenario.deflate and result["deflate_negotiated"] != result["established"]:
                raise RuntimeError("permessage-deflate was not negotiated")


def fanout_check(server, scenario, workers, level, server_cores, load_cores):
    """A short fan-out check on a fresh server: 8 subscribers on 2 topics, 2 publishers, a
    16-bit and a 64-bit frame length; every publish delivered once, in order."""
    with Running(server, scenario, workers, level, server_cores, None) as running:
        running.wait_ready()
        for size in ["300", "70000"]:
            result = load(["fanout", "--subscribers", "8", "--topics", "2", "--per-subscriber",
                           "1", "--publishers", "2", "--rate", "0", "--in-flight", "2",
                           "--size", size, "--duration", "0.3", "--warmup", "0"],
                          running.addr, load_cores, 60, scenario, None)
            bad = {k: result.get(k) for k in ("lost", "duplicated", "out_of_order")
                   if result.get(k) != 0}
            if not result.get("deliveries") or bad:
                raise RuntimeError(f"{size} B publishes: {result.get('deliveries')} deliveries"
                                   + "".join(f", {k} {v}" for k, v in bad.items()))


def run_once(server, scenario, workers, level, duration, cores, certs):
    server_cores, load_cores = placement(cores, workers)
    args = list(scenario.load)
    if scenario.deflate:
        args += ["--deflate-level", str(level)]
    if scenario.mode == "connect":
        args += ["--hold", str(duration)]
    elif scenario.fanout:
        threads = max(1, min(len(load_cores), 2 * workers))
        args += ["--duration", str(duration), "--warmup", "0", "--threads", str(threads)]
    else:
        threads = max(1, min(len(load_cores), 2 * workers))
        args += ["-d", str(duration), "--warmup", "0", "--threads", str(threads)]
    with Running(server, scenario, workers, level, server_cores, certs) as running:
        running.wait_ready()
        pid = running.proc.pid
        base_rss = rss_bytes(pid)
        peak = [base_rss]
        done = threading.Event()

        def sample():
            while not done.wait(0.1):
                try:
                    peak[0] = max(peak[0], rss_bytes(pid))
                except OSError:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu_before = cpu_seconds(pid)
        try:
            result = load(args, running.addr, load_cores, duration + 180, scenario, certs)
        finally:
            cpu = cpu_seconds(pid) - cpu_before
            done.set()
            sampler.join()
        result.update(server_cpu_s=cpu, server_rss_base=base_rss, server_rss_peak=peak[0],
                      server_cores=server_cores, load_cores=load_cores)
        return result


# ---------------------------------------------------------------------------------------------
# Figures and tables


def figures(r):
    """The per-run numbers the tables show."""
    f = {}
    if r["mode"] == "fanout":
        return fanout_figures(r)
    if r["mode"] == "connect":
        f["rate"] = r["handshakes_per_s"]
        f["cpu_us"] = r["server_cpu_s"] / max(r["established"], 1) * 1e6
        f["rss_conn"] = (r["server_rss_peak"] - r["server_rss_base"]) / max(r["still_open"], 1)
        return f
    f["rate"] = r["echoes_per_s"]
    # Every echo the server made while its CPU time was counted: warmup and drain included.
    f["cpu_us"] = r["server_cpu_s"] / max(r["verified"], 1) * 1e6
    if r.get("rtt_us"):
        f["p50"], f["p99"] = r["rtt_us"]["p50"], r["rtt_us"]["p99"]
    if r["connections"] >= 1000:
        f["rss_conn"] = (r["server_rss_peak"] - r["server_rss_base"]) / max(r["established"], 1)
    if r.get("deflate_negotiated"):
        messages = r["payload_bytes_received"] / max(r["size"], 1)
        f["wire_out"] = r["wire_bytes_read"] / max(messages, 1)
        f["ratio"] = r.get("compression_ratio") or 0.0
    return f


def fanout_figures(r):
    f = {"rate": r["deliveries_per_sec"]}
    # Every delivery the load counted against the server's CPU time over the whole run.
    f["cpu_ns"] = r["server_cpu_s"] / max(r["deliveries"], 1) * 1e9
    latency = r.get("latency_us") or {}
    f["p50"], f["p99"] = latency.get("p50", 0.0), latency.get("p99", 0.0)
    f["rss_mib"] = r["server_rss_peak"] / (1 << 20)
    f["faults"] = r["lost"] + r["duplicated"] + r["out_of_order"]
    # At a fixed rate: publishes the load did not send because the connection's queue was full
    # (the server did not keep up).
    f["skipped"] = r.get("publishes_skipped", 0)
    return f


def spread(values):
    return statistics.median(values), min(values), max(values)


def num(value, digits=0):
    if value >= 1e6 and digits == 0:
        return f"{value / 1e6:.2f}M"
    return f"{value:,.{digits}f}"


def cell(values, digits=0):
    med, lo, hi = spread(values)
    return f"{num(med, digits)} ({num(lo, digits)}-{num(hi, digits)})"


def table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def medians(results):
    """Per (server, workers) with runs: the median of each figure over the rounds."""
    out = {}
    for key, runs in results.items():
        stats = [figures(r) for r in runs]
        if stats:
            out[key] = {k: statistics.median(f[k] for f in stats) for k in stats[0]}
    return out


def summarize(name, scenario, results, worker_counts, measured, plain=None):
    """The scenario's table: one row per (server, workers) with runs. `measured`: their
    medians (`medians(results)`). `plain`: for a TLS scenario, the medians of its plain
    scenario when that ran first (a `vs plain` column)."""
    keys = [k for k in results if results[k]]
    if not keys:
        return f"## {name}: nothing measured"
    stats = {k: [figures(r) for r in results[k]] for k in keys}
    median = {k: measured[k]["cpu_us"] for k in keys}
    rate = {k: measured[k]["rate"] for k in keys}
    plain = {k: v for k, v in (plain or {}).items() if k in median}
    servers = {s for s, _ in keys}
    refs = [s for s in ("floor", "fastws") if s in servers] or ["sockeye"]
    connect = scenario.mode == "connect"
    sample = stats[keys[0]][0]
    header = ["server", "workers", "handshakes/s" if connect else "msgs/s",
              "CPU us/handshake" if connect else "CPU us/msg"]
    header += [f"vs {ref}" for ref in refs]
    if plain:
        header.append("vs plain")
    has_rss = "rss_conn" in sample
    if has_rss:
        header.append("RSS B/conn")
    if scenario.mode == "latency":
        header += ["p50 us", "p99 us"]
    if scenario.deflate and not connect:
        header += ["wire B/msg out", "payload/wire"]
    scaling = len(worker_counts) > 1 and not connect
    if scaling:
        header.append("scaling")
    rows = [header]
    for key in keys:
        server, workers = key
        f = stats[key]
        row = [server, str(workers), cell([x["rate"] for x in f]),
               cell([x["cpu_us"] for x in f], 2)]
        for ref in refs:
            base = median.get((ref, workers))
            row.append(f"{median[key] / base:.2f}x" if base else "-")
        if plain:
            base = plain.get(key, {}).get("cpu_us")
            row.append(f"{median[key] / base:.2f}x" if base else "-")
        if has_rss:
            row.append(cell([x.get("rss_conn", 0) for x in f]))
        if scenario.mode == "latency":
            row += [num(statistics.median(x["p50"] for x in f), 1),
                    num(statistics.median(x["p99"] for x in f), 1)]
        if scenario.deflate and not connect:
            row += [num(statistics.median(x.get("wire_out", 0) for x in f), 1),
                    f"{statistics.median(x.get('ratio', 0) for x in f):.2f}"]
        if scaling:
            one = rate.get((server, 1))
            row.append(f"{rate[key] / (workers * one):.0%}" if one and workers > 1 else "-")
        rows.append(row)
    return f"## {name}: {scenario.describe()}\n{table(rows)}"


def fanout_table(name, scenario, results, measured):
    """A fan-out scenario's table: deliveries/s, CPU per delivery against the floor's and Node
    ws's, latency against the floor's, peak RSS, lost + duplicated + out-of-order, and at a
    fixed rate the publishes skipped."""
    keys = [k for k in results if results[k]]
    if not keys:
        return f"## {name}: nothing measured"
    stats = {k: [figures(r) for r in results[k]] for k in keys}
    servers = {s for s, _ in keys}
    refs = [s for s in ("floor", "node-ws") if s in servers] or ["sockeye"]
    header = ["server", "workers", "deliveries/s", "CPU ns/delivery"]
    header += [f"vs {ref}" for ref in refs]
    header += ["p50 us", "p99 us", "p50 vs floor", "p99 vs floor", "RSS MiB", "lost/dup/ooo"]
    fixed = scenario.arg("--rate") != "0"
    if fixed:
        header.append("skipped")
    rows = [header]
    for key in keys:
        workers = key[1]
        f, m = stats[key], measured[key]
        row = [key[0], str(workers), cell([x["rate"] for x in f]),
               cell([x["cpu_ns"] for x in f])]
        for ref in refs:
            base = measured.get((ref, workers), {}).get("cpu_ns")
            row.append(f"{m['cpu_ns'] / base:.2f}x" if base else "-")
        row += [num(m["p50"]), num(m["p99"])]
        floor = measured.get(("floor", workers))
        for q in ("p50", "p99"):
            row.append(f"{m[q] / floor[q]:.2f}x" if floor and floor[q] else "-")
        row += [num(m["rss_mib"], 1), num(max(x["faults"] for x in f))]
        if fixed:
            row.append(num(statistics.median(x["skipped"] for x in f)))
        rows.append(row)
    return f"## {name}: {scenario.describe()}\n{table(rows)}"


def fanout_summary(measured):
    """Each server against the floor over every fan-out scenario that ran: CPU per delivery,
    and for the scenarios at a fixed rate the p99 latency. `measured`: name -> `medians`."""
    names = [n for n in measured if SCENARIOS[n].fanout]
    keys = list(dict.fromkeys(k for n in names for k in measured[n] if k[0] != "floor"))
    if not keys or not any(("floor", k[1]) in measured[n] for n in names for k in keys):
        return None
    fixed = [n for n in names if SCENARIOS[n].arg("--rate") != "0"]
    short = {n: n.removeprefix("fanout-") for n in names}
    header = ["server", "workers"] + [f"{short[n]} CPU" for n in names]
    header += [f"{short[n]} p99" for n in fixed]
    rows = [header]
    for key in keys:
        row = [key[0], str(key[1])]
        for n, figure in [(n, "cpu_ns") for n in names] + [(n, "p99") for n in fixed]:
            a, b = measured[n].get(("floor", key[1])), measured[n].get(key)
            row.append(f"{b[figure] / a[figure]:.2f}x" if a and b and a[figure] else "-")
        rows.append(row)
    return ("## Fan-out / floor: each server's CPU per delivery (and p99 latency at a fixed "
            "rate) divided by the floor's\n" + table(rows))


def tls_summary(measured):
    """TLS against plain per server: CPU per message (per handshake for idle) over TLS divided
    by the same over plain TCP, for every TLS scenario whose plain scenario also ran; and the
    idle connections' memory both ways. `measured`: scenario name -> `medians`."""
    pairs = [(SCENARIOS[n].plain, n) for n in measured
             if SCENARIOS[n].tls and SCENARIOS[n].plain in measured]
    keys = list(dict.fromkeys(k for plain, tls in pairs for k in measured[tls]
                              if k in measured[plain]))
    if not keys:
        return None
    header = ["server", "workers"] + [plain for plain, _ in pairs]
    idle = [(plain, tls) for plain, tls in pairs if SCENARIOS[tls].mode == "connect"]
    header += [f"{plain} RSS B/conn plain -> TLS" for plain, _ in idle]
    rows = [header]
    for key in keys:
        row = [key[0], str(key[1])]
        for plain, tls in pairs:
            a, b = measured[plain].get(key), measured[tls].get(key)
            row.append(f"{b['cpu_us'] / a['cpu_us']:.2f}x" if a and b and a["cpu_us"] else "-")
        for plain, tls in idle:
            a, b = measured[plain].get(key), measured[tls].get(key)
            row.append(f"{num(a['rss_conn'])} -> {num(b['rss_conn'])}" if a and b else "-")
        rows.append(row)
    return ("## TLS / plain: each server's CPU per message (per handshake for idle) over TLS, "
            "divided by its own over plain TCP\n" + table(rows))


# ---------------------------------------------------------------------------------------------


class Session:
    """The runs of one invocation: which servers passed their check, and every result."""

    def __init__(self, opts, servers, worker_counts, cores, certs):
        self.opts, self.servers = opts, servers
        self.worker_counts, self.cores, self.certs = worker_counts, cores, certs
        self.checked, self.raw, self.failed = {}, [], []
        # Scenario name -> `medians` of its runs, for the TLS / plain comparisons.
        self.measured = {}

    def check(self, server, scenario, workers):
        """Checks a server once per kind of traffic and worker count; `None` when it passed,
        else what went wrong."""
        key = (server, scenario.deflate, scenario.window_bits, scenario.tls, scenario.fanout,
               workers)
        if key not in self.checked:
            try:
                echo_check(SERVERS[server], scenario, workers, self.opts.deflate_level,
                           self.cores, self.certs)
                self.checked[key] = None
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                self.checked[key] = str(e)
                what = "fan-out" if scenario.fanout else "echo"
                print(f"# {server} ({workers} workers) failed the {what} check: {e}",
                      flush=True)
        return self.checked[key]

    def run_scenario(self, name):
        """Every applicable server in turn, round after round; prints the table."""
        scenario = SCENARIOS[name]
        counts = self.worker_counts[:1] if scenario.mode == "connect" else self.worker_counts
        plan = [(s, w) for w in counts for s in self.servers if SERVERS[s].runs(scenario, w)]
        results = {}
        for server, workers in plan:
            error = self.check(server, scenario, workers)
            if error is None:
                results[(server, workers)] = []
            else:
                self.failed.append(f"{name}/{server}/{workers}: failed the check: {error}")
        duration = max(self.opts.duration, scenario.min_duration)
        for round_ in range(self.opts.rounds):
            for server, workers in results:
                try:
                    result = run_once(SERVERS[server], scenario, workers,
                                      self.opts.deflate_level, duration, self.cores, self.certs)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    self.failed.append(f"{name}/{server}/{workers}: {e}")
                    print(f"# {name}: {server} ({workers} workers) failed: {e}", flush=True)
                    continue
                results[(server, workers)].append(result)
                self.raw.append(dict(scenario=name, server=server, workers=workers,
                                     round=round_, result=result))
        self.measured[name] = medians(results)
        if scenario.fanout:
            print(fanout_table(name, scenario, results, self.measured[name]) + "\n", flush=True)
            return
        plain = self.measured.get(scenario.plain) if scenario.tls else None
        print(summarize(name, scenario, results, counts, self.measured[name], plain) + "\n",
              flush=True)


def names(text, known, what):
    chosen = [n for part in text for n in part.split(",") if n]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        sys.exit(f"compare.py: unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return list(dict.fromkeys(chosen))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], metavar="SCENARIO[,..]",
                        help=f"scenarios to run (default: all): {', '.join(SCENARIOS)}")
    parser.add_argument("--servers", action="append", default=[], metavar="NAME[,..]",
                        help=f"servers to run (default: all): {', '.join(SERVERS)}")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each server (default 3)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds measured per run, or held for idle (default 5; the 10k "
                             "scenarios take at least 5)")
    parser.add_argument("--workers", default="1", metavar="N[,..]",
                        help="server workers for the echo scenarios, e.g. 1,2,4,8; the idle "
                             "scenarios run with the smallest (default 1)")
    parser.add_argument("--deflate-level", type=int, default=6, choices=range(0, 10),
                        help="compression level of every deflate server and the load (default 6)")
    parser.add_argument("--cores", help="cores to use, e.g. 0,1 (default: all this process may "
                                        "use); the server gets the first N, the load the rest")
    parser.add_argument("--json", metavar="FILE", help="save every run's raw results here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s")
    parser.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    parser.add_argument("--sockeye-bin", metavar="PATH",
                        help="the sockeye binary to serve and load with (default: "
                             "target/release/sockeye, built first); given, it is not built")
    opts = parser.parse_args()
    if opts.quick:
        opts.rounds, opts.duration = 1, 1.0
    return opts


def main():
    global SOCKEYE
    opts = parse_args()
    if opts.sockeye_bin:
        SOCKEYE = os.path.abspath(opts.sockeye_bin)
        if not os.access(SOCKEYE, os.X_OK):
            sys.exit(f"compare.py: --sockeye-bin {opts.sockeye_bin}: not an executable")
    scenarios = names(opts.only, SCENARIOS, "scenario") or list(SCENARIOS)
    servers = names(opts.servers, SERVERS, "server") or list(SERVERS)
    try:
        worker_counts = sorted({int(n) for n in opts.workers.split(",")})
    except ValueError:
        sys.exit(f"compare.py: --workers {opts.workers}: expected counts such as 1,2,4")
    if worker_counts[0] < 1:
        sys.exit("compare.py: --workers: counts start at 1")
    cores = ([int(c) for c in opts.cores.split(",")] if opts.cores
             else sorted(os.sched_getaffinity(0)))
    needed = {s for s in servers for n in scenarios
              if any(SERVERS[s].runs(SCENARIOS[n], w) for w in worker_counts)}
    if not opts.no_build:
        build(sockeye=not opts.sockeye_bin)
    install(needed)
    raise_fd_limit()
    scenarios = fit_fanout(scenarios)
    tls = any(SCENARIOS[n].tls and SERVERS[s].runs(SCENARIOS[n], w)
              for n in scenarios for s in servers for w in worker_counts)
    certs = Certificates() if tls else None
    try:
        return measure(opts, scenarios, servers, worker_counts, cores, certs)
    finally:
        if certs:
            certs.remove()


def measure(opts, scenarios, servers, worker_counts, cores, certs):
    """Runs the scenarios, prints their tables, writes --json; the exit status."""
    started = time.gmtime()
    server_cores, load_cores = placement(cores, 1)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', started)}, {opts.rounds} rounds of "
          f"{opts.duration:g} s, {len(cores)} cores; at 1 worker the server runs on cores "
          f"{server_cores}, the load on {load_cores}; deflate level {opts.deflate_level}",
          flush=True)
    session = Session(opts, servers, worker_counts, cores, certs)
    for name in scenarios:
        session.run_scenario(name)
    for summary in (tls_summary(session.measured), fanout_summary(session.measured)):
        if summary:
            print(summary + "\n", flush=True)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
                       "rounds": opts.rounds, "duration_s": opts.duration,
                       "deflate_level": opts.deflate_level, "cores": cores,
                       "runs": session.raw, "failed": session.failed}, f, indent=1)
    if session.failed:
        print("# failures:\n" + "\n".join(f"#   {f}" for f in session.failed), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
