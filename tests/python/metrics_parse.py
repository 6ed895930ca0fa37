"""/metrics through a real Prometheus text-format parser (prometheus_client).

Usage: metrics_parse.py HOST PORT WORKERS

Sends traffic of known shape (an echo connection with 3 messages closed with
1000, a refused handshake, a feed subscription), then parses /metrics with
prometheus_client's parser (which rejects malformed exposition) and checks
every family the server documents: its type, and values that follow from the
traffic. Prints "N passed, 0 failed".
"""
import asyncio
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
import websockets

HOST, PORT, WORKERS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
BASE = f"http://{HOST}:{PORT}"
passed = 0


def check(cond, what):
    global passed
    if not cond:
        print(f"FAIL: {what}")
        print("0 passed, 1 failed")
        sys.exit(1)
    passed += 1


def scrape():
    with urllib.request.urlopen(f"{BASE}/metrics", timeout=10) as r:
        check(r.status == 200, "/metrics answers 200")
        ctype = r.headers.get("Content-Type", "")
        check(ctype.startswith("text/plain"), f"text/plain content type, got {ctype}")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, labels=None, sample=None):
    f = families[name]
    for s in f.samples:
        if sample is not None and s.name != sample:
            continue
        if labels is None or all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, labels))


async def traffic():
    async with connect(f"ws://{HOST}:{PORT}/echo") as ws:
        for i in range(3):
            await ws.send(f"m{i}")
            check(await ws.recv() == f"m{i}", "echo")
    try:
        async with connect(f"ws://{HOST}:{PORT}/echo", additional_headers={"Sec-WebSocket-Version": "8"}):
            pass
    except websockets.exceptions.InvalidStatus:
        pass
    async with connect(f"ws://{HOST}:{PORT}/feed") as feed:
        await feed.send('{"op":"subscribe","topic":"t"}')
        await feed.recv()
        fams = scrape()
        check(value(fams, "ringwave_subscriptions") >= 1, "a subscription is counted")
        check(value(fams, "ringwave_connections_open") >= 1, "the open connection is counted")


def main():
    before = scrape()
    asyncio.run(traffic())
    f = scrape()
    expected = {
        "ringwave_connections_open": "gauge",
        "ringwave_connections": "counter",
        "ringwave_handshakes_accepted": "counter",
        "ringwave_handshakes_rejected": "counter",
        "ringwave_messages_in": "counter",
        "ringwave_messages_out": "counter",
        "ringwave_bytes_in": "counter",
        "ringwave_bytes_out": "counter",
        "ringwave_closes": "counter",
        "ringwave_rejects": "counter",
        "ringwave_slow_consumer_closes": "counter",
        "ringwave_slow_consumer_drops": "counter",
        "ringwave_slow_consumer_conflated": "counter",
        "ringwave_publishes": "counter",
        "ringwave_deliveries": "counter",
        "ringwave_mailbox_depth": "gauge",
        "ringwave_loop_turn_seconds": "histogram",
    }
    for name, kind in expected.items():
        check(name in f, f"family {name} present (have {sorted(f)})")
        check(f[name].type == kind, f"{name} is a {kind}, not {f[name].type}")

    def grew(name, labels=None, by=1, sample=None):
        a = value(before, name, labels, sample)
        b = value(f, name, labels, sample)
        check(b - a >= by, f"{name}{labels or ''} grew by {b - a}, expected >= {by}")

    grew("ringwave_handshakes_accepted", by=2, sample="ringwave_handshakes_accepted_total")
    grew("ringwave_messages_in", by=4, sample="ringwave_messages_in_total")
    grew("ringwave_messages_out", by=3, sample="ringwave_messages_out_total")
    grew("ringwave_bytes_in", by=100, sample="ringwave_bytes_in_total")
    grew("ringwave_bytes_out", by=100, sample="ringwave_bytes_out_total")
    grew("ringwave_closes", {"code": "1000"}, by=2)
    grew("ringwave_rejects", {"reason": "426"})
    check(value(f, "ringwave_subscriptions") == 0, "the subscription went with its connection")

    # The loop-turn histogram: one series per worker, cumulative buckets.
    workers = {s.labels["worker"] for s in f["ringwave_loop_turn_seconds"].samples}
    check(len(workers) == WORKERS, f"one loop-turn histogram per worker: {workers}")
    for w in workers:
        buckets = [
            s
            for s in f["ringwave_loop_turn_seconds"].samples
            if s.name.endswith("_bucket") and s.labels["worker"] == w
        ]
        counts = [s.value for s in buckets]
        check(counts == sorted(counts), f"worker {w}: buckets are cumulative")
        check(buckets[-1].labels["le"] == "+Inf", f"worker {w}: last bucket is +Inf")
        total = value(f, "ringwave_loop_turn_seconds", {"worker": w}, "ringwave_loop_turn_seconds_count")
        check(total == counts[-1] and total > 0, f"worker {w}: _count equals the +Inf bucket")
    depth = [s for s in f["ringwave_mailbox_depth"].samples]
    check(len(depth) == WORKERS, f"mailbox depth per worker: {len(depth)}")
    print(f"{passed} passed, 0 failed")


main()
