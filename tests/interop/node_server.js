// A Node `ws` server for sockeye-client (driven by tests/interop_client.rs).
//
// Usage: NODE_PATH=target/interop/node/node_modules node node_server.js [--tls CERT KEY]
//
// Listens on 127.0.0.1 (over TLS with the PEM certificate chain CERT and key KEY when given), on a port the system picks, with permessage-deflate on for every
// message (threshold 0) and messages of up to 20 MiB. Prints one JSON line once it listens:
// {"server": "node-ws", "version": "...", "port": N}. Then, per message:
//
// - binary: echoed as binary;
// - text `ext`: answered with the Sec-WebSocket-Extensions header of the upgrade response
//   (empty when no extension was negotiated);
// - text `fragments:N:TEXT`: TEXT sent back as one text message in N fragments, cut by bytes,
//   so that a character may straddle two fragments;
// - text `close:CODE:REASON`: the server closes the connection with CODE and REASON;
// - text `big:N`: a binary message of N bytes, byte i being i % 251;
// - any other text: echoed as text.
//
// When a connection ends, prints one JSON line with the close code and reason the server
// received from the client: {"closed": CODE, "reason": "..."} (CODE is 1005 for a close frame
// without a code, 1006 when none came). Exits when its standard input ends (the test's process
// is gone) or after LIFETIME_MS, whichever comes first.
'use strict';

const fs = require('fs');
const https = require('https');
const WebSocket = require('ws');
const { version } = require('ws/package.json');

const MAX_SIZE = 20 << 20; // 16 MiB messages and a margin
const LIFETIME_MS = 600000; // before the server gives up by itself

// Prints one JSON line. Writes to a pipe are synchronous on Linux: it is out when this returns.
function announce(fields) {
  console.log(JSON.stringify(fields));
}

// `size` bytes, byte i being i % 251.
function pattern(size) {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = i % 251;
  return bytes;
}

// Sends `text` as one text message in `count` fragments of nearly equal byte length.
function sendFragments(ws, text, count) {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < count; i++) {
    const piece = bytes.subarray(
      Math.floor((i * bytes.length) / count),
      Math.floor(((i + 1) * bytes.length) / count),
    );
    ws.send(piece, { binary: false, fin: i === count - 1 });
  }
}

// Acts on one message.
function answer(ws, data, isBinary, extensions) {
  if (isBinary) {
    ws.send(data, { binary: true });
    return;
  }
  const message = data.toString('utf8');
  const colon = message.indexOf(':');
  const verb = colon < 0 ? message : message.slice(0, colon);
  const rest = message.slice(colon + 1);
  const second = rest.indexOf(':');
  if (message === 'ext') {
    ws.send(extensions);
  } else if (verb === 'fragments' && second >= 0) {
    sendFragments(ws, rest.slice(second + 1), Number(rest.slice(0, second)));
  } else if (verb === 'close' && second >= 0) {
    ws.close(Number(rest.slice(0, second)), rest.slice(second + 1));
  } else if (verb === 'big' && colon >= 0) {
    ws.send(pattern(Number(rest)), { binary: true });
  } else {
    ws.send(message);
  }
}

// The HTTPS server that carries the WebSocket server with `--tls CERT KEY`, null without it.
function tlsServer(args) {
  if (args.length === 0) return null;
  if (args.length !== 3 || args[0] !== '--tls') {
    console.error('usage: node_server.js [--tls CERT KEY]');
    process.exit(2);
  }
  return https.createServer({ cert: fs.readFileSync(args[1]), key: fs.readFileSync(args[2]) });
}

const carrier = tlsServer(process.argv.slice(2));
const options = { maxPayload: MAX_SIZE, perMessageDeflate: { threshold: 0 } };
const server = carrier
  ? new WebSocket.WebSocketServer({ server: carrier, ...options })
  : new WebSocket.WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
if (carrier) carrier.listen(0, '127.0.0.1');

// The upgrade response's extension header, kept on the request for the 'connection' event.
server.on('headers', (headers, req) => {
  const prefix = 'sec-websocket-extensions:';
  const line = headers.find((h) => h.toLowerCase().startsWith(prefix));
  req.sockeyeExtensions = line ? line.slice(prefix.length).trim() : '';
});

server.on('connection', (ws, req) => {
  const extensions = req.sockeyeExtensions || '';
  ws.on('message', (data, isBinary) => answer(ws, data, isBinary, extensions));
  ws.on('close', (code, reason) => announce({ closed: code, reason: reason.toString('utf8') }));
  // A failed connection is reported by its 'close' event; nothing else to do here.
  ws.on('error', () => {});
});

(carrier || server).on('listening', () => {
  announce({ server: 'node-ws', version, port: (carrier || server).address().port });
});

// The test keeps standard input open while it runs: its end means the test is gone.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), LIFETIME_MS).unref();
