#!/usr/bin/env node
// A /pubsub server on Node `ws` (pinned 8.18.0), for `sockeye load fanout`.
//
// Speaks the text protocol of `sockeye serve`'s /pubsub endpoint, one command per text
// message: `sub TOPIC`, `unsub TOPIC` (answered `ok sub TOPIC` / `ok unsub TOPIC`),
// `pub TOPIC PAYLOAD` (delivered as `msg TOPIC PAYLOAD` to every subscriber, the sender
// included if it subscribed) and `pubx TOPIC PAYLOAD` (every subscriber but the sender); a bad
// command is answered `error TEXT` and the connection stays open. Topics are NATS-style
// subjects; `sub` and `unsub` take the wildcards `*` (one token) and `>` (one or more tokens,
// last only).
//
// Written as users write it: a Map from topic to the Set of its connections, one from wildcard
// pattern to its connections matched with a small matcher on each publish, and one `send` per
// connection per publish (the delivery encoded once). perMessageDeflate off. Prints
// `listening on HOST:PORT` once ready; any path is accepted.
//
//   NODE_PATH=target/peers/node/node_modules node benches/peers/ws_pubsub.js --addr 127.0.0.1:9001
'use strict';

const { WebSocket, WebSocketServer } = require('ws');

function parse(argv) {
  const opts = { addr: '127.0.0.1:9001' };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--addr') opts.addr = value;
    else throw new Error(`unknown argument ${flag}`);
  }
  return opts;
}

let opts;
try {
  opts = parse(process.argv.slice(2));
} catch (e) {
  console.error(`ws_pubsub.js: ${e.message}\nusage: ws_pubsub.js [--addr HOST:PORT]`);
  process.exit(2);
}
const colon = opts.addr.lastIndexOf(':');
const host = opts.addr.slice(0, colon).replace(/^\[|\]$/g, '');
const port = Number(opts.addr.slice(colon + 1));

// Literal topic -> the connections subscribed to it.
const exact = new Map();
// Wildcard pattern as written -> { tokens, members }.
const patterns = new Map();
// Connection -> its subscriptions (topics and patterns as written).
const subscriptions = new Map();

// The reason `topic` is not a valid subject (null when it is).
function checkTopic(topic, wildcards) {
  if (topic.length === 0) return 'empty topic';
  if (/\s/.test(topic)) return 'whitespace in topic';
  const tokens = topic.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token.length === 0) return 'empty token';
    if (token === '*' || token === '>') {
      if (!wildcards) return 'wildcard in a publish topic';
      if (token === '>' && i !== tokens.length - 1) return "'>' must be the last token";
    } else if (token.includes('*') || token.includes('>')) {
      return 'wildcard inside a token';
    }
  }
  return null;
}

function isPattern(topic) {
  return topic.split('.').some((t) => t === '*' || t === '>');
}

// Whether the literal topic `tokens` matches the wildcard `pattern` (arrays of tokens).
function matches(pattern, tokens) {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '>') return tokens.length > i;
    if (i >= tokens.length || (pattern[i] !== '*' && pattern[i] !== tokens[i])) return false;
  }
  return tokens.length === pattern.length;
}

function subscribe(ws, topic) {
  if (isPattern(topic)) {
    if (!patterns.has(topic)) patterns.set(topic, { tokens: topic.split('.'), members: new Set() });
    patterns.get(topic).members.add(ws);
  } else {
    if (!exact.has(topic)) exact.set(topic, new Set());
    exact.get(topic).add(ws);
  }
  subscriptions.get(ws).add(topic);
}

function unsubscribe(ws, topic) {
  if (isPattern(topic)) {
    const entry = patterns.get(topic);
    if (entry && entry.members.delete(ws) && entry.members.size === 0) patterns.delete(topic);
  } else {
    const members = exact.get(topic);
    if (members && members.delete(ws) && members.size === 0) exact.delete(topic);
  }
  subscriptions.get(ws).delete(topic);
}

// Sends `line` once to each connection subscribed to `topic` (directly or by a pattern).
function publish(sender, topic, line, includeSender) {
  let targets = exact.get(topic);
  if (patterns.size > 0) {
    const tokens = topic.split('.');
    targets = new Set(targets);
    for (const { tokens: pattern, members } of patterns.values()) {
      if (matches(pattern, tokens)) for (const ws of members) targets.add(ws);
    }
  }
  if (!targets) return;
  const data = Buffer.from(line);
  for (const ws of targets) {
    if ((includeSender || ws !== sender) && ws.readyState === WebSocket.OPEN) {
      ws.send(data, { binary: false });
    }
  }
}

// Runs one command; returns the reply, if any.
function handle(ws, data, isBinary) {
  if (isBinary) return 'error binary messages are not supported';
  const message = data.toString();
  const space = message.indexOf(' ');
  const command = space < 0 ? message : message.slice(0, space);
  const rest = space < 0 ? '' : message.slice(space + 1);
  if (command === 'sub' || command === 'unsub') {
    const reason = space < 0 ? 'missing topic' : checkTopic(rest, true);
    if (reason) return `error bad topic: ${reason}`;
    if (command === 'sub') subscribe(ws, rest);
    else unsubscribe(ws, rest);
    return `ok ${command} ${rest}`;
  }
  if (command === 'pub' || command === 'pubx') {
    const end = rest.indexOf(' ');
    const topic = end < 0 ? rest : rest.slice(0, end);
    const payload = end < 0 ? '' : rest.slice(end + 1);
    const reason = space < 0 ? 'missing topic' : checkTopic(topic, false);
    if (reason) return `error bad topic: ${reason}`;
    publish(ws, topic, `msg ${topic} ${payload}`, command === 'pub');
    return null;
  }
  return `error unknown command: ${command.slice(0, 32)}`;
}

const wss = new WebSocketServer({ host, port, backlog: 1024, maxPayload: 64 << 20, perMessageDeflate: false });

wss.on('connection', (ws) => {
  subscriptions.set(ws, new Set());
  ws.on('message', (data, isBinary) => {
    const reply = handle(ws, data, isBinary);
    if (reply !== null) ws.send(reply);
  });
  ws.on('close', () => {
    for (const topic of [...subscriptions.get(ws)]) unsubscribe(ws, topic);
    subscriptions.delete(ws);
  });
  ws.on('error', () => ws.terminate());
});
wss.on('listening', () => {
  const { address, port: bound } = wss.address();
  console.log(`listening on ${address.includes(':') ? `[${address}]` : address}:${bound}`);
});
wss.on('error', (e) => {
  console.error(`ws_pubsub.js: ${e.message}`);
  process.exit(1);
});
