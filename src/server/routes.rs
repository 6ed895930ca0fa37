//! The route table: which session serves a request, in one place outside
//! the loop. Upgrades go to the feed app on its path and to the [`Handler`]
//! everywhere else; plain requests to the page, metrics, health, event
//! streams and publishing, by [`ROUTES`], and under `/api/` to the server
//! API ([`api`]).

use std::sync::Arc;
use std::time::SystemTime;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::proto::http::HttpRequest;
use crate::proto::ws::handshake::UpgradeRequest;
use crate::proto::CloseCode;
use crate::pubsub::{valid_topic, Position};
use crate::runtime::app::{App, Ends, RequestCx, Response, Route};
use crate::runtime::ws::{AppTag, ConnId, Msg, Ws};

use super::access::{Access, Caller};
use super::api;
use super::feed::Feed;
use super::{page, Config, Handler, Request, Upgrade};

/// Connections served by the application's [`Handler`].
const HANDLER: AppTag = AppTag(0);
/// Connections served by the built-in [`Feed`].
const FEED: AppTag = AppTag(1);

/// How a route's path is matched (on the path without its query).
#[derive(Debug, Clone, Copy)]
enum Path {
    Exact(&'static str),
    /// The rest after the prefix, percent-decoded, is the route's argument.
    Prefix(&'static str),
}

/// What a plain (non-upgrade) route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Page,
    /// The JavaScript client the page uses (public: no secret in it).
    Client,
    Metrics,
    Health,
    /// Server-Sent Events of the topic in the path.
    Events,
    /// Publish the body on the topic in the path.
    Publish,
}

/// Plain HTTP routes: path, whether it takes `POST` (else `GET` and `HEAD`),
/// target. A path that matches with another method falls through to 404
/// (`GET`, `HEAD`) or 405.
const ROUTES: [(Path, bool, Target); 6] = [
    (Path::Exact("/"), false, Target::Page),
    (Path::Exact("/client.js"), false, Target::Client),
    (Path::Exact("/metrics"), false, Target::Metrics),
    (Path::Exact("/healthz"), false, Target::Health),
    (Path::Prefix("/sse/"), false, Target::Events),
    (Path::Prefix("/publish/"), true, Target::Publish),
];

const NOT_FOUND: &str = "not found: WebSocket upgrades are served on any path (the feed app on \
     /feed); the demo page is at /, Server-Sent Events at /sse/<topic>, metrics at /metrics\n";
const BAD_TOPIC: &[u8] = b"bad topic: 1 to 256 bytes without control characters\n";

/// The application the loop runs: the route table, the handler and the
/// built-in feed app.
pub(crate) struct Routes<H> {
    cfg: Arc<Config>,
    handler: H,
    feed: Feed,
    access: Access,
    /// The jitter of `max_lifetime`.
    rng: StdRng,
}

/// A whole answer, then close.
fn answer(status: u16, content_type: &str, body: &[u8]) -> Route {
    Route::Respond(Response::with_body(status, content_type, body))
}

/// A plain-text answer.
fn plain(status: u16, body: &[u8]) -> Route {
    Route::Respond(Response::text(status, body))
}

/// Where an event stream starts: the browser's `Last-Event-ID` on a
/// reconnect (ignored unless it is one of ours), else `?since=EPOCH:OFFSET`.
fn since(http: &HttpRequest) -> Result<Option<Position>, &'static str> {
    if let Some(id) = http.header("last-event-id").and_then(Position::parse_id) {
        return Ok(Some(id));
    }
    match http.query("since") {
        None => Ok(None),
        Some(s) => Position::parse_id(&s)
            .map(Some)
            .ok_or("since must be EPOCH:OFFSET, as in the events' id\n"),
    }
}

/// A percent-decoded path segment (invalid UTF-8 replaced).
fn decode_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl<H: Handler> Routes<H> {
    pub(crate) fn new(cfg: Arc<Config>, handler: H) -> Self {
        let access = Access::new(&cfg);
        Routes {
            feed: Feed::new(access.clone()),
            access,
            cfg,
            handler,
            rng: StdRng::from_os_rng(),
        }
    }

    /// When a connection of `caller` opened at `now` ends: when its token
    /// expires (for one still to send its token, at the handshake timeout),
    /// and at the end of its lifetime (less up to a tenth, so connections
    /// opened together do not all end together).
    fn ends(&mut self, caller: &Caller, now: SystemTime) -> Ends {
        Ends {
            token: match caller {
                Caller::Anyone => None,
                Caller::Holder(id) => Some(id.expires()),
                Caller::Pending => Some(now + self.cfg.handshake_timeout),
            },
            lifetime: self
                .cfg
                .max_lifetime
                .map(|d| now + d - d.mul_f64(self.rng.random::<f64>() * 0.1)),
        }
    }

    /// The caller of a route that acts or streams: its `Origin` allowed,
    /// its credential valid (see [`Access`]); else the refusal.
    fn admit(
        &self,
        http: &HttpRequest,
        origin: Option<&str>,
        cx: &RequestCx<'_>,
    ) -> Result<Caller, Response> {
        if let Err(why) = self.access.origin(origin) {
            return Err(Response::text(403, format!("{why}\n")));
        }
        self.access.caller(http, cx.now)
    }

    fn upgrade(&mut self, http: HttpRequest, path: &str, cx: &RequestCx<'_>) -> Route {
        let feed = self.cfg.feed_path.as_deref() == Some(path);
        let req = match UpgradeRequest::from_http(http) {
            Ok(req) => req,
            Err(e) => return Route::Respond(e.response()),
        };
        if cx.draining {
            return plain(503, b"the server is shutting down\n");
        }
        let caller = match self.admit(&req.http, req.origin.as_deref(), cx) {
            Ok(c) => c,
            // The feed's clients may send their token as a first message.
            Err(_) if feed && self.access.awaits_token(&req.http) => Caller::Pending,
            Err(refused) => return Route::Respond(refused),
        };
        // The handler admits every upgrade (its own auth, subprotocols), the
        // feed app's included; the feed then takes it without one.
        let ends = self.ends(&caller, cx.now);
        let r = Request::new(&req, cx, &caller);
        let decision = match self.handler.on_upgrade(&r) {
            Upgrade::Accept { .. } if feed => self.feed.on_upgrade(&r),
            d => d,
        };
        match decision {
            Upgrade::Reject { status, reason } => plain(status, format!("{reason}\n").as_bytes()),
            Upgrade::Accept { protocol } => Route::Upgrade {
                req,
                protocol,
                ends,
                identity: caller.identity().cloned().map(Box::new),
                tag: if feed { FEED } else { HANDLER },
            },
        }
    }

    /// `GET /sse/<topic>`: an event stream, for a caller entitled to the
    /// topic.
    fn events(&mut self, http: &HttpRequest, topic: String, cx: &RequestCx<'_>) -> Route {
        let caller = match self.admit(http, http.header("origin"), cx) {
            Ok(c) => c,
            Err(refused) => return Route::Respond(refused),
        };
        if !valid_topic(&topic) {
            return plain(400, BAD_TOPIC);
        }
        if let Err(why) = self.access.may_subscribe(caller.identity(), &topic) {
            return plain(403, format!("{why}\n").as_bytes());
        }
        match since(http) {
            Ok(since) => Route::EventStream {
                ends: self.ends(&caller, cx.now),
                topic,
                since,
            },
            Err(e) => plain(400, e.as_bytes()),
        }
    }

    fn publish(&self, http: &HttpRequest, topic: String, cx: &RequestCx<'_>) -> Route {
        const HINT: &str = "publishing is not allowed: start the server with \
             --allow-client-publish, send Authorization: Bearer <--publish-token>, or a \
             token whose topics.publish claim lists the topic\n";
        let caller = match self.admit(http, http.header("origin"), cx) {
            Ok(c) => c,
            Err(refused) => return Route::Respond(refused),
        };
        if !valid_topic(&topic) {
            return plain(400, BAD_TOPIC);
        }
        let by_rule = self.access.publish.allows(http);
        if !Access::may_publish(by_rule, caller.identity(), &topic) {
            return plain(403, HINT.as_bytes());
        }
        if http.header_values("transfer-encoding").next().is_some() {
            let msg = b"send the body with Content-Length (chunked bodies are not accepted)\n";
            return plain(411, msg);
        }
        let len = match http.content_length() {
            Ok(Some(len)) => len,
            Ok(None) => return plain(411, b"Content-Length required\n"),
            Err(e) => return plain(400, format!("{}\n", e.reason).as_bytes()),
        };
        let max = self.cfg.limits.max_message_size;
        if len > max {
            let msg = format!("body too large: {len} bytes, the limit is {max} (--max-message)\n");
            return plain(413, msg.as_bytes());
        }
        Route::Publish {
            topic,
            key: http.query("key"),
            len,
            continue_first: http.minor_version == 1 && http.has_token("expect", "100-continue"),
            batch: None,
        }
    }
}

impl<H: Handler> App for Routes<H> {
    fn route(&mut self, http: HttpRequest, cx: &RequestCx<'_>) -> Route {
        let path = http.path.split('?').next().unwrap_or("").to_string();
        if http.wants_websocket() {
            return self.upgrade(http, &path, cx);
        }
        if let Some(call) = path.strip_prefix("/api/") {
            return api::route(&self.cfg, &http, call, cx);
        }
        if self.cfg.feed_path.as_deref() == Some(path.as_str())
            && matches!(http.method.as_str(), "GET" | "HEAD")
        {
            let why = "this is the feed's WebSocket endpoint: connect with a WebSocket client \
                 (Upgrade: websocket); the protocol is in docs/feed-protocol.md\n";
            return Route::Respond(Response::text(426, why).header("Upgrade", "websocket"));
        }
        let post = http.method == "POST";
        let get = matches!(http.method.as_str(), "GET" | "HEAD");
        let found = ROUTES.iter().find_map(|&(p, takes_post, target)| {
            let arg = match p {
                Path::Exact(e) => (path == e).then(String::new),
                Path::Prefix(pre) => path.strip_prefix(pre).map(decode_path),
            }?;
            (if takes_post { post } else { get }).then_some((target, arg))
        });
        let Some((target, arg)) = found else {
            return if get {
                plain(404, NOT_FOUND.as_bytes())
            } else {
                plain(405, b"method not allowed\n")
            };
        };
        let on = self.cfg.routes;
        let served = match target {
            Target::Health => true,
            Target::Page | Target::Client => on.page,
            Target::Metrics => on.metrics,
            Target::Events => on.events,
            Target::Publish => on.publish,
        };
        if !served {
            return plain(404, b"not found\n");
        }
        match target {
            Target::Health if cx.draining => plain(503, b"draining\n"),
            Target::Health => plain(200, b"ok\n"),
            Target::Metrics => match self.access.metrics(&http, cx.now) {
                Ok(()) => answer(200, "text/plain; version=0.0.4", cx.metrics().as_bytes()),
                Err(r) => Route::Respond(r),
            },
            Target::Client => answer(
                200,
                "text/javascript; charset=utf-8",
                page::CLIENT_JS.as_bytes(),
            ),
            Target::Page => match self.admit(&http, http.header("origin"), cx) {
                Ok(_) => answer(200, "text/html; charset=utf-8", page::INDEX_HTML.as_bytes()),
                Err(refused) => Route::Respond(refused),
            },
            Target::Events => self.events(&http, arg, cx),
            Target::Publish => self.publish(&http, arg, cx),
        }
    }

    fn on_open(&mut self, ws: &mut Ws<'_>) {
        match ws.tag() {
            FEED => self.feed.on_open(ws),
            _ => self.handler.on_open(ws),
        }
    }

    fn on_message(&mut self, ws: &mut Ws<'_>, msg: Msg<'_>) {
        match ws.tag() {
            FEED => self.feed.on_message(ws, msg),
            _ => self.handler.on_message(ws, msg),
        }
    }

    fn on_drain(&mut self, ws: &mut Ws<'_>) {
        match ws.tag() {
            FEED => self.feed.on_drain(ws),
            _ => self.handler.on_drain(ws),
        }
    }

    fn on_close(&mut self, id: ConnId, tag: AppTag, code: CloseCode, reason: &str) {
        match tag {
            FEED => self.feed.on_close(id, code, reason),
            _ => self.handler.on_close(id, code, reason),
        }
    }
}
