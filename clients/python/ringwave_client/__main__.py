"""``python -m ringwave_client tail URL TOPIC [--token T]``: follow a topic
and print one line per publication, ``EPOCH:OFFSET<TAB>DATA``, forever,
reconnecting and recovering as the library does. Gaps and lost positions
are reported on stderr."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .client import Client, Gap, Publication, Resubscribed


async def tail(url: str, topic: str, token: str | None) -> int:
    async with Client(url, token=token) as client:
        sub = client.subscribe(topic, snapshot=False)
        async for event in sub:
            if isinstance(event, Publication):
                data = event.data.replace("\n", "\\n")
                print(f"{event.position}\t{data}", flush=True)
            elif isinstance(event, Gap):
                span = f" (offsets {event.from_offset}-{event.to_offset})" if event.from_offset else ""
                print(f"# gap: {event.dropped} skipped by the server{span}", file=sys.stderr)
            elif isinstance(event, Resubscribed) and event.lost:
                print(f"# position lost: now at {event.epoch}:{event.offset}", file=sys.stderr)
    if client.error is not None:
        print(f"ringwave_client: {client.error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ringwave_client")
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser(
        "tail", help="follow a topic: one line per publication, EPOCH:OFFSET<TAB>DATA"
    )
    t.add_argument("url", help="the feed's URL, e.g. ws://127.0.0.1:9001/feed")
    t.add_argument("topic")
    t.add_argument("--token", help="a token for the server's --token or --jwt-key")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(tail(args.url, args.topic, args.token))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
