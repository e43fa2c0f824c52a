#!/usr/bin/env python3
"""A /pubsub server on Python `websockets` (pinned 14.1), for `sockeye load fanout`.

Speaks the text protocol of `sockeye serve`'s /pubsub endpoint, one command per text message:
`sub TOPIC`, `unsub TOPIC` (answered `ok sub TOPIC` / `ok unsub TOPIC`), `pub TOPIC PAYLOAD`
(delivered as `msg TOPIC PAYLOAD` to every subscriber, the sender included if it subscribed) and
`pubx TOPIC PAYLOAD` (every subscriber but the sender); a bad command is answered
`error TEXT` and the connection stays open. Topics are NATS-style subjects; `sub` and `unsub`
take the wildcards `*` (one token) and `>` (one or more tokens, last only).

Written as users write it: a dict from topic to the set of its connections, one from wildcard
pattern to its connections matched with a small matcher on each publish, and
`websockets.broadcast` for the copies (one per connection per publish, in publish order). No
compression. Prints `listening on HOST:PORT` once ready; any path is accepted.

    target/peers/venv/bin/python benches/peers/ws_pubsub.py --addr 127.0.0.1:9001
"""

import argparse
import asyncio

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

# Literal topic -> the connections subscribed to it.
exact = {}
# Wildcard pattern (a tuple of tokens) -> the connections subscribed to it.
patterns = {}
# Connection -> its subscriptions (topics and patterns as written).
subscriptions = {}


def check_topic(topic, wildcards):
    """The reason `topic` is not a valid subject (None when it is)."""
    if not topic:
        return "empty topic"
    if any(c.isspace() for c in topic):
        return "whitespace in topic"
    tokens = topic.split(".")
    for i, token in enumerate(tokens):
        if not token:
            return "empty token"
        if token in ("*", ">"):
            if not wildcards:
                return "wildcard in a publish topic"
            if token == ">" and i != len(tokens) - 1:
                return "'>' must be the last token"
        elif "*" in token or ">" in token:
            return "wildcard inside a token"
    return None


def is_pattern(topic):
    return any(token in ("*", ">") for token in topic.split("."))


def matches(pattern, tokens):
    """Whether the literal topic `tokens` matches the wildcard `pattern` (tuples of tokens)."""
    for i, want in enumerate(pattern):
        if want == ">":
            return len(tokens) > i
        if i >= len(tokens) or (want != "*" and want != tokens[i]):
            return False
    return len(tokens) == len(pattern)


def subscribe(ws, topic):
    if is_pattern(topic):
        patterns.setdefault(tuple(topic.split(".")), set()).add(ws)
    else:
        exact.setdefault(topic, set()).add(ws)
    subscriptions[ws].add(topic)


def unsubscribe(ws, topic):
    table, key = (patterns, tuple(topic.split("."))) if is_pattern(topic) else (exact, topic)
    members = table.get(key)
    if members is not None:
        members.discard(ws)
        if not members:
            del table[key]
    subscriptions[ws].discard(topic)


def publish(sender, topic, line, include_sender):
    """Sends `line` once to each connection subscribed to `topic` (directly or by a pattern)."""
    targets = set(exact.get(topic, ()))
    if patterns:
        tokens = topic.split(".")
        for pattern, members in patterns.items():
            if matches(pattern, tokens):
                targets |= members
    if not include_sender:
        targets.discard(sender)
    broadcast(targets, line)


def handle(ws, message):
    """Runs one command; returns the reply, if any."""
    if not isinstance(message, str):
        return "error binary messages are not supported"
    command, space, rest = message.partition(" ")
    if command in ("sub", "unsub"):
        reason = check_topic(rest, wildcards=True) if space else "missing topic"
        if reason:
            return f"error bad topic: {reason}"
        (subscribe if command == "sub" else unsubscribe)(ws, rest)
        return f"ok {command} {rest}"
    if command in ("pub", "pubx"):
        topic, _, payload = rest.partition(" ")
        reason = check_topic(topic, wildcards=False) if space else "missing topic"
        if reason:
            return f"error bad topic: {reason}"
        publish(ws, topic, f"msg {topic} {payload}", include_sender=command == "pub")
        return None
    return f"error unknown command: {command[:32]}"


async def session(ws):
    subscriptions[ws] = set()
    try:
        async for message in ws:
            reply = handle(ws, message)
            if reply is not None:
                await ws.send(reply)
    except ConnectionClosed:
        pass
    finally:
        for topic in list(subscriptions[ws]):
            unsubscribe(ws, topic)
        del subscriptions[ws]


async def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", default="127.0.0.1:9001", help="HOST:PORT to listen on")
    opts = parser.parse_args()
    host, _, port = opts.addr.rpartition(":")
    # max_queue: incoming messages buffered per connection before reading pauses;
    # write_limit: the high-water mark at which ws.send() (the replies) waits for the socket.
    # broadcast() does not wait: a subscriber that reads slower than the publishes arrive
    # makes its buffer grow.
    async with serve(session, host.strip("[]"), int(port), compression=None,
                     max_size=64 << 20, max_queue=64, write_limit=1 << 20,
                     backlog=1024) as server:
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        print(f"listening on {bound_host}:{bound_port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
