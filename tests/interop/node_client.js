// Node `ws` against a sockeye echo server (driven by tests/interop_node.rs).
//
// Usage: NODE_PATH=target/interop/node/node_modules node node_client.js ws://127.0.0.1:PORT/echo
//        ... node_client.js wss://127.0.0.1:PORT/echo --ca CA.pem   (TLS, trusting only CA.pem)
//
// Runs the same exchange once per compression setting ("plain"; "deflate", every message
// compressed; "deflate_small", small windows without context takeover): text, binary, empty,
// fragmented text and binary (`send(data, { fin: false })` continuations), pipelined messages,
// 1 MiB binary and text, a ping awaiting its pong, and a close with 1000 that the server echoes.
// Prints one JSON line: {"client": "node-ws", "version": "...", "runs": {"plain": {...}, ...}};
// each run holds booleans (true: the check passed), the negotiated extensions, byte counts, the
// TLS version ("tls": null over plain TCP), and "error" (null, or what was thrown). Every wait is
// bounded.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const WebSocket = require('ws');
const { version } = require('ws/package.json');

const STEP_MS = 10000; // any one awaited step
const MIB = 1 << 20;

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), STEP_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Compressible, JSON-like market data of exactly `size` characters.
function jsonText(size) {
  const quotes = [];
  let length = 1;
  for (let seq = 0; ; seq++) {
    const quote = JSON.stringify({
      seq, symbol: 'ACME', bid: 100 + (seq % 7) + (seq % 100) / 100,
      ask: 100 + (seq % 7) + ((seq + 2) % 100) / 100, size: 100 * (1 + (seq % 9)),
    });
    if (length + quote.length + 2 > size) break;
    quotes.push(quote);
    length += quote.length + 1;
  }
  const text = '[' + quotes.join(',');
  return text + ' '.repeat(size - text.length - 1) + ']';
}

// Messages arrive in a queue; `next()` waits for the next one.
function inbox(ws) {
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const message = isBinary ? Buffer.from(data) : data.toString('utf8');
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  return {
    next: (what) => withTimeout(
      queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve)),
      what,
    ),
  };
}

function same(a, b) {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return typeof a === 'string' && a === b;
}

async function exchange(url, perMessageDeflate, ca) {
  const result = { error: null };
  // `ca` replaces Node's bundled roots: only the test CA is trusted.
  const tls = ca ? { ca } : {};
  const ws = new WebSocket(url, ['echo'], { perMessageDeflate, maxPayload: 4 * MIB, ...tls });
  ws.on('error', (error) => { result.error = result.error || String(error); });
  const messages = inbox(ws);
  const echo = async (message, what) => {
    ws.send(message);
    return same(await messages.next(what), message);
  };
  try {
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }), 'open');
    result.extensions = ws.extensions;
    result.tls = typeof ws._socket.getProtocol === 'function' ? ws._socket.getProtocol() : null;
    // The parameters the server answered (ws keeps them on its extension object).
    const deflate = ws._extensions && ws._extensions['permessage-deflate'];
    result.deflate_params = deflate ? deflate.params : null;
    result.subprotocol = ws.protocol === 'echo';

    const text = 'hello, sockeye ✓ — ünïcödé';
    result.text = await echo(text, 'text');
    result.binary = await echo(Buffer.from([...Array(256).keys()]), 'binary');
    result.empty = (await echo('', 'empty text')) && (await echo(Buffer.alloc(0), 'empty binary'));

    // One message in several frames: fin false on all but the last.
    const pieces = ['first fragment, ', 'second ✓, ', '', 'last'];
    pieces.forEach((piece, i) => ws.send(piece, { fin: i === pieces.length - 1 }));
    result.fragmented_text = same(await messages.next('fragmented text'), pieces.join(''));
    const chunks = [crypto.randomBytes(1000), crypto.randomBytes(70000), crypto.randomBytes(3)];
    chunks.forEach((chunk, i) => ws.send(chunk, { binary: true, fin: i === chunks.length - 1 }));
    result.fragmented_binary = same(await messages.next('fragmented binary'), Buffer.concat(chunks));

    // Many messages in flight come back whole and in order.
    const many = Array.from({ length: 200 }, (_, n) => `message ${n} ${'x'.repeat(n)}`);
    many.forEach((message) => ws.send(message));
    let inOrder = true;
    for (const message of many) inOrder = same(await messages.next('pipelined'), message) && inOrder;
    result.pipelined = inOrder;

    result.large_binary = await echo(crypto.randomBytes(MIB), 'large binary');
    const bigText = jsonText(MIB);
    const before = ws._socket.bytesRead;
    result.large_text = await echo(bigText, 'large text');
    result.large_text_wire_bytes = ws._socket.bytesRead - before;

    const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), 'pong');
    ws.ping(Buffer.from('sockeye-ping'));
    result.ping = (await pong).toString() === 'sockeye-ping';
    result.after_ping = await echo('still open', 'after ping');

    const closed = withTimeout(new Promise((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }), 'close');
    ws.close(1000, 'bye');
    const { code, reason } = await closed;
    result.close_code = code;
    result.close_reason = reason;
    result.close_echoed = code === 1000;
  } catch (error) {
    result.error = String(error && error.stack ? error.stack : error);
    ws.terminate();
  }
  return result;
}

async function main(url, ca) {
  const settings = {
    plain: false,
    deflate: { threshold: 0 },
    deflate_small: {
      threshold: 0,
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 9,
    },
  };
  const runs = {};
  for (const [name, perMessageDeflate] of Object.entries(settings)) {
    runs[name] = await exchange(url, perMessageDeflate, ca);
  }
  return runs;
}

// node_client.js URL [--ca FILE]
function parseArgs(args) {
  const caAt = args.indexOf('--ca');
  const ca = caAt >= 0 ? fs.readFileSync(args[caAt + 1]) : null;
  const url = args.find((arg, i) => !arg.startsWith('--') && (caAt < 0 || i !== caAt + 1));
  return { url, ca };
}

const { url, ca } = parseArgs(process.argv.slice(2));
main(url, ca).then((runs) => {
  console.log(JSON.stringify({ client: 'node-ws', version, runs }));
  process.exit(Object.values(runs).every((run) => run.error === null) ? 0 : 1);
}, (error) => {
  console.log(JSON.stringify({ client: 'node-ws', version, error: String(error) }));
  process.exit(1);
});
