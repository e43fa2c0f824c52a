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
pub const DEMO_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sockeye echo</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
#log { border: 1px solid #ccc; height: 18rem; overflow-y: auto; padding: .5rem; font-family: monospace; }
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
<script>
const log = (cls, text) => {
  const line = document.createElement("div");
  line.className = cls;
  line.textContent = text;
  document.getElementById("log").append(line);
  line.scrollIntoView();
};
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
</script>
</body>
</html>
"#;
