"""A Python `websockets` server for sockeye-client (driven by tests/interop_client.rs).

Usage: python_server.py [--tls CERT KEY]

Listens on 127.0.0.1 (over TLS with the PEM certificate chain CERT and key KEY when given), on a port the system picks, with permessage-deflate (the library's
default, every message compressed) and messages of up to 20 MiB. Prints one JSON line once it
listens: {"server": "python-websockets", "version": "...", "port": N}. Then, per message:

- binary: echoed as binary;
- text `ext`: answered with the Sec-WebSocket-Extensions header of the upgrade response
  (empty when no extension was negotiated);
- text `fragments:N:TEXT`: TEXT sent back as one text message in N fragments;
- text `close:CODE:REASON`: the server closes the connection with CODE and REASON;
- text `big:N`: a binary message of N bytes, byte i being i % 251;
- any other text: echoed as text.

When a connection ends, prints one JSON line with the close code and reason the server
received from the client: {"closed": CODE, "reason": "..."} (CODE is 1006 when no close frame
came). Exits when its standard input ends (the test's process is gone) or after LIFETIME
seconds, whichever comes first.
"""

import asyncio
import json
import ssl
import sys

import websockets
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 20 << 20  # 16 MiB messages and a margin
STEP = 30.0  # seconds the closing handshake may take
LIFETIME = 600.0  # seconds before the server gives up by itself
PATTERN = bytes(range(251))


def announce(**fields):
    """Prints one JSON line (ASCII only: non-ASCII characters are escaped) at once."""
    print(json.dumps(fields), flush=True)


def pattern(size):
    """`size` bytes, byte i being i % 251."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def split(text, count):
    """`text` cut into `count` pieces of nearly equal length (by characters)."""
    return [text[i * len(text) // count:(i + 1) * len(text) // count] for i in range(count)]


async def answer(ws, message):
    """Acts on one message; False when the server closed the connection."""
    if isinstance(message, bytes):
        await ws.send(message)
        return True
    verb, _, rest = message.partition(":")
    if message == "ext":
        await ws.send(ws.response.headers.get("Sec-WebSocket-Extensions", ""))
    elif verb == "fragments":
        count, _, text = rest.partition(":")
        # An iterable of str goes out as one text message, one frame per item.
        await ws.send(split(text, int(count)))
    elif verb == "close":
        code, _, reason = rest.partition(":")
        await ws.close(int(code), reason)
        return False
    elif verb == "big":
        await ws.send(pattern(int(rest)))
    else:
        await ws.send(message)
    return True


async def handler(ws):
    try:
        while await answer(ws, await ws.recv()):
            pass
    except ConnectionClosed:
        pass
    finally:
        # The close code is known once the connection is fully closed.
        try:
            await asyncio.wait_for(ws.wait_closed(), STEP)
        except asyncio.TimeoutError:
            pass
        announce(closed=ws.close_code, reason=ws.close_reason)


async def stdin_closed():
    """Returns when standard input reaches its end."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


def tls_context(argv):
    """The server's TLS context for `--tls CERT KEY`, None without it."""
    if not argv:
        return None
    if len(argv) != 3 or argv[0] != "--tls":
        sys.exit("usage: python_server.py [--tls CERT KEY]")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(argv[1], argv[2])
    return context


async def main():
    context = tls_context(sys.argv[1:])
    # Keepalive pings are off: an unasked ping would show up among the messages the test reads.
    async with serve(
        handler,
        "127.0.0.1",
        0,
        max_size=MAX_SIZE,
        ping_interval=None,
        close_timeout=STEP,
        ssl=context,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        announce(server="python-websockets", version=websockets.__version__, port=port)
        try:
            await asyncio.wait_for(stdin_closed(), LIFETIME)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    asyncio.run(main())
