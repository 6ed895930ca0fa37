"""Headless Chromium's own EventSource resumes across streams the server
ends (`--sse-lifetime`), from its Last-Event-ID, without a gap.

On the server's page (same origin), a new EventSource on /sse/TOPIC records
each event's id (`EPOCH:OFFSET`) and every (re)open. After the stream has
been ended by the server and reopened by the browser at least twice, the
offsets received must run on one by one from the first: no gap, no repeat,
one epoch.
Usage:
    browser_sse.py http://127.0.0.1:PORT/ TOPIC
Prints "N passed, N failed"; exits non-zero on failure.
"""
import asyncio
import sys
import time

from cdp import page, run

PAGE, TOPIC = sys.argv[1], sys.argv[2]
SETUP = """
window.rt = {ids: [], opens: 0, errors: 0};
const es = new EventSource('/sse/%s');
es.onopen = () => rt.opens++;
es.onerror = () => rt.errors++;
es.onmessage = e => rt.ids.push(e.lastEventId);
""" % TOPIC


async def main():
    async with page() as (call, js):
        await call("Page.navigate", url=PAGE)
        deadline = time.time() + 20
        while time.time() < deadline and not await js("document.readyState === 'complete'"):
            await asyncio.sleep(0.1)
        await js(SETUP)
        deadline = time.time() + 40
        rt = {}
        while time.time() < deadline:
            rt = await js("window.rt")
            if rt["opens"] >= 3 and len(rt["ids"]) >= 50:
                break
            await asyncio.sleep(0.2)
        assert rt["opens"] >= 3, f"the stream was opened {rt['opens']} times"
        assert rt["errors"] >= 2, f"{rt['errors']} stream ends seen"
        ids = rt["ids"]
        epochs = {i.split(":")[0] for i in ids}
        assert len(epochs) == 1, f"epochs {epochs}"
        offsets = [int(i.split(":")[1]) for i in ids]
        want = list(range(offsets[0], offsets[0] + len(offsets)))
        if offsets != want:
            bad = next(k for k, (a, b) in enumerate(zip(offsets, want)) if a != b)
            raise AssertionError(f"offsets break at {bad}: {offsets[max(0, bad - 3):bad + 3]}")
        print(f"# {len(ids)} events over {rt['opens']} opens, offsets {offsets[0]}..{offsets[-1]}")


run("chromium_event_source_resumes", main)
