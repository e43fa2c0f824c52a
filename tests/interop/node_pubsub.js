// Node `ws` against the /pubsub endpoint of `sockeye serve` (driven by
// crates/sockeye-cli/tests/interop_pubsub.rs).
//
// Usage: NODE_PATH=target/interop/node/node_modules node node_pubsub.js ws://127.0.0.1:PORT/pubsub
//
// The scenario of python_pubsub.py: four subscribers, two of them offering permessage-deflate:
// "exact_a" (interop.a), "exact_b" (interop.b), "star" (interop.*) and "overlap" (interop.a and
// interop.>, so that interop.a matches twice). One publisher first sends bad commands (a bad
// topic, a wildcard to publish to, an unknown verb, a binary message), each answered by
// `error ...` on a connection that stays open, subscribes to interop.a (and to interop.a.deep,
// which it leaves), then publishes with `pubx` 200 numbered messages on interop.a and on
// interop.b, and 20 on interop.a.deep, and ends each topic with `pub TOPIC end`. Every subscriber
// must get every message of its topics once, in publish order, under the literal topic; the
// publisher only its own `pub interop.a end`.
//
// Prints one JSON line: {"client": "node-ws", "version": "...", "checks": {...}, "details": {...},
// "error": null}; each check is true when it passed, details say what was seen. Every wait is
// bounded.
'use strict';

const WebSocket = require('ws');
const { version } = require('ws/package.json');

const STEP_MS = 10000; // any one awaited step
const DEADLINE_MS = 60000; // everything
const COUNT = 200; // numbered publishes on interop.a and on interop.b

// name: [subscriptions, the topics it must receive, whether it offers permessage-deflate]
const SUBSCRIBERS = {
  exact_a: [['interop.a'], ['interop.a'], true],
  exact_b: [['interop.b'], ['interop.b'], false],
  star: [['interop.*'], ['interop.a', 'interop.b'], true],
  overlap: [['interop.a', 'interop.>'], ['interop.a', 'interop.b', 'interop.a.deep'], false],
};

// A bad command and how its reply must start.
const BAD_COMMANDS = {
  bad_topic_error: ['sub interop..a', 'error bad topic'],
  publish_wildcard_error: ['pub interop.* x', 'error '],
  unknown_command_error: ['publish interop.a x', 'error unknown command'],
  binary_error: [
    Buffer.from('\x00\x01sub interop.a', 'latin1'),
    'error binary messages are not supported',
  ],
};

function withTimeout(promise, what, ms = STEP_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const payload = (n) => `${n} ünïcödé ✓ with spaces`;

// The payloads published on `topic`, in order, then its end marker.
function expected(topic) {
  const step = topic === 'interop.a.deep' ? 10 : 1;
  const payloads = [];
  for (let n = 0; n < COUNT; n += step) payloads.push(payload(n));
  return [...payloads, 'end'];
}

// Opens a connection whose messages arrive in a queue; `next()` waits for the next one.
async function open(url, perMessageDeflate) {
  const ws = new WebSocket(url, { perMessageDeflate });
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const message = isBinary ? `<binary ${data.length} bytes>` : data.toString('utf8');
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 'open');
  ws.on('error', () => {}); // a later error shows as a timeout of the step that waits
  ws.next = (what) => withTimeout(
    queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve)),
    what,
  );
  return ws;
}

// Subscribes to `topics`: whether each got `ok sub TOPIC`, and the replies.
async function subscribe(ws, topics) {
  const replies = [];
  for (const topic of topics) {
    ws.send(`sub ${topic}`);
    replies.push(await ws.next(`ok sub ${topic}`));
  }
  return [replies.every((reply, i) => reply === `ok sub ${topics[i]}`), replies];
}

// Reads deliveries until every topic of `topics` has ended: the payloads by topic, in order,
// and anything that was not a delivery on those topics.
async function collect(ws, topics) {
  const seen = {};
  const unexpected = [];
  const ended = () => topics.every((t) => seen[t] && seen[t][seen[t].length - 1] === 'end');
  while (!ended()) {
    const message = await ws.next('deliveries');
    const [verb, topic] = message.split(' ', 2);
    if (verb === 'msg' && topics.includes(topic)) {
      (seen[topic] = seen[topic] || []).push(message.slice(`msg ${topic} `.length));
    } else {
      unexpected.push(message.slice(0, 200));
    }
  }
  return { seen, unexpected };
}

const sameList = (a, b) => Array.isArray(a) && a.length === b.length
  && a.every((x, i) => x === b[i]);

async function run(publisher, subscribers, checks, details) {
  details.extensions = Object.fromEntries(
    Object.entries(subscribers).map(([name, ws]) => [name, ws.extensions]),
  );
  for (const [check, [command, replyStart]] of Object.entries(BAD_COMMANDS)) {
    publisher.send(command);
    details[check] = await publisher.next(check);
    checks[check] = details[check].startsWith(replyStart);
  }
  [checks.open_after_errors] = await subscribe(publisher, ['interop.a', 'interop.a.deep']);
  publisher.send('unsub interop.a.deep');
  details.unsub = await publisher.next('ok unsub');
  checks.unsub = details.unsub === 'ok unsub interop.a.deep';

  let allSubscribed = true;
  for (const [name, [topics]] of Object.entries(SUBSCRIBERS)) {
    const [ok, replies] = await subscribe(subscribers[name], topics);
    details[`${name}_replies`] = replies;
    allSubscribed = allSubscribed && ok;
  }
  checks.ok_sub = allSubscribed;

  const readers = Object.entries(SUBSCRIBERS).map(
    ([name, [, wanted]]) => collect(subscribers[name], wanted),
  );
  for (let n = 0; n < COUNT; n++) {
    publisher.send(`pubx interop.a ${payload(n)}`);
    publisher.send(`pubx interop.b ${payload(n)}`);
    if (n % 10 === 0) publisher.send(`pubx interop.a.deep ${payload(n)}`);
  }
  for (const topic of ['interop.a.deep', 'interop.b', 'interop.a']) {
    publisher.send(`pub ${topic} end`);
  }
  const results = await Promise.all(readers);

  let literal = true;
  Object.entries(SUBSCRIBERS).forEach(([name, [, wanted]], i) => {
    const { seen, unexpected } = results[i];
    checks[`${name}_once_in_order`] = unexpected.length === 0
      && wanted.every((topic) => sameList(seen[topic], expected(topic)));
    const mismatch = {};
    for (const topic of wanted) {
      const want = expected(topic);
      const at = (seen[topic] || []).findIndex((got, j) => got !== want[j]);
      mismatch[topic] = at < 0 ? null : [at, seen[topic][at], want[at]];
    }
    details[name] = {
      received: Object.fromEntries(Object.entries(seen).map(([t, p]) => [t, p.length])),
      unexpected: unexpected.slice(0, 5),
      mismatch,
    };
    if (name === 'star' || name === 'overlap') {
      literal = literal && sameList(Object.keys(seen).sort(), [...wanted].sort());
    }
  });
  checks.wildcard_literal_topic = literal;
  // A connection's own deliveries come in order with its replies: pubx left it out, and
  // interop.a.deep was unsubscribed, so the first it gets is its own `pub interop.a end`.
  details.publisher_first_delivery = await publisher.next('own delivery');
  checks.pubx_not_echoed = details.publisher_first_delivery === 'msg interop.a end';
}

async function scenario(url, checks, details) {
  const all = [];
  try {
    const publisher = await open(url, false);
    all.push(publisher);
    const subscribers = {};
    for (const [name, [, , deflate]] of Object.entries(SUBSCRIBERS)) {
      subscribers[name] = await open(url, deflate);
      all.push(subscribers[name]);
    }
    await run(publisher, subscribers, checks, details);
  } finally {
    for (const ws of all) ws.terminate();
  }
}

async function main(url) {
  const checks = {};
  const details = {};
  let error = null;
  try {
    await withTimeout(scenario(url, checks, details), 'the whole scenario', DEADLINE_MS);
  } catch (e) {
    error = String(e && e.stack ? e.stack : e);
  }
  console.log(JSON.stringify({ client: 'node-ws', version, checks, details, error }));
  process.exit(error === null && Object.values(checks).every((c) => c === true) ? 0 : 1);
}

main(process.argv[2]);
