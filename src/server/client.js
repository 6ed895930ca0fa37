/**
 * A client for ringwave's feed protocol 1.0 (docs/feed-protocol.md), for
 * browsers and Node.js 18+, with no runtime dependencies.
 *
 * A `Client` keeps a WebSocket to `/feed` open (or, read-only, one event
 * stream per topic): it reconnects with capped exponential backoff and full
 * jitter, subscribes every topic again from the last position it received,
 * asks for a snapshot where that position was lost, and refreshes its token
 * before it expires. Each `Subscription` is an async iterator of
 * publications, gaps and resubscriptions.
 */
/** The subprotocol that names the protocol's version. */
export const PROTOCOL = "ringwave.feed.v1";
/** An error the server answered (its `code` is in the protocol's table),
 * or a close that reconnecting would not mend. */
export class FeedError extends Error {
    code;
    topic;
    constructor(code, message, topic) {
        super(`${code}: ${message}`);
        this.code = code;
        this.topic = topic;
        this.name = "FeedError";
    }
}
/** A topic followed across reconnects. */
export class Subscription {
    client;
    topic;
    snapshot;
    /** The epoch and offset of the last publication received (or skipped). */
    epoch;
    offset = 0;
    events = [];
    waiters = [];
    ended = false;
    failure;
    /** @internal */ subscribedOnce = false;
    /** @internal */ stream;
    /** @internal */
    constructor(client, topic, snapshot) {
        this.client = client;
        this.topic = topic;
        this.snapshot = snapshot;
    }
    [Symbol.asyncIterator]() {
        return { next: () => this.next() };
    }
    /** The next event (an iterator's `next`). */
    next() {
        const event = this.events.shift();
        if (event !== undefined) {
            this.client.drained();
            return Promise.resolve({ value: event, done: false });
        }
        if (this.failure)
            return Promise.reject(this.failure);
        if (this.ended)
            return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.waiters.push([resolve, reject]));
    }
    /** Events held, not yet taken. */
    get backlog() {
        return this.events.length;
    }
    /** Stop following the topic; the iterator ends. */
    unsubscribe() {
        this.client.unsubscribe(this);
    }
    /** @internal */
    push(event) {
        const w = this.waiters.shift();
        if (w)
            w[0]({ value: event, done: false });
        else
            this.events.push(event);
    }
    /** @internal */
    end(error) {
        if (error)
            this.failure = error;
        this.ended = true;
        for (const [resolve, reject] of this.waiters.splice(0)) {
            if (error)
                reject(error);
            else
                resolve({ value: undefined, done: true });
        }
    }
    /** @internal The subscribe request for the current position. */
    request() {
        const req = { op: "subscribe", topic: this.topic, meta: true, gaps: true };
        if (this.epoch !== undefined)
            req.since = { epoch: this.epoch, offset: this.offset };
        if (this.snapshot)
            req.snapshot = true;
        return req;
    }
    /** @internal A publication, unless already received. */
    accept(p) {
        if (!p.snapshot) {
            if (p.epoch === this.epoch && p.offset !== 0 && p.offset <= this.offset)
                return;
            this.epoch = p.epoch;
            this.offset = p.offset;
        }
        this.push({ type: "publication", topic: this.topic, position: `${p.epoch}:${p.offset}`, ...p });
    }
}
/** The newest value per key of a topic, kept from its events (a snapshot
 * and the live publications after it). */
export class KeyedState {
    values = new Map();
    /** Take `event` into account; returns whether a value changed. */
    apply(event) {
        if (event.type !== "publication" || event.key === undefined)
            return false;
        const old = this.values.get(event.key);
        if (old && old.epoch === event.epoch && old.offset >= event.offset && !event.snapshot)
            return false;
        this.values.set(event.key, event);
        return true;
    }
    get(key) {
        return this.values.get(key)?.data;
    }
}
const FATAL = {
    1002: "protocol error",
    1007: "invalid payload",
    1009: "message too big",
    4003: "disconnected by the server",
};
const TOKEN_EXPIRED = 4001;
/** A connection to a ringwave feed that stays up. */
export class Client {
    url;
    state = "disconnected";
    /** Connections made so far (WebSocket), or streams opened (SSE). */
    connects = 0;
    /** Why the client stopped, if it stopped by itself. */
    error;
    subs = new Map();
    ws;
    closed = false;
    token;
    opts;
    resume;
    started = false;
    /** `url`: the feed's WebSocket URL, e.g. `ws://127.0.0.1:9001/feed`. */
    constructor(url, options = {}) {
        this.url = url;
        this.opts = {
            backoffBase: 500,
            backoffCap: 30_000,
            stableAfter: 10_000,
            refreshAt: 0.8,
            queueSize: 10_000,
            openTimeout: 10_000,
            transport: "websocket",
            ...options,
        };
        if (!(this.opts.backoffBase > 0 && this.opts.backoffCap >= this.opts.backoffBase)) {
            throw new RangeError("need 0 < backoffBase <= backoffCap");
        }
        if (!(this.opts.refreshAt > 0 && this.opts.refreshAt < 1)) {
            throw new RangeError("refreshAt is a fraction of the token's lifetime, in (0, 1)");
        }
        this.token = options.token;
    }
    /** Follow `topic`; with `snapshot`, the newest value of every key first,
     * and again whenever the position is lost. Connects on first use. */
    subscribe(topic, { snapshot = false } = {}) {
        if (this.subs.has(topic))
            throw new Error(`already subscribed to ${JSON.stringify(topic)}`);
        if (this.closed)
            throw new FeedError("closed", "the client is closed");
        const sub = new Subscription(this, topic, snapshot);
        this.subs.set(topic, sub);
        if (this.opts.transport === "sse") {
            void this.follow(sub);
        }
        else {
            if (this.ws?.readyState === 1)
                this.ws.send(JSON.stringify(sub.request()));
            this.start();
        }
        return sub;
    }
    /** Publish on `topic` (the server must allow it); throws while
     * disconnected: nothing is queued. */
    publish(topic, data, key) {
        if (this.ws?.readyState !== 1)
            throw new Error("not connected");
        this.ws.send(JSON.stringify(key === undefined ? { op: "publish", topic, data } : { op: "publish", topic, data, key }));
    }
    /** Close, and end every subscription's iterator. */
    close() {
        this.closed = true;
        this.ws?.close(1000);
        for (const sub of this.subs.values()) {
            sub.stream?.abort();
            sub.end();
        }
        this.subs.clear();
        this.resume?.();
        this.setState("closed");
    }
    /** @internal */
    unsubscribe(sub) {
        if (this.subs.get(sub.topic) === sub) {
            this.subs.delete(sub.topic);
            sub.stream?.abort();
            if (this.ws?.readyState === 1)
                this.ws.send(JSON.stringify({ op: "unsubscribe", topic: sub.topic }));
        }
        sub.end();
    }
    /** @internal A consumer took an event: resume reading once every
     * subscription is down to half its queue. */
    drained() {
        if (this.resume && [...this.subs.values()].every((s) => s.backlog <= this.opts.queueSize / 2)) {
            const r = this.resume;
            this.resume = undefined;
            r();
        }
    }
    behind() {
        return [...this.subs.values()].some((s) => s.backlog >= this.opts.queueSize);
    }
    setState(state) {
        if (state !== this.state) {
            this.state = state;
            this.opts.onState?.(state);
        }
    }
    stop(error) {
        this.error = error;
        this.closed = true;
        for (const sub of this.subs.values())
            sub.end(error);
        this.subs.clear();
        this.setState("closed");
    }
    async currentToken() {
        if (this.opts.getToken)
            this.token = await this.opts.getToken();
        return this.token;
    }
    delay(attempt) {
        return Math.random() * Math.min(this.opts.backoffCap, this.opts.backoffBase * 2 ** attempt);
    }
    start() {
        if (this.started)
            return;
        this.started = true;
        void this.run();
    }
    async run() {
        let attempt = 0;
        while (!this.closed) {
            if (this.behind())
                await new Promise((r) => (this.resume = r));
            if (this.closed)
                return;
            this.setState("connecting");
            const started = Date.now();
            let close;
            try {
                const token = await this.currentToken();
                close = await this.connectOnce(token);
            }
            catch (e) {
                close = { code: 1006, reason: String(e) };
            }
            this.ws = undefined;
            if (this.closed)
                return;
            this.setState("disconnected");
            if (FATAL[close.code])
                return this.stop(new FeedError("closed", `${close.code} ${FATAL[close.code]}: ${close.reason}`));
            if (close.code === TOKEN_EXPIRED && !this.opts.getToken)
                return this.stop(new FeedError("token_expired", close.reason || "no valid token"));
            if (close.code === 4000)
                continue; // stopped reading: resume at once
            if (Date.now() - started >= this.opts.stableAfter)
                attempt = 0;
            const wait = close.code === 1001 && close.reason.includes("lifetime") ? 0 : this.delay(attempt++);
            await sleep(wait);
        }
    }
    /** One connection, until it closes. */
    connectOnce(token) {
        const Ctor = this.opts.WebSocket ?? globalThis.WebSocket;
        if (!Ctor)
            throw new FeedError("no_websocket", "no WebSocket here: pass options.WebSocket");
        const url = new URL(this.url);
        if (token)
            url.searchParams.set("token", token);
        const ws = new Ctor(url.toString(), [PROTOCOL]);
        this.ws = ws;
        let refresh;
        let opened = false;
        return new Promise((resolve) => {
            let done = false;
            const finish = (code, reason) => {
                if (done)
                    return;
                done = true;
                clearTimeout(giveUp);
                if (refresh)
                    clearTimeout(refresh);
                resolve({ code, reason });
            };
            // A handshake that does not finish in time is given up.
            const giveUp = setTimeout(() => {
                if (!opened) {
                    ws.close();
                    finish(1006, "open timeout");
                }
            }, this.opts.openTimeout);
            ws.onopen = () => {
                opened = true;
                this.connects += 1;
                this.setState("connected");
                for (const sub of this.subs.values())
                    ws.send(JSON.stringify(sub.request()));
                if (this.opts.getToken && token)
                    refresh = this.scheduleRefresh(ws, token);
            };
            ws.onmessage = (m) => {
                if (typeof m.data !== "string")
                    return;
                let msg;
                try {
                    msg = JSON.parse(m.data);
                }
                catch {
                    return;
                }
                if (msg && typeof msg === "object")
                    this.dispatch(msg);
                if (this.behind() && ws.readyState === 1)
                    ws.close(4000, "consumer behind");
            };
            ws.onclose = (e) => finish(e.code, e.reason);
            // A connection that fails before it opens may report only the error.
            ws.onerror = () => {
                if (!opened)
                    finish(1006, "connection failed");
            };
        });
    }
    scheduleRefresh(ws, token) {
        const exp = expiry(token);
        if (exp === undefined)
            return undefined;
        const wait = Math.max(0, (exp * 1000 - Date.now()) * this.opts.refreshAt);
        return setTimeout(async () => {
            const next = await this.currentToken();
            if (next && ws.readyState === 1) {
                ws.send(JSON.stringify({ op: "auth", token: next }));
                this.scheduleRefresh(ws, next);
            }
        }, wait);
    }
    dispatch(msg) {
        const topic = typeof msg.topic === "string" ? msg.topic : undefined;
        const sub = topic === undefined ? undefined : this.subs.get(topic);
        switch (msg.event) {
            case undefined:
                sub?.accept({
                    data: typeof msg.data === "string" ? msg.data : JSON.stringify(msg.data),
                    epoch: String(msg.epoch ?? ""),
                    offset: Number(msg.offset ?? 0),
                    key: typeof msg.key === "string" ? msg.key : undefined,
                    snapshot: msg.snapshot === true,
                });
                return;
            case "subscribed":
                if (sub)
                    this.subscribed(sub, msg);
                return;
            case "gap":
                if (sub) {
                    if (typeof msg.to === "number")
                        sub.offset = Math.max(sub.offset, msg.to);
                    sub.push({ type: "gap", topic: sub.topic, dropped: Number(msg.dropped ?? 0), from: msg.from, to: msg.to });
                }
                return;
            case "error": {
                const err = new FeedError(String(msg.code), String(msg.error), topic);
                if (sub && ["not_entitled", "bad_topic", "too_many_subscriptions"].includes(err.code)) {
                    this.subs.delete(sub.topic);
                    sub.end(err);
                }
                return;
            }
        }
    }
    subscribed(sub, msg) {
        const recovered = msg.recovered === true;
        const wasRecovering = msg.was_recovering === true;
        const lost = wasRecovering && !recovered;
        const epoch = typeof msg.epoch === "string" ? msg.epoch : undefined;
        const offset = typeof msg.offset === "number" ? msg.offset : undefined;
        if (lost || sub.epoch === undefined) {
            sub.epoch = epoch;
            sub.offset = offset ?? 0;
        }
        if (sub.subscribedOnce)
            sub.push({ type: "resubscribed", topic: sub.topic, recovered, wasRecovering, lost, epoch, offset });
        sub.subscribedOnce = true;
    }
    /** The read-only transport: one event stream per topic, recovering
     * from its last id (`Last-Event-ID`) on every reconnect. */
    async follow(sub) {
        const doFetch = this.opts.fetch ?? globalThis.fetch;
        const base = new URL(this.url);
        base.protocol = base.protocol === "wss:" ? "https:" : "http:";
        const url = new URL(`/sse/${encodeURIComponent(sub.topic)}`, base);
        let attempt = 0;
        while (!this.closed && this.subs.get(sub.topic) === sub) {
            const started = Date.now();
            const headers = { accept: "text/event-stream" };
            const token = await this.currentToken().catch(() => undefined);
            if (token)
                headers.authorization = `Bearer ${token}`;
            if (sub.epoch !== undefined)
                headers["last-event-id"] = `${sub.epoch}:${sub.offset}`;
            sub.stream = new AbortController();
            try {
                const res = await doFetch(url, { headers, signal: sub.stream.signal });
                if (res.status === 401 || res.status === 403) {
                    if (!this.opts.getToken)
                        return this.stop(new FeedError("refused", `HTTP ${res.status}: ${(await res.text()).trim()}`, sub.topic));
                }
                else if (res.ok && res.body) {
                    this.connects += 1;
                    this.setState("connected");
                    await this.readEvents(sub, res.body);
                }
            }
            catch {
                // a cut stream, or one aborted by close()
            }
            if (this.closed)
                return;
            this.setState("disconnected");
            if (Date.now() - started >= this.opts.stableAfter)
                attempt = 0;
            await sleep(this.delay(attempt++));
        }
    }
    async readEvents(sub, body) {
        const reader = body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        let first = true;
        for (;;) {
            const { value, done } = await reader.read();
            if (done)
                return;
            buf += decoder.decode(value, { stream: true });
            let end;
            while ((end = buf.indexOf("\n\n")) >= 0) {
                const block = buf.slice(0, end);
                buf = buf.slice(end + 2);
                first = this.sseBlock(sub, block, first);
            }
        }
    }
    /** One event-stream block; returns whether the stream's opening comment
     * is still to come. */
    sseBlock(sub, block, first) {
        let id;
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
            if (line.startsWith(": subscribed")) {
                const f = Object.fromEntries(line.slice(13).split(" ").map((kv) => kv.split("=")));
                const recovered = f.recovered === "true";
                const wasRecovering = sub.epoch !== undefined;
                const lost = wasRecovering && !recovered;
                if (lost)
                    sub.epoch = undefined;
                if (sub.subscribedOnce)
                    sub.push({ type: "resubscribed", topic: sub.topic, recovered, wasRecovering, lost, epoch: f.epoch, offset: f.offset === undefined ? undefined : Number(f.offset) });
                sub.subscribedOnce = true;
                first = false;
            }
            else if (line.startsWith("id:"))
                id = line.slice(3).trim();
            else if (line.startsWith("event:"))
                event = line.slice(6).trim();
            else if (line.startsWith("data:"))
                data.push(line.slice(5).replace(/^ /, ""));
        }
        const [epoch, offset] = id ? [id.split(":")[0], Number(id.split(":")[1])] : ["", 0];
        if (event === "gap" && data.length) {
            const g = JSON.parse(data.join("\n"));
            if (g.to !== undefined)
                sub.offset = Math.max(sub.offset, g.to);
            sub.push({ type: "gap", topic: sub.topic, dropped: g.dropped, from: g.from, to: g.to });
        }
        else if (data.length) {
            sub.accept({ data: data.join("\n"), epoch, offset, snapshot: false });
        }
        else if (id && sub.epoch === undefined) {
            // The stream's starting position (an id-only event).
            sub.epoch = epoch;
            sub.offset = offset;
        }
        return first;
    }
}
function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}
/** A JWT's `exp` in seconds (not verified: only to know when to refresh). */
function expiry(token) {
    const parts = token.split(".");
    if (parts.length !== 3)
        return undefined;
    try {
        const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
        const exp = JSON.parse(json).exp;
        return typeof exp === "number" ? exp : undefined;
    }
    catch {
        return undefined;
    }
}
