"""An asyncio client for ringwave's feed protocol 1.0 (docs/feed-protocol.md).

A :class:`Client` holds one WebSocket to ``/feed`` and keeps it: it
reconnects with capped exponential backoff and full jitter, subscribes
every topic again from the last position it delivered, asks for a snapshot
where that position was lost, and refreshes its token before it expires.
Each :class:`Subscription` is an async iterator of :class:`Publication`,
:class:`Gap` and :class:`Resubscribed` events.
"""

from .client import (
    PROTOCOL,
    Client,
    FeedError,
    Gap,
    Publication,
    Resubscribed,
    Subscription,
)

__all__ = [
    "PROTOCOL",
    "Client",
    "FeedError",
    "Gap",
    "Publication",
    "Resubscribed",
    "Subscription",
]
