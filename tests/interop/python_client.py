"""Python `websockets` against a sockeye echo server (driven by tests/interop_python.rs).

Usage: python_client.py ws://127.0.0.1:PORT/echo
       python_client.py wss://127.0.0.1:PORT/echo --ca CA.pem   (TLS, trusting only CA.pem)

Runs the same exchange once per compression setting ("plain"; "deflate", the default offer;
"deflate_small", small windows without context takeover; "deflate_server_8_bits"):
text, binary, empty, fragmented text and binary, pipelined messages, 1 MiB binary and text,
a ping awaiting its pong, and a close with 1000 that the server echoes. Prints one JSON line:
{"client": "python-websockets", "version": "...", "runs": {"plain": {...}, ...}}; each run
holds booleans (true: the check passed), the negotiated extensions, byte counts, the TLS
version ("tls": null over plain TCP), and "error" (null, or what was raised). Every wait is
bounded.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import traceback

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

STEP = 10.0  # seconds any one awaited step may take
MIB = 1 << 20


class CountingConnection(ClientConnection):
    """Counts the bytes read from the socket."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bytes_read = 0

    def data_received(self, data):
        self.bytes_read += len(data)
        super().data_received(data)


def json_text(size):
    """Compressible, JSON-like market data of exactly `size` characters."""
    quotes = []
    length = 1
    seq = 0
    while True:
        quote = '{"seq":%d,"symbol":"ACME","bid":%d.%02d,"ask":%d.%02d,"size":%d}' % (
            seq, 100 + seq % 7, seq % 100, 100 + seq % 7, (seq + 2) % 100, 100 * (1 + seq % 9))
        if length + len(quote) + 2 > size:
            break
        quotes.append(quote)
        length += len(quote) + 1
        seq += 1
    text = "[" + ",".join(quotes)
    return text + " " * (size - len(text) - 1) + "]"


async def echo(ws, message):
    await asyncio.wait_for(ws.send(message), STEP)
    return await asyncio.wait_for(ws.recv(), STEP)


async def exchange(url, extensions, compression, tls):
    result = {"error": None}
    # websockets refuses an `ssl` argument for a ws:// URL: pass it only for TLS.
    options = {"ssl": tls} if tls is not None else {}
    ws = await connect(
        url,
        **options,
        subprotocols=["echo"],
        compression=compression,
        extensions=extensions,
        max_size=4 * MIB,
        open_timeout=STEP,
        close_timeout=STEP,
        ping_interval=None,
        create_connection=CountingConnection,
    )
    try:
        result["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ssl_object = ws.transport.get_extra_info("ssl_object")
        result["tls"] = ssl_object.version() if ssl_object is not None else None
        result["subprotocol"] = ws.subprotocol == "echo"

        text = "hello, sockeye ✓ — ünïcödé"
        result["text"] = await echo(ws, text) == text
        binary = bytes(range(256))
        result["binary"] = await echo(ws, binary) == binary
        result["empty"] = await echo(ws, "") == "" and await echo(ws, b"") == b""

        # An iterable is sent as one message in several frames.
        pieces = ["first fragment, ", "second ✓, ", "", "last"]
        result["fragmented_text"] = await echo(ws, pieces) == "".join(pieces)
        chunks = [os.urandom(1000), os.urandom(70000), os.urandom(3)]
        result["fragmented_binary"] = await echo(ws, chunks) == b"".join(chunks)

        # Many messages in flight come back whole and in order.
        messages = ["message %d %s" % (n, "x" * n) for n in range(200)]
        for message in messages:
            await asyncio.wait_for(ws.send(message), STEP)
        echoes = [await asyncio.wait_for(ws.recv(), STEP) for _ in messages]
        result["pipelined"] = echoes == messages

        big = os.urandom(MIB)
        result["large_binary"] = await echo(ws, big) == big
        big_text = json_text(MIB)
        before = ws.bytes_read
        result["large_text"] = await echo(ws, big_text) == big_text
        result["large_text_wire_bytes"] = ws.bytes_read - before

        pong_waiter = await asyncio.wait_for(ws.ping(b"sockeye-ping"), STEP)
        await asyncio.wait_for(pong_waiter, STEP)
        result["ping"] = True
        result["after_ping"] = await echo(ws, "still open") == "still open"

        await asyncio.wait_for(ws.close(1000, "bye"), 2 * STEP)
        received = ws.protocol.close_rcvd
        result["close_code"] = received.code if received else None
        result["close_reason"] = received.reason if received else None
        result["close_echoed"] = (
            received is not None and received.code == 1000
            and ws.protocol.close_rcvd_then_sent is False
        )
    except Exception as error:  # reported in the JSON line, asserted in Rust
        result["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
        ws.transport.abort()
    return result


async def main(url, tls):
    small_windows = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=9,
    )
    # 8 bits is the smallest window RFC 7692 allows; zlib cannot compress with it, so sockeye
    # accepts the offer and sends uncompressed (this client's own 8-bit compressor would fail).
    server_8_bits = ClientPerMessageDeflateFactory(server_max_window_bits=8)
    settings = {
        "plain": (None, None),
        "deflate": (None, "deflate"),
        "deflate_small": ([small_windows], None),
        "deflate_server_8_bits": ([server_8_bits], None),
    }
    runs = {}
    for name, (extensions, compression) in settings.items():
        try:
            runs[name] = await asyncio.wait_for(
                exchange(url, extensions, compression, tls), 6 * STEP
            )
        except Exception as error:
            runs[name] = {"error": "".join(traceback.format_exception_only(type(error), error)).strip()}
    return runs


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--ca", help="PEM file of the only CA to trust (wss:// URLs)")
    args = parser.parse_args()
    tls = ssl.create_default_context(cafile=args.ca) if args.ca else None
    runs = asyncio.run(main(args.url, tls))
    print(json.dumps({"client": "python-websockets", "version": websockets.__version__, "runs": runs}))
    sys.exit(0 if all(run.get("error") is None for run in runs.values()) else 1)
