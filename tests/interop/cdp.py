"""Drives a headless Chromium through the DevTools protocol for tests/interop_chromium.rs
(the demo page's echo) and crates/sockeye-cli/tests/interop_pubsub.rs (its room chat).

Usage: cdp.py DEVTOOLS_PORT PAGE_URL [echo|chat]

echo (the default): navigates the browser's page to PAGE_URL (the demo page of `sockeye serve`),
waits until its WebSocket is open, sends "hello", the bytes [1, 2, 3] and a 64 KiB JSON-like text
from the page, waits for their echoes, closes the socket with 1000 and waits for the close event.
All results are read from the browser (`window.sockeyeResults` and the page's `ws`). Prints one
JSON line:
{"browser": "...", "results": {...}, "large_text_ok": bool, "steps": [...], "error": null}.

chat: opens PAGE_URL in three new tabs; "ann" and "bo" join the room "lobby", "cy" joins
"other" (through the page's forms, as a user would). ann says a line holding markup, cy says a
line in its room, then bo says one. Prints one JSON line:
{"browser": "...", "chat": {"ann": window.sockeyeChat, ...}, "markup_elements": {"ann": N, ...},
"log_text": {"ann": "...", ...}, "steps": [...], "error": null}; markup_elements counts the
elements inside the lines of each chat log (a line shown as text has none), log_text is its text.

Every wait is bounded; the whole run by DEADLINE seconds.
"""

import asyncio
import json
import sys
import time
import traceback
import urllib.parse
import urllib.request

from contextlib import AsyncExitStack

from websockets.asyncio.client import connect

DEADLINE = {"echo": 20.0, "chat": 30.0}  # seconds for everything
POLL = 0.05  # seconds between two looks at the page

# A 64 KiB JSON-like text, built in the page and kept there for the comparison.
BIG_TEXT = (
    "window.bigText = Array.from({length: 100000}, (_, i) =>"
    " `{\"seq\":${i},\"symbol\":\"ACME\",\"bid\":${100 + i % 7}.25}`)"
    ".join(',').slice(0, 65536); true"
)


class Page:
    """One DevTools session on a page target."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method, params=None):
        self.next_id += 1
        ident = self.next_id
        await self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == ident:  # events (no id) are skipped
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def evaluate(self, expression):
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def results(self, record="sockeyeResults"):
        try:
            text = await self.evaluate(f"JSON.stringify(window.{record} ?? null)")
        except RuntimeError:
            return None  # the page is between two documents: look again
        return json.loads(text) if text else None

    async def wait_for(self, what, done, record="sockeyeResults"):
        """Polls `window.<record>` until `done(results)`; returns them."""
        while True:
            results = await self.results(record)
            if results is not None and done(results):
                return results
            await asyncio.sleep(POLL)

    async def fill(self, form, fields):
        """Sets the inputs `fields` ({id: value}) and submits `form` as its button would."""
        sets = "".join(
            f"document.getElementById({json.dumps(k)}).value = {json.dumps(v)};"
            for k, v in fields.items()
        )
        submit = f"document.getElementById({json.dumps(form)}).requestSubmit();"
        await self.evaluate(f"{sets} {submit} true")


def http_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.load(response)


async def page_target(port):
    """The websocket URL of the browser's first page target (it may take a moment to appear)."""
    while True:
        pages = [t for t in http_json(port, "/json/list") if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        await asyncio.sleep(POLL)


async def drive(port, url, out):
    out["browser"] = http_json(port, "/json/version").get("Browser")
    target = await page_target(port)
    async with connect(target, max_size=16 << 20, ping_interval=None) as ws:
        page = Page(ws)
        await page.call("Page.navigate", {"url": url})
        out["steps"].append("navigated")
        results = await page.wait_for("open", lambda r: r["open"] or r["closed"] is not None)
        out["results"] = results
        if not results["open"]:
            raise RuntimeError("the page's WebSocket did not open")
        out["steps"].append("open")

        await page.evaluate(BIG_TEXT)
        await page.evaluate('ws.send("hello"); ws.send(new Uint8Array([1, 2, 3])); true')
        await page.evaluate("ws.send(window.bigText); true")
        out["results"] = await page.wait_for("echoes", lambda r: len(r["echoes"]) >= 3)
        out["large_text_ok"] = await page.evaluate(
            "window.sockeyeResults.echoes[2] === window.bigText"
        )
        out["large_text_len"] = await page.evaluate("window.sockeyeResults.echoes[2].length")
        out["steps"].append("echoed")

        await page.evaluate("ws.close(1000); true")
        out["results"] = await page.wait_for("close", lambda r: r["closed"] is not None)
        out["steps"].append("closed")
        # The large echo is too long for the report: keep the two short ones.
        out["results"]["echoes"] = out["results"]["echoes"][:2]


def new_tab(port, url):
    """Opens `url` in a new tab; the websocket URL of its DevTools session."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/json/new?{urllib.parse.quote(url, safe=':/')}", method="PUT"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["webSocketDebuggerUrl"]


# (name, room) of each tab in chat mode.
CHATTERS = [("ann", "lobby"), ("bo", "lobby"), ("cy", "other")]


async def chat(port, url, out):
    out["browser"] = http_json(port, "/json/version").get("Browser")
    async with AsyncExitStack() as stack:
        pages = {}
        for name, _ in CHATTERS:
            ws = await stack.enter_async_context(
                connect(new_tab(port, url), max_size=16 << 20, ping_interval=None)
            )
            pages[name] = Page(ws)
        for name, page in pages.items():
            await page.wait_for("page", lambda r: True, "sockeyeChat")
        out["steps"].append("loaded")
        for name, room in CHATTERS:
            await pages[name].fill("join", {"name": name, "room": room})
            await pages[name].wait_for("join", lambda c: c["joined"] == room, "sockeyeChat")
        out["steps"].append("joined")

        async def say(name, text, seen_by):
            await pages[name].fill("say", {"line": text})
            line = f"{name}: {text}"
            for other in seen_by:
                await pages[other].wait_for("line", lambda c: line in c["lines"], "sockeyeChat")

        await say("ann", "<b>hi</b> & hello", ["ann", "bo"])
        out["steps"].append("ann said")
        await say("cy", "only here", ["cy"])
        out["steps"].append("cy said")
        await say("bo", "bye", ["ann", "bo"])
        out["steps"].append("bo said")

        out["chat"] = {name: await page.results("sockeyeChat") for name, page in pages.items()}
        out["markup_elements"] = {
            name: await page.evaluate("document.querySelectorAll('#chat-log > div *').length")
            for name, page in pages.items()
        }
        out["log_text"] = {
            name: await page.evaluate("document.getElementById('chat-log').innerText")
            for name, page in pages.items()
        }


async def main(port, url, mode):
    out = {"browser": None, "steps": [], "error": None}
    if mode == "echo":
        out.update(results=None, large_text_ok=False)
    started = time.monotonic()
    try:
        scenario = chat if mode == "chat" else drive
        await asyncio.wait_for(scenario(port, url, out), DEADLINE[mode])
    except Exception as error:
        out["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
    out["elapsed_s"] = round(time.monotonic() - started, 3)
    return out


if __name__ == "__main__":
    report = asyncio.run(
        main(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "echo")
    )
    print(json.dumps(report))
    sys.exit(0 if report["error"] is None else 1)
