"""Headless Chromium loads ringwave's `GET /` page and exchanges messages.

Drives Chromium over the DevTools protocol (with the `websockets` client),
waits until the page shows both echoes, then checks that the live ticker
table fills with ticks from the server's feed simulator and keeps updating,
and that the page's EventSource receives the same topic.
Usage:
    browser.py http://127.0.0.1:PORT/ [screenshot.png]
    RINGWAVE_SPKI=<base64 sha256 of the key> browser.py https://127.0.0.1:PORT/
Prints "N passed, N failed"; exits non-zero on failure.
"""
import asyncio
import base64
import os
import sys
import time

from cdp import page, run

PAGE = sys.argv[1]
SHOT = sys.argv[2] if len(sys.argv) > 2 else None
# Over https: trust the server's test certificate by its key's hash.
SPKI_FLAGS = ([f"--ignore-certificate-errors-spki-list={os.environ['RINGWAVE_SPKI']}"]
              if os.environ.get("RINGWAVE_SPKI") else [])
EXPECT = ["text: hello from the browser ✓", "binary: [1,2,3,250]"]


async def main():
    async with page(SPKI_FLAGS) as (call, js):
        await call("Page.navigate", url=PAGE)
        deadline = time.time() + 20
        echoes = None
        while time.time() < deadline:
            echoes = await js("window.ringwave && window.ringwave.echoes")
            if echoes and len(echoes) >= 2:
                break
            await asyncio.sleep(0.1)
        assert echoes == EXPECT, f"page shows {echoes!r}"
        # Type into the form and send: the echo shows up in the log.
        await js("document.getElementById('text').value = 'typed ünicode'; "
                 "document.querySelector('#form button').click()")
        deadline = time.time() + 10
        while time.time() < deadline:
            log = await js("document.getElementById('log').textContent")
            if "typed ünicode" in (log or ""):
                break
            await asyncio.sleep(0.1)
        assert "echo text: typed ünicode" in log, log
        status = await js("document.getElementById('status').textContent")
        assert status == "open", status
        # The ticker: rows for the simulator's symbols, prices shown, and
        # the tick count still growing.
        deadline = time.time() + 20
        first = 0
        while time.time() < deadline:
            first = await js("window.ringwave.ticks") or 0
            rows = await js("document.querySelectorAll('#ticker tbody tr').length")
            if first >= 20 and rows >= 10:
                break
            await asyncio.sleep(0.1)
        assert first >= 20, f"only {first} ticks shown"
        assert rows >= 10, f"ticker has {rows} rows"
        prices = await js("Array.from(document.querySelectorAll('#ticker tbody tr'))"
                          ".map(r => parseFloat(r.cells[1].textContent))")
        assert all(p > 0 for p in prices), prices
        feed = await js("document.getElementById('feed-status').textContent")
        assert feed == "connected", feed
        deadline = time.time() + 10
        later = first
        while time.time() < deadline and later <= first:
            await asyncio.sleep(0.1)
            later = await js("window.ringwave.ticks")
        assert later > first, f"ticks stopped at {first}"
        # The same topic over Server-Sent Events.
        deadline = time.time() + 10
        sse = 0
        while time.time() < deadline and sse < 5:
            await asyncio.sleep(0.1)
            sse = await js("window.ringwave.sse") or 0
        assert sse >= 5, f"only {sse} Server-Sent Events"
        if SHOT:
            shot = await call("Page.captureScreenshot", format="png")
            with open(SHOT, "wb") as f:
                f.write(base64.b64decode(shot["data"]))


run("chromium_page_echo_and_ticker", main)
