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

/** One publication on a subscribed topic, with its position. */
export interface Publication {
  type: "publication";
  topic: string;
  data: string;
  epoch: string;
  offset: number;
  key?: string;
  /** Sent as part of a snapshot (the newest value of its key). */
  snapshot: boolean;
  /** `EPOCH:OFFSET`, as in SSE ids. */
  position: string;
}

/** Publications the server skipped for this subscriber while it was
 * behind (the topic's `drop` policy). */
export interface Gap {
  type: "gap";
  topic: string;
  dropped: number;
  from?: number;
  to?: number;
}

/** The topic was subscribed again after a reconnect. */
export interface Resubscribed {
  type: "resubscribed";
  topic: string;
  /** Every publication since the last one received follows. */
  recovered: boolean;
  wasRecovering: boolean;
  /** The position was lost: publications may have been missed (with
   * `snapshot`, the newest value of every key comes next). */
  lost: boolean;
  epoch?: string;
  offset?: number;
}

export type FeedEvent = Publication | Gap | Resubscribed;

/** An error the server answered (its `code` is in the protocol's table),
 * or a close that reconnecting would not mend. */
export class FeedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly topic?: string,
  ) {
    super(`${code}: ${message}`);
    this.name = "FeedError";
  }
}

export type State = "connecting" | "connected" | "disconnected" | "closed";

/** The WebSocket constructor the client uses (the platform's by default). */
export type WebSocketLike = new (url: string, protocols?: string | string[]) => WebSocket;

export interface ClientOptions {
  /** A token sent on every connect (`?token=`, since browsers cannot set
   * headers on a WebSocket). */
  token?: string;
  /** Asked for a token before each connect and before the current one
   * expires (at `refreshAt` of its lifetime); a new one is sent in band. */
  getToken?: () => string | Promise<string>;
  /** Backoff before attempt n: random in [0, min(cap, base * 2^n)] ms. */
  backoffBase?: number;
  backoffCap?: number;
  /** A connection that stayed up this long (ms) resets the backoff. */
  stableAfter?: number;
  refreshAt?: number;
  /** Events a subscription holds before the client stops reading (it
   * closes, and recovers from its position once the consumer caught up). */
  queueSize?: number;
  /** How long (ms) a WebSocket handshake may take (10 s). */
  openTimeout?: number;
  /** `"sse"`: read-only, one event stream per topic (`/sse/<topic>`). */
  transport?: "websocket" | "sse";
  WebSocket?: WebSocketLike;
  fetch?: typeof fetch;
  onState?: (state: State) => void;
}

type Waiter = (r: IteratorResult<FeedEvent>) => void;

/** A topic followed across reconnects. */
export class Subscription implements AsyncIterable<FeedEvent> {
  /** The epoch and offset of the last publication received (or skipped). */
  epoch?: string;
  offset = 0;
  private readonly events: FeedEvent[] = [];
  private readonly waiters: Array<[Waiter, (e: unknown) => void]> = [];
  private ended = false;
  private failure?: FeedError;
  /** @internal */ subscribedOnce = false;
  /** @internal */ stream?: AbortController;

  /** @internal */
  constructor(
    private readonly client: Client,
    readonly topic: string,
    readonly snapshot: boolean,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<FeedEvent> {
    return { next: () => this.next() };
  }

  /** The next event (an iterator's `next`). */
  next(): Promise<IteratorResult<FeedEvent>> {
    const event = this.events.shift();
    if (event !== undefined) {
      this.client.drained();
      return Promise.resolve({ value: event, done: false });
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push([resolve, reject]));
  }

  /** Events held, not yet taken. */
  get backlog(): number {
    return this.events.length;
  }

  /** Stop following the topic; the iterator ends. */
  unsubscribe(): void {
    this.client.unsubscribe(this);
  }

  /** @internal */
  push(event: FeedEvent): void {
    const w = this.waiters.shift();
    if (w) w[0]({ value: event, done: false });
    else this.events.push(event);
  }

  /** @internal */
  end(error?: FeedError): void {
    if (error) this.failure = error;
    this.ended = true;
    for (const [resolve, reject] of this.waiters.splice(0)) {
      if (error) reject(error);
      else resolve({ value: undefined, done: true });
    }
  }

  /** @internal The subscribe request for the current position. */
  request(): Record<string, unknown> {
    const req: Record<string, unknown> = { op: "subscribe", topic: this.topic, meta: true, gaps: true };
    if (this.epoch !== undefined) req.since = { epoch: this.epoch, offset: this.offset };
    if (this.snapshot) req.snapshot = true;
    return req;
  }

  /** @internal A publication, unless already received. */
  accept(p: Omit<Publication, "type" | "position" | "topic">): void {
    if (!p.snapshot) {
      if (p.epoch === this.epoch && p.offset !== 0 && p.offset <= this.offset) return;
      this.epoch = p.epoch;
      this.offset = p.offset;
    }
    this.push({ type: "publication", topic: this.topic, position: `${p.epoch}:${p.offset}`, ...p });
  }
}

/** The newest value per key of a topic, kept from its events (a snapshot
 * and the live publications after it). */
export class KeyedState {
  readonly values = new Map<string, Publication>();

  /** Take `event` into account; returns whether a value changed. */
  apply(event: FeedEvent): boolean {
    if (event.type !== "publication" || event.key === undefined) return false;
    const old = this.values.get(event.key);
    if (old && old.epoch === event.epoch && old.offset >= event.offset && !event.snapshot) return false;
    this.values.set(event.key, event);
    return true;
  }

  get(key: string): string | undefined {
    return this.values.get(key)?.data;
  }
}

const FATAL: Record<number, string> = {
  1002: "protocol error",
  1007: "invalid payload",
  1009: "message too big",
  4003: "disconnected by the server",
};
const TOKEN_EXPIRED = 4001;

/** A connection to a ringwave feed that stays up. */
export class Client {
  state: State = "disconnected";
  /** Connections made so far (WebSocket), or streams opened (SSE). */
  connects = 0;
  /** Why the client stopped, if it stopped by itself. */
  error?: FeedError;
  private readonly subs = new Map<string, Subscription>();
  private ws?: WebSocket;
  private closed = false;
  private token?: string;
  private readonly opts: Required<Omit<ClientOptions, "token" | "getToken" | "onState" | "WebSocket" | "fetch">> &
    ClientOptions;
  private resume?: () => void;
  private started = false;

  /** `url`: the feed's WebSocket URL, e.g. `ws://127.0.0.1:9001/feed`. */
  constructor(
    readonly url: string,
    options: ClientOptions = {},
  ) {
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
  subscribe(topic: string, { snapshot = false }: { snapshot?: boolean } = {}): Subscription {
    if (this.subs.has(topic)) throw new Error(`already subscribed to ${JSON.stringify(topic)}`);
    if (this.closed) throw new FeedError("closed", "the client is closed");
    const sub = new Subscription(this, topic, snapshot);
    this.subs.set(topic, sub);
    if (this.opts.transport === "sse") {
      void this.follow(sub);
    } else {
      if (this.ws?.readyState === 1) this.ws.send(JSON.stringify(sub.request()));
      this.start();
    }
    return sub;
  }

  /** Publish on `topic` (the server must allow it); throws while
   * disconnected: nothing is queued. */
  publish(topic: string, data: string, key?: string): void {
    if (this.ws?.readyState !== 1) throw new Error("not connected");
    this.ws.send(JSON.stringify(key === undefined ? { op: "publish", topic, data } : { op: "publish", topic, data, key }));
  }

  /** Close, and end every subscription's iterator. */
  close(): void {
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
  unsubscribe(sub: Subscription): void {
    if (this.subs.get(sub.topic) === sub) {
      this.subs.delete(sub.topic);
      sub.stream?.abort();
      if (this.ws?.readyState === 1) this.ws.send(JSON.stringify({ op: "unsubscribe", topic: sub.topic }));
    }
    sub.end();
  }

  /** @internal A consumer took an event: resume reading once every
   * subscription is down to half its queue. */
  drained(): void {
    if (this.resume && [...this.subs.values()].every((s) => s.backlog <= this.opts.queueSize / 2)) {
      const r = this.resume;
      this.resume = undefined;
      r();
    }
  }

  private behind(): boolean {
    return [...this.subs.values()].some((s) => s.backlog >= this.opts.queueSize);
  }

  private setState(state: State): void {
    if (state !== this.state) {
      this.state = state;
      this.opts.onState?.(state);
    }
  }

  private stop(error: FeedError): void {
    this.error = error;
    this.closed = true;
    for (const sub of this.subs.values()) sub.end(error);
    this.subs.clear();
    this.setState("closed");
  }

  private async currentToken(): Promise<string | undefined> {
    if (this.opts.getToken) this.token = await this.opts.getToken();
    return this.token;
  }

  private delay(attempt: number): number {
    return Math.random() * Math.min(this.opts.backoffCap, this.opts.backoffBase * 2 ** attempt);
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    void this.run();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      if (this.behind()) await new Promise<void>((r) => (this.resume = r));
      if (this.closed) return;
      this.setState("connecting");
      const started = Date.now();
      let close: { code: number; reason: string };
      try {
        const token = await this.currentToken();
        close = await this.connectOnce(token);
      } catch (e) {
        close = { code: 1006, reason: String(e) };
      }
      this.ws = undefined;
      if (this.closed) return;
      this.setState("disconnected");
      if (FATAL[close.code]) return this.stop(new FeedError("closed", `${close.code} ${FATAL[close.code]}: ${close.reason}`));
      if (close.code === TOKEN_EXPIRED && !this.opts.getToken) return this.stop(new FeedError("token_expired", close.reason || "no valid token"));
      if (close.code === 4000) continue; // stopped reading: resume at once
      if (Date.now() - started >= this.opts.stableAfter) attempt = 0;
      const wait = close.code === 1001 && close.reason.includes("lifetime") ? 0 : this.delay(attempt++);
      await sleep(wait);
    }
  }

  /** One connection, until it closes. */
  private connectOnce(token?: string): Promise<{ code: number; reason: string }> {
    const Ctor = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket;
    if (!Ctor) throw new FeedError("no_websocket", "no WebSocket here: pass options.WebSocket");
    const url = new URL(this.url);
    if (token) url.searchParams.set("token", token);
    const ws = new Ctor(url.toString(), [PROTOCOL]);
    this.ws = ws;
    let refresh: ReturnType<typeof setTimeout> | undefined;
    let opened = false;
    return new Promise((resolve) => {
      let done = false;
      const finish = (code: number, reason: string) => {
        if (done) return;
        done = true;
        clearTimeout(giveUp);
        if (refresh) clearTimeout(refresh);
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
        for (const sub of this.subs.values()) ws.send(JSON.stringify(sub.request()));
        if (this.opts.getToken && token) refresh = this.scheduleRefresh(ws, token);
      };
      ws.onmessage = (m: MessageEvent) => {
        if (typeof m.data !== "string") return;
        let msg: unknown;
        try {
          msg = JSON.parse(m.data);
        } catch {
          return;
        }
        if (msg && typeof msg === "object") this.dispatch(msg as Record<string, unknown>);
        if (this.behind() && ws.readyState === 1) ws.close(4000, "consumer behind");
      };
      ws.onclose = (e: CloseEvent) => finish(e.code, e.reason);
      // A connection that fails before it opens may report only the error.
      ws.onerror = () => {
        if (!opened) finish(1006, "connection failed");
      };
    });
  }

  private scheduleRefresh(ws: WebSocket, token: string): ReturnType<typeof setTimeout> | undefined {
    const exp = expiry(token);
    if (exp === undefined) return undefined;
    const wait = Math.max(0, (exp * 1000 - Date.now()) * this.opts.refreshAt);
    return setTimeout(async () => {
      const next = await this.currentToken();
      if (next && ws.readyState === 1) {
        ws.send(JSON.stringify({ op: "auth", token: next }));
        this.scheduleRefresh(ws, next);
      }
    }, wait);
  }

  private dispatch(msg: Record<string, unknown>): void {
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
        if (sub) this.subscribed(sub, msg);
        return;
      case "gap":
        if (sub) {
          if (typeof msg.to === "number") sub.offset = Math.max(sub.offset, msg.to);
          sub.push({ type: "gap", topic: sub.topic, dropped: Number(msg.dropped ?? 0), from: msg.from as number | undefined, to: msg.to as number | undefined });
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

  private subscribed(sub: Subscription, msg: Record<string, unknown>): void {
    const recovered = msg.recovered === true;
    const wasRecovering = msg.was_recovering === true;
    const lost = wasRecovering && !recovered;
    const epoch = typeof msg.epoch === "string" ? msg.epoch : undefined;
    const offset = typeof msg.offset === "number" ? msg.offset : undefined;
    if (lost || sub.epoch === undefined) {
      sub.epoch = epoch;
      sub.offset = offset ?? 0;
    }
    if (sub.subscribedOnce) sub.push({ type: "resubscribed", topic: sub.topic, recovered, wasRecovering, lost, epoch, offset });
    sub.subscribedOnce = true;
  }

  /** The read-only transport: one event stream per topic, recovering
   * from its last id (`Last-Event-ID`) on every reconnect. */
  private async follow(sub: Subscription): Promise<void> {
    const doFetch = this.opts.fetch ?? globalThis.fetch;
    const base = new URL(this.url);
    base.protocol = base.protocol === "wss:" ? "https:" : "http:";
    const url = new URL(`/sse/${encodeURIComponent(sub.topic)}`, base);
    let attempt = 0;
    while (!this.closed && this.subs.get(sub.topic) === sub) {
      const started = Date.now();
      const headers: Record<string, string> = { accept: "text/event-stream" };
      const token = await this.currentToken().catch(() => undefined);
      if (token) headers.authorization = `Bearer ${token}`;
      if (sub.epoch !== undefined) headers["last-event-id"] = `${sub.epoch}:${sub.offset}`;
      sub.stream = new AbortController();
      try {
        const res = await doFetch(url, { headers, signal: sub.stream.signal });
        if (res.status === 401 || res.status === 403) {
          if (!this.opts.getToken) return this.stop(new FeedError("refused", `HTTP ${res.status}: ${(await res.text()).trim()}`, sub.topic));
        } else if (res.ok && res.body) {
          this.connects += 1;
          this.setState("connected");
          await this.readEvents(sub, res.body);
        }
      } catch {
        // a cut stream, or one aborted by close()
      }
      if (this.closed) return;
      this.setState("disconnected");
      if (Date.now() - started >= this.opts.stableAfter) attempt = 0;
      await sleep(this.delay(attempt++));
    }
  }

  private async readEvents(sub: Subscription, body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    let first = true;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        first = this.sseBlock(sub, block, first);
      }
    }
  }

  /** One event-stream block; returns whether the stream's opening comment
   * is still to come. */
  private sseBlock(sub: Subscription, block: string, first: boolean): boolean {
    let id: string | undefined;
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(": subscribed")) {
        const f = Object.fromEntries(line.slice(13).split(" ").map((kv) => kv.split("=")));
        const recovered = f.recovered === "true";
        const wasRecovering = sub.epoch !== undefined;
        const lost = wasRecovering && !recovered;
        if (lost) sub.epoch = undefined;
        if (sub.subscribedOnce) sub.push({ type: "resubscribed", topic: sub.topic, recovered, wasRecovering, lost, epoch: f.epoch, offset: f.offset === undefined ? undefined : Number(f.offset) });
        sub.subscribedOnce = true;
        first = false;
      } else if (line.startsWith("id:")) id = line.slice(3).trim();
      else if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    const [epoch, offset] = id ? [id.split(":")[0], Number(id.split(":")[1])] : ["", 0];
    if (event === "gap" && data.length) {
      const g = JSON.parse(data.join("\n")) as { dropped: number; from?: number; to?: number };
      if (g.to !== undefined) sub.offset = Math.max(sub.offset, g.to);
      sub.push({ type: "gap", topic: sub.topic, dropped: g.dropped, from: g.from, to: g.to });
    } else if (data.length) {
      sub.accept({ data: data.join("\n"), epoch, offset, snapshot: false });
    } else if (id && sub.epoch === undefined) {
      // The stream's starting position (an id-only event).
      sub.epoch = epoch;
      sub.offset = offset;
    }
    return first;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A JWT's `exp` in seconds (not verified: only to know when to refresh). */
function expiry(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}
