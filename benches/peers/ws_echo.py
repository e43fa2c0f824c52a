#!/usr/bin/env python3
"""An echo server on Python `websockets` (pinned 14.1) with permessage-deflate, for compare.py.

Echoes each message back as the same type (str as text, bytes as binary); the library answers
pings and closes. The compression level is explicit (`--level`, default 6) and the window is
15 bits unless `--window-bits` says otherwise, as in `sockeye serve --deflate`, and zlib's
memLevel is `--mem-level` (default 5): `websockets`' own default for compression="deflate"
(12-bit windows, memLevel 5) is replaced by passing the per-message-deflate factory ourselves. Every message is compressed (the library has no
threshold). Prints `listening on HOST:PORT` once ready.

    target/peers/venv/bin/python benches/peers/ws_echo.py --addr 127.0.0.1:9001 --level 6
"""

import argparse
import asyncio

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", default="127.0.0.1:9001", help="HOST:PORT to listen on")
    parser.add_argument("--level", type=int, default=6, choices=range(0, 10),
                        help="compression level, 0 to 9 (default 6)")
    parser.add_argument("--mem-level", type=int, default=5, choices=range(1, 10),
                        help="zlib's memLevel, 1 to 9 (default 5, as websockets')")
    parser.add_argument("--window-bits", type=int, default=15, choices=range(9, 16),
                        help="server and client window bits, 9 to 15 (default 15)")
    opts = parser.parse_args()
    host, _, port = opts.addr.rpartition(":")
    deflate = ServerPerMessageDeflateFactory(
        server_max_window_bits=opts.window_bits,
        client_max_window_bits=opts.window_bits,
        compress_settings={"level": opts.level, "memLevel": opts.mem_level},
    )
    async with serve(echo, host.strip("[]"), int(port), compression="deflate",
                     extensions=[deflate], max_size=64 << 20, backlog=1024) as server:
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
