"""Python `websockets` against the /pubsub endpoint of `sockeye serve` (driven by
crates/sockeye-cli/tests/interop_pubsub.rs).

Usage: python_pubsub.py ws://127.0.0.1:PORT/pubsub

Four subscribers, two of them offering permessage-deflate: "exact_a" (interop.a), "exact_b"
(interop.b), "star" (interop.*) and "overlap" (interop.a and interop.>, so that interop.a
matches twice). One publisher first sends bad commands (a bad topic, a wildcard to publish to,
an unknown verb, a binary message), each answered by `error ...` on a connection that stays
open, subscribes to interop.a (and to interop.a.deep, which it leaves), then publishes with
`pubx` 200 numbered messages on interop.a and on interop.b, and 20 on interop.a.deep, and ends
each topic with `pub TOPIC end`. Every subscriber must get every message of its topics once,
in publish order, under the literal topic; the publisher only its own `pub interop.a end`.

Prints one JSON line: {"client": "python-websockets", "version": "...", "checks": {...},
"details": {...}, "error": null}; each check is true when it passed, details say what was seen.
Every wait is bounded.
"""

import asyncio
import json
import sys
import traceback

import websockets
from websockets.asyncio.client import connect

STEP = 10.0  # seconds any one awaited step may take
DEADLINE = 60.0  # seconds for everything
COUNT = 200  # numbered publishes on interop.a and on interop.b

# name: (subscriptions, the topics it must receive, whether it offers permessage-deflate)
SUBSCRIBERS = {
    "exact_a": (["interop.a"], ["interop.a"], True),
    "exact_b": (["interop.b"], ["interop.b"], False),
    "star": (["interop.*"], ["interop.a", "interop.b"], True),
    "overlap": (["interop.a", "interop.>"], ["interop.a", "interop.b", "interop.a.deep"], False),
}

# A bad command and how its reply must start.
BAD_COMMANDS = {
    "bad_topic_error": ("sub interop..a", "error bad topic"),
    "publish_wildcard_error": ("pub interop.* x", "error "),
    "unknown_command_error": ("publish interop.a x", "error unknown command"),
    "binary_error": (b"\x00\x01sub interop.a", "error binary messages are not supported"),
}


def payload(n):
    return f"{n} ünïcödé ✓ with spaces"


def expected(topic):
    """The payloads published on `topic`, in order, then its end marker."""
    numbers = range(0, COUNT, 10) if topic == "interop.a.deep" else range(COUNT)
    return [payload(n) for n in numbers] + ["end"]


async def recv(ws):
    message = await asyncio.wait_for(ws.recv(), STEP)
    return message if isinstance(message, str) else f"<binary {len(message)} bytes>"


async def subscribe(ws, topics):
    """Subscribes to `topics`; whether each got `ok sub TOPIC`, and the replies."""
    replies = []
    for topic in topics:
        await asyncio.wait_for(ws.send(f"sub {topic}"), STEP)
        replies.append(await recv(ws))
    return replies == [f"ok sub {topic}" for topic in topics], replies


async def collect(ws, topics):
    """Reads deliveries until every topic of `topics` has ended; the payloads by topic, in
    order, and anything that was not a delivery on those topics."""
    seen = {}
    unexpected = []
    while not all(seen.get(t, [None])[-1] == "end" for t in topics):
        message = await recv(ws)
        verb, _, rest = message.partition(" ")
        topic, _, body = rest.partition(" ")
        if verb == "msg" and topic in topics:
            seen.setdefault(topic, []).append(body)
        else:
            unexpected.append(message[:200])
    return seen, unexpected


async def scenario(url, checks, details):
    async with connect(url, open_timeout=STEP, ping_interval=None, compression=None) as publisher:
        subscribers = {}
        for name, (_, _, deflate) in SUBSCRIBERS.items():
            subscribers[name] = await connect(
                url,
                open_timeout=STEP,
                close_timeout=STEP,
                ping_interval=None,
                compression="deflate" if deflate else None,
            )
        try:
            await run(publisher, subscribers, checks, details)
        finally:
            for ws in subscribers.values():
                await ws.close()


async def run(publisher, subscribers, checks, details):
    details["extensions"] = {
        name: ws.response.headers.get("Sec-WebSocket-Extensions", "")
        for name, ws in subscribers.items()
    }
    for check, (command, reply_start) in BAD_COMMANDS.items():
        await asyncio.wait_for(publisher.send(command), STEP)
        reply = await recv(publisher)
        details[check] = reply
        checks[check] = reply.startswith(reply_start)
    checks["open_after_errors"], _ = await subscribe(publisher, ["interop.a", "interop.a.deep"])
    await asyncio.wait_for(publisher.send("unsub interop.a.deep"), STEP)
    details["unsub"] = await recv(publisher)
    checks["unsub"] = details["unsub"] == "ok unsub interop.a.deep"

    subscribed = {}
    for name, (topics, _, _) in SUBSCRIBERS.items():
        subscribed[name], details[f"{name}_replies"] = await subscribe(subscribers[name], topics)
    checks["ok_sub"] = all(subscribed.values())

    readers = [
        asyncio.create_task(collect(subscribers[name], wanted))
        for name, (_, wanted, _) in SUBSCRIBERS.items()
    ]
    for n in range(COUNT):
        await publisher.send(f"pubx interop.a {payload(n)}")
        await publisher.send(f"pubx interop.b {payload(n)}")
        if n % 10 == 0:
            await publisher.send(f"pubx interop.a.deep {payload(n)}")
    for topic in ["interop.a.deep", "interop.b", "interop.a"]:
        await asyncio.wait_for(publisher.send(f"pub {topic} end"), STEP)
    results = await asyncio.gather(*readers)

    for name, (seen, unexpected) in zip(SUBSCRIBERS, results):
        wanted = SUBSCRIBERS[name][1]
        checks[f"{name}_once_in_order"] = not unexpected and all(
            seen.get(topic) == expected(topic) for topic in wanted
        )
        details[name] = {
            "received": {topic: len(payloads) for topic, payloads in seen.items()},
            "unexpected": unexpected[:5],
            "mismatch": {
                topic: next(
                    ([i, got, want] for i, (got, want) in
                     enumerate(zip(seen.get(topic, []), expected(topic))) if got != want),
                    None,
                )
                for topic in wanted
            },
        }
    checks["wildcard_literal_topic"] = all(
        sorted(seen) == sorted(SUBSCRIBERS[name][1])
        for name, (seen, _) in zip(SUBSCRIBERS, results)
        if name in ("star", "overlap")
    )
    # A connection's own deliveries come in order with its replies: pubx left it out, and
    # interop.a.deep was unsubscribed, so the first it gets is its own `pub interop.a end`.
    own = await recv(publisher)
    details["publisher_first_delivery"] = own
    checks["pubx_not_echoed"] = own == "msg interop.a end"


async def main(url):
    checks = {}
    details = {}
    error = None
    try:
        await asyncio.wait_for(scenario(url, checks, details), DEADLINE)
    except Exception as e:  # reported in the JSON line, asserted in Rust
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
    return checks, details, error


if __name__ == "__main__":
    checks, details, error = asyncio.run(main(sys.argv[1]))
    print(json.dumps({
        "client": "python-websockets",
        "version": websockets.__version__,
        "checks": checks,
        "details": details,
        "error": error,
    }))
    sys.exit(0 if error is None and all(checks.values()) else 1)
