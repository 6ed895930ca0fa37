"""The client: one WebSocket to ``/feed``, kept open, and its subscriptions.

The rules it follows are those of docs/feed-protocol.md, "How a client
should behave": reconnect with capped exponential backoff and full jitter,
subscribe again from the last position received, take a snapshot where the
position was lost, refresh the token before it expires.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Dict, Optional, Union

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

PROTOCOL = "ringwave.feed.v1"
"""The subprotocol that names the protocol's version."""

log = logging.getLogger("ringwave_client")

# Closes that a new connection would only repeat (docs/feed-protocol.md,
# "Close codes"): the client stops and says why.
_FATAL = {
    1002: "protocol error",
    1007: "invalid payload",
    1009: "message too big",
    4003: "disconnected by the server",
}
_TOKEN_EXPIRED = 4001


@dataclass(frozen=True)
class Publication:
    """One publication on a subscribed topic, with its position."""

    topic: str
    data: str
    epoch: str
    offset: int
    key: Optional[str] = None
    snapshot: bool = False
    """Sent as part of a snapshot (the newest value of its key)."""

    @property
    def position(self) -> str:
        """``EPOCH:OFFSET``, as in SSE ids."""
        return f"{self.epoch}:{self.offset}"


@dataclass(frozen=True)
class Gap:
    """Publications the server skipped for this subscriber (the topic's
    ``drop`` policy, while it was behind)."""

    topic: str
    dropped: int
    from_offset: Optional[int]
    to_offset: Optional[int]


@dataclass(frozen=True)
class Resubscribed:
    """The topic was subscribed again after a reconnect."""

    topic: str
    recovered: bool
    """Every publication since the last one received follows: none lost."""
    was_recovering: bool
    epoch: Optional[str]
    offset: Optional[int]

    @property
    def lost(self) -> bool:
        """The position could not be recovered (the server restarted, or
        the history no longer holds it): publications may have been
        missed. With ``snapshot=True`` the newest value of every key comes
        next."""
        return self.was_recovering and not self.recovered


Event = Union[Publication, Gap, Resubscribed]


class FeedError(Exception):
    """An error the server answered (its ``code`` is in the protocol's
    table), or a close that reconnecting would not mend."""

    def __init__(self, code: str, message: str, topic: Optional[str] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.topic = topic


_END = object()


class Subscription:
    """A topic followed across reconnects: an async iterator of
    :class:`Publication`, :class:`Gap` and :class:`Resubscribed`.

    Its queue is bounded: a consumer that falls behind stops the client
    reading, and the server's slow-consumer policy applies."""

    def __init__(self, client: "Client", topic: str, snapshot: bool, queue_size: int):
        self.topic = topic
        self.snapshot = snapshot
        self.epoch: Optional[str] = None
        """The epoch of the last publication received."""
        self.offset: int = 0
        """The offset of the last publication received (or skipped)."""
        self._client = client
        self._queue: "asyncio.Queue[object]" = asyncio.Queue(maxsize=queue_size)
        self._subscribed_once = False

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        if isinstance(item, FeedError):
            raise item
        return item  # type: ignore[return-value]

    async def unsubscribe(self) -> None:
        """Stop following the topic; the iterator ends."""
        await self._client._unsubscribe(self)

    def _request(self) -> dict:
        req: dict = {"op": "subscribe", "topic": self.topic, "meta": True, "gaps": True}
        if self.epoch is not None:
            req["since"] = {"epoch": self.epoch, "offset": self.offset}
        if self.snapshot:
            req["snapshot"] = True
        return req


TokenSource = Callable[[], Awaitable[str]]


class Client:
    """A connection to a ringwave feed that stays up.

    ``url`` is the feed's WebSocket URL (``ws://host:9001/feed``).
    ``token`` is sent on every connect (``Authorization: Bearer``);
    ``get_token``, an async function, is asked for a new one before each
    connect and before the current one expires (at ``refresh_at`` of its
    lifetime), which is then sent in band. Backoff between attempts is a
    random time between 0 and ``min(backoff_cap, backoff_base * 2**n)``
    seconds, ``n`` counting the attempts since the last connection that
    stayed up ``stable_after`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        token: Optional[str] = None,
        get_token: Optional[TokenSource] = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        stable_after: float = 10.0,
        refresh_at: float = 0.8,
        queue_size: int = 10_000,
        on_state: Optional[Callable[[str], None]] = None,
    ):
        if backoff_base <= 0 or backoff_cap < backoff_base:
            raise ValueError("need 0 < backoff_base <= backoff_cap")
        if not 0 < refresh_at < 1:
            raise ValueError("refresh_at is a fraction of the token's lifetime, in (0, 1)")
        self.url = url
        self._token = token
        self._get_token = get_token
        self._base = backoff_base
        self._cap = backoff_cap
        self._stable_after = stable_after
        self._refresh_at = refresh_at
        self._queue_size = queue_size
        self._on_state = on_state
        self._subs: Dict[str, Subscription] = {}
        self._ws: Optional[ClientConnection] = None
        self._task: Optional[asyncio.Task] = None
        self._closed = False
        self.state = "disconnected"
        self.connects = 0
        """Connections made so far."""
        self.error: Optional[FeedError] = None
        """Why the client stopped, if it stopped by itself."""

    async def __aenter__(self) -> "Client":
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Connect in the background, and keep connected until closed."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def subscribe(self, topic: str, *, snapshot: bool = False) -> Subscription:
        """Follow ``topic``; with ``snapshot``, the newest value of every
        key first, and again whenever the position is lost."""
        if topic in self._subs:
            raise ValueError(f"already subscribed to {topic!r}")
        sub = Subscription(self, topic, snapshot, self._queue_size)
        self._subs[topic] = sub
        if self._ws is not None:
            asyncio.get_running_loop().create_task(self._send(sub._request()))
        return sub

    async def publish(self, topic: str, data: str, *, key: Optional[str] = None) -> None:
        """Publish on ``topic`` (the server must allow it). Raises
        ``ConnectionError`` while disconnected: nothing is queued."""
        msg: dict = {"op": "publish", "topic": topic, "data": data}
        if key is not None:
            msg["key"] = key
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(json.dumps(msg))

    async def close(self) -> None:
        """Close the connection and end every subscription's iterator."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._end_all()
        self._set_state("closed")

    # The connection loop.

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self._on_state is not None:
                self._on_state(state)

    def _end_all(self, error: Optional[FeedError] = None) -> None:
        for sub in self._subs.values():
            _put_now(sub._queue, error if error is not None else _END)
        self._subs.clear()

    async def _current_token(self) -> Optional[str]:
        if self._get_token is not None:
            self._token = await self._get_token()
        return self._token

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            self._set_state("connecting")
            started = time.monotonic()
            code: Optional[int] = None
            reason = ""
            try:
                token = await self._current_token()
                headers = {"Authorization": f"Bearer {token}"} if token else None
                async with connect(
                    self.url,
                    subprotocols=[PROTOCOL],  # type: ignore[list-item]
                    additional_headers=headers,
                    max_size=None,
                    open_timeout=10,
                ) as ws:
                    await self._serve(ws, token)
                    code, reason = ws.close_code, ws.close_reason or ""
            except InvalidStatus as e:
                status = e.response.status_code
                log.warning("refused with HTTP %s", status)
                if status in (401, 403) and self._get_token is None:
                    return self._stop(FeedError("refused", f"HTTP {status}"))
            except (OSError, asyncio.TimeoutError, WebSocketException) as e:
                log.info("connection failed: %s", e)
                if self._ws is not None:
                    code, reason = self._ws.close_code, self._ws.close_reason or ""
            except Exception as e:  # a bug here: say so rather than stop unseen
                log.exception("ringwave client stopped")
                return self._stop(FeedError("client_error", repr(e)))
            finally:
                self._ws = None
            if self._closed:
                return
            self._set_state("disconnected")
            if code in _FATAL:
                return self._stop(FeedError("closed", f"{code} {_FATAL[code]}: {reason}"))
            if code == _TOKEN_EXPIRED and self._get_token is None:
                return self._stop(FeedError("token_expired", reason or "no valid token"))
            if time.monotonic() - started >= self._stable_after:
                attempt = 0
            if code == 1001 and "lifetime" in reason:
                delay = 0.0
            else:
                delay = random.uniform(0, min(self._cap, self._base * 2**attempt))
                attempt += 1
            await asyncio.sleep(delay)

    def _stop(self, error: FeedError) -> None:
        self.error = error
        self._closed = True
        self._end_all(error)
        self._set_state("closed")

    async def _serve(self, ws: ClientConnection, token: Optional[str]) -> None:
        self._ws = ws
        self.connects += 1
        self._set_state("connected")
        for sub in list(self._subs.values()):
            await ws.send(json.dumps(sub._request()))
        refresher = None
        if self._get_token is not None and token:
            refresher = asyncio.get_running_loop().create_task(self._refresh(ws, token))
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw) if isinstance(raw, str) else None
                except ValueError:
                    msg = None
                if isinstance(msg, dict):
                    await self._dispatch(msg)
                else:
                    log.warning("not a feed message (binary, or not a JSON object): %.80r", raw)
        finally:
            if refresher is not None:
                refresher.cancel()

    async def _refresh(self, ws: ClientConnection, token: str) -> None:
        """Send a new token in band before each one expires."""
        assert self._get_token is not None
        while True:
            exp = _expiry(token)
            if exp is None:
                return
            wait = max(0.0, (exp - time.time()) * self._refresh_at)
            await asyncio.sleep(wait)
            token = await self._get_token()
            self._token = token
            await ws.send(json.dumps({"op": "auth", "token": token}))

    async def _send(self, msg: dict) -> None:
        if self._ws is not None:
            try:
                await self._ws.send(json.dumps(msg))
            except WebSocketException:
                pass  # the reconnect sends it again

    async def _unsubscribe(self, sub: Subscription) -> None:
        if self._subs.get(sub.topic) is sub:
            del self._subs[sub.topic]
            await self._send({"op": "unsubscribe", "topic": sub.topic})
        _put_now(sub._queue, _END)

    async def _dispatch(self, msg: dict) -> None:
        event = msg.get("event")
        if event is None:
            return await self._publication(msg)
        topic = msg.get("topic")
        sub = self._subs.get(topic) if isinstance(topic, str) else None
        if event == "subscribed" and sub is not None:
            lost = msg.get("was_recovering") and not msg.get("recovered")
            if lost or sub.epoch is None:
                # From here on: the topic's position now.
                sub.epoch = msg.get("epoch")
                sub.offset = msg.get("offset", 0)
            if sub._subscribed_once:
                await sub._queue.put(
                    Resubscribed(
                        topic=sub.topic,
                        recovered=bool(msg.get("recovered")),
                        was_recovering=bool(msg.get("was_recovering")),
                        epoch=msg.get("epoch"),
                        offset=msg.get("offset"),
                    )
                )
            sub._subscribed_once = True
        elif event == "gap" and sub is not None:
            to = msg.get("to")
            if isinstance(to, int):
                sub.offset = max(sub.offset, to)
            await sub._queue.put(
                Gap(sub.topic, int(msg.get("dropped", 0)), msg.get("from"), to)
            )
        elif event == "error":
            err = FeedError(str(msg.get("code")), str(msg.get("error")), topic)
            if sub is not None and err.code in ("not_entitled", "bad_topic", "too_many_subscriptions"):
                del self._subs[sub.topic]
                await sub._queue.put(err)
            else:
                log.warning("server error: %s", err)

    async def _publication(self, msg: dict) -> None:
        sub = self._subs.get(msg.get("topic", ""))
        if sub is None:
            return
        epoch, offset = msg.get("epoch"), int(msg.get("offset", 0))
        snapshot = bool(msg.get("snapshot"))
        if not snapshot:
            if epoch == sub.epoch and offset <= sub.offset and offset != 0:
                return  # already received: never twice
            sub.epoch, sub.offset = epoch, offset
        await sub._queue.put(
            Publication(
                topic=sub.topic,
                data=msg.get("data", ""),
                epoch=epoch or "",
                offset=offset,
                key=msg.get("key"),
                snapshot=snapshot,
            )
        )


def _put_now(queue: "asyncio.Queue[object]", item: object) -> None:
    """Put an end marker even into a full queue (dropping the oldest)."""
    while True:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


def _expiry(token: str) -> Optional[float]:
    """A JWT's ``exp`` (not verified: only to know when to refresh it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        exp = json.loads(payload).get("exp")
    except (ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, (int, float)) else None
