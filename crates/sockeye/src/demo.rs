//! The demo page of `sockeye serve`, for embedders and tests that serve it themselves.

/// The HTML page `sockeye serve` answers on `GET /`: it opens a WebSocket to
/// `ws://<its host>/echo` (`wss://` when the page came over https) with the `echo`
/// subprotocol, shows every message that comes back, and has buttons to send text, 16 random
/// bytes, or close with 1000.
///
/// It also keeps a record in `window.sockeyeResults`, for browser tests that read it through the
/// DevTools protocol: `open` (bool), `extensions` (the negotiated `Sec-WebSocket-Extensions`, set
/// on open), `echoes` (each message received: text as is, binary as `[1 2 3]`) and `closed`
/// (`null`, then `{ code, clean }`). The socket is the page's top-level `const ws`.
///
/// Its room chat joins a room through `/pubsub` on the same host (`ws://` or `wss://` as
/// above): the form `#join` (inputs `#name` and `#room`, default room `lobby`) opens a socket
/// that sends `sub chat.ROOM`; the form `#say` (input `#line`) publishes
/// `pub chat.ROOM NAME: TEXT`; every `msg chat.ROOM NAME: TEXT` delivery is shown as text.
/// Its record is `window.sockeyeChat`: `joined` (the room, once `ok sub` came back, else
/// `null`), `lines` (each delivery's `NAME: TEXT`) and `errors` (each `error ...` reply).
pub const DEMO_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sockeye echo</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
#log, #chat-log { border: 1px solid #ccc; height: 18rem; overflow-y: auto; padding: .5rem;
  font-family: monospace; }
#chat-log { height: 12rem; }
.in { color: #05620f; } .out { color: #1d3f99; } .sys { color: #777; }
</style>
</head>
<body>
<h1>sockeye echo</h1>
<p>This page opens a WebSocket to the server that sent it; every message comes back.</p>
<p>Status: <strong id="status">connecting…</strong></p>
<form id="form"><input id="text" size="40" value="hello, sockeye" autofocus>
<button>Send text</button> <button type="button" id="binary">Send 16 random bytes</button>
<button type="button" id="close">Close</button></form>
<div id="log"></div>
<h2>Room chat</h2>
<p>Everyone in the same room sees every line, through <code>/pubsub</code>.</p>
<form id="join">Name <input id="name" size="12" maxlength="32" required>
Room <input id="room" size="12" maxlength="64" value="lobby" pattern="[A-Za-z0-9_\-]+"
title="letters, digits, - and _" required> <button>Join</button>
<strong id="chat-status">not joined</strong></form>
<form id="say"><input id="line" size="40" disabled> <button disabled>Say</button></form>
<div id="chat-log"></div>
<script>
const addLine = (box, cls, text) => {
  const line = document.createElement("div");
  line.className = cls;
  line.textContent = text;
  document.getElementById(box).append(line);
  line.scrollIntoView();
};
const log = (cls, text) => addLine("log", cls, text);
const status = document.getElementById("status");
const scheme = location.protocol === "https:" ? "wss" : "ws";
const ws = new WebSocket(`${scheme}://${location.host}/echo`, ["echo"]);
ws.binaryType = "arraybuffer";
window.sockeyeResults = { open: false, echoes: [], closed: null, extensions: null };
ws.onopen = () => {
  status.textContent = "open";
  window.sockeyeResults.open = true;
  window.sockeyeResults.extensions = ws.extensions;
  log("sys", `open (protocol "${ws.protocol}", extensions "${ws.extensions}")`);
};
ws.onmessage = (event) => {
  const shown = typeof event.data === "string"
    ? event.data
    : `[${new Uint8Array(event.data).join(" ")}]`;
  window.sockeyeResults.echoes.push(shown);
  log("in", `← ${shown}`);
};
ws.onclose = (event) => {
  status.textContent = `closed (${event.code})`;
  window.sockeyeResults.closed = { code: event.code, clean: event.wasClean };
  log("sys", `closed: code ${event.code}, clean ${event.wasClean}`);
};
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById("text").value;
  ws.send(text);
  log("out", `→ ${text}`);
};
document.getElementById("binary").onclick = () => {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  ws.send(bytes);
  log("out", `→ [${bytes.join(" ")}]`);
};
document.getElementById("close").onclick = () => ws.close(1000, "bye");

// Room chat: one /pubsub socket subscribed to chat.ROOM; lines are published to it.
const chat = { socket: null, topic: null, name: null };
window.sockeyeChat = { joined: null, lines: [], errors: [] };
const chatStatus = document.getElementById("chat-status");
const chatLog = (cls, text) => addLine("chat-log", cls, text);
const canSay = (on) => {
  for (const field of document.getElementById("say").elements) field.disabled = !on;
};
document.getElementById("name").value = `guest-${Math.floor(Math.random() * 1000)}`;
document.getElementById("join").onsubmit = (event) => {
  event.preventDefault();
  const name = document.getElementById("name").value.trim();
  const room = document.getElementById("room").value.trim();
  if (!name || !/^[A-Za-z0-9_-]+$/.test(room)) {
    chatStatus.textContent = "pick a name, and a room of letters, digits, - and _";
    return;
  }
  if (chat.socket) chat.socket.close(1000);
  canSay(false);
  window.sockeyeChat.joined = null;
  const topic = `chat.${room}`;
  const socket = new WebSocket(`${scheme}://${location.host}/pubsub`);
  Object.assign(chat, { socket, topic, name });
  chatStatus.textContent = `joining ${room}…`;
  socket.onopen = () => socket.send(`sub ${topic}`);
  socket.onmessage = (event) => {
    const text = String(event.data);
    if (text === `ok sub ${topic}`) {
      window.sockeyeChat.joined = room;
      chatStatus.textContent = `in ${room} as ${name}`;
      chatLog("sys", `joined ${room}`);
      canSay(true);
    } else if (text.startsWith(`msg ${topic} `)) {
      const line = text.slice(`msg ${topic} `.length);
      window.sockeyeChat.lines.push(line);
      chatLog("in", line);
    } else if (text.startsWith("error ")) {
      window.sockeyeChat.errors.push(text);
      chatLog("sys", text);
    }
  };
  socket.onclose = (event) => {
    if (chat.socket !== socket) return; // an earlier room's socket
    window.sockeyeChat.joined = null;
    canSay(false);
    chatStatus.textContent = `left (${event.code})`;
  };
};
document.getElementById("say").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("line");
  if (!window.sockeyeChat.joined || !input.value) return;
  chat.socket.send(`pub ${chat.topic} ${chat.name}: ${input.value}`);
  input.value = "";
};
</script>
</body>
</html>
"#;
