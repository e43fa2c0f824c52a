#!/usr/bin/env node
// An echo server on Node `ws` (pinned 8.18.0) with permessage-deflate, for compare.py.
//
// Echoes each message back as the same type; the library answers pings and closes. The
// compression level is explicit (--level, default 6), and so is zlib's memLevel (--mem-level,
// default 8, zlib's), every message is compressed
// (threshold 0), and the window is 15 bits unless --window-bits says otherwise, as in
// `sockeye serve --deflate`. Prints `listening on HOST:PORT` once ready.
//
//   NODE_PATH=target/peers/node/node_modules node benches/peers/ws_echo.js --addr 127.0.0.1:9001
'use strict';

const { WebSocketServer } = require('ws');

function parse(argv) {
  const opts = { addr: '127.0.0.1:9001', level: 6, memLevel: 8, windowBits: 15 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--addr') opts.addr = value;
    else if (flag === '--level') opts.level = Number(value);
    else if (flag === '--mem-level') opts.memLevel = Number(value);
    else if (flag === '--window-bits') opts.windowBits = Number(value);
    else throw new Error(`unknown argument ${flag}`);
  }
  if (!(opts.level >= 0 && opts.level <= 9)) throw new Error('--level: 0 to 9');
  if (!(opts.memLevel >= 1 && opts.memLevel <= 9)) throw new Error('--mem-level: 1 to 9');
  if (!(opts.windowBits >= 9 && opts.windowBits <= 15)) throw new Error('--window-bits: 9 to 15');
  return opts;
}

let opts;
try {
  opts = parse(process.argv.slice(2));
} catch (e) {
  console.error(`ws_echo.js: ${e.message}\n` +
    'usage: ws_echo.js [--addr HOST:PORT] [--level 0-9] [--mem-level 1-9] [--window-bits 9-15]');
  process.exit(2);
}
const colon = opts.addr.lastIndexOf(':');
const host = opts.addr.slice(0, colon).replace(/^\[|\]$/g, '');
const port = Number(opts.addr.slice(colon + 1));

const wss = new WebSocketServer({
  host,
  port,
  backlog: 1024,
  maxPayload: 64 << 20,
  perMessageDeflate: {
    zlibDeflateOptions: { level: opts.level, memLevel: opts.memLevel },
    threshold: 0,
    serverMaxWindowBits: opts.windowBits,
    clientMaxWindowBits: opts.windowBits,
  },
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
wss.on('listening', () => {
  const { address, port: bound } = wss.address();
  console.log(`listening on ${address.includes(':') ? `[${address}]` : address}:${bound}`);
});
wss.on('error', (e) => {
  console.error(`ws_echo.js: ${e.message}`);
  process.exit(1);
});
