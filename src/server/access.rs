//! Who may do what from outside: the rules the route table and the
//! built-in apps both apply to a request.
//!
//! - A credential, when the server is given one (`--token`, `--jwt-key`),
//!   on every route but `/healthz`: the shared token (and the publish
//!   token) admits its holder to every topic, a valid JWT to the topics its
//!   claims list.
//! - `/metrics` has a guard of its own when `--metrics-token` is set.
//! - Publishing needs `--allow-client-publish`, the publish token, or a JWT
//!   whose claims list the topic.
//! - A browser's `Origin`, with `--allowed-origins`, on every route that
//!   acts or streams (upgrades, event streams, publishing).

use std::sync::Arc;
use std::time::SystemTime;

use crate::proto::http::{same_secret, HttpRequest, Response};

use super::jwt::{Identity, JwtKeys};
use super::Config;

/// Which built-in routes a server serves beside its handler's WebSockets
/// and `/healthz`. A library server serves none of them unless asked
/// ([`BuiltinRoutes::NONE`] is the default); the `ringwave` binary serves
/// them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinRoutes {
    /// `GET /`: the demo page.
    pub page: bool,
    /// `GET /sse/<topic>`: any topic as Server-Sent Events.
    pub events: bool,
    /// `POST /publish/<topic>` (still only for clients allowed to publish).
    pub publish: bool,
    /// `GET /metrics`: the Prometheus text.
    pub metrics: bool,
}

impl BuiltinRoutes {
    /// None: the handler's WebSockets (and the feed, where
    /// [`Config::feed_path`] puts it) and `/healthz` only.
    pub const NONE: BuiltinRoutes = BuiltinRoutes {
        page: false,
        events: false,
        publish: false,
        metrics: false,
    };
    /// All of them, as the `ringwave` binary serves.
    pub const ALL: BuiltinRoutes = BuiltinRoutes {
        page: true,
        events: true,
        publish: true,
        metrics: true,
    };
}

impl Default for BuiltinRoutes {
    fn default() -> Self {
        BuiltinRoutes::NONE
    }
}

/// Who may publish from outside (`POST /publish/<topic>`, the feed's
/// `publish` op) without a JWT that lists the topic.
#[derive(Debug, Clone)]
pub(super) struct PublishRule {
    pub allow_all: bool,
    pub token: Option<String>,
}

impl PublishRule {
    pub(super) fn allows(&self, http: &HttpRequest) -> bool {
        self.allow_all
            || self
                .token
                .as_deref()
                .is_some_and(|t| http.presents_token(t))
    }
}

/// Who made a request, once admitted.
#[derive(Debug, Clone)]
pub(super) enum Caller {
    /// No credential is required, or it presented the shared token: no
    /// limit on topics.
    Anyone,
    /// A valid JWT's holder: its claims limit the topics.
    Holder(Identity),
    /// A `/feed` client admitted without a token: it may only send one
    /// (`{"op":"auth"}`), within the handshake timeout.
    Pending,
}

impl Caller {
    pub(super) fn identity(&self) -> Option<&Identity> {
        match self {
            Caller::Anyone | Caller::Pending => None,
            Caller::Holder(id) => Some(id),
        }
    }
}

/// The application's own say on subscriptions made through the built-in
/// routes (the feed's `subscribe`, `GET /sse/<topic>`), asked once a
/// token's claims allow the topic: given who the token names (`None`
/// without one) and the topic, `Err(reason)` refuses. The feed answers the
/// refusal as an error event naming the topic, an event stream as a 403
/// with the reason.
#[derive(Clone)]
pub struct SubscribeGuard(Arc<GuardFn>);

type GuardFn = dyn Fn(Option<&Identity>, &str) -> Result<(), String> + Send + Sync;

impl SubscribeGuard {
    /// A guard that asks `f`.
    pub fn new(
        f: impl Fn(Option<&Identity>, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> SubscribeGuard {
        SubscribeGuard(Arc::new(f))
    }
}

impl std::fmt::Debug for SubscribeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscribeGuard(..)")
    }
}

/// The access rules of one server.
#[derive(Debug, Clone)]
pub(super) struct Access {
    token: Option<String>,
    jwt: Option<Arc<JwtKeys>>,
    metrics_token: Option<String>,
    origins: Option<Vec<String>>,
    pub(super) publish: PublishRule,
    guard: Option<SubscribeGuard>,
}

/// A 401 that says which scheme to use (RFC 6750 §3).
fn unauthorized(why: &str) -> Response {
    Response::text(401, format!("{why}\n")).header("WWW-Authenticate", "Bearer")
}

impl Access {
    pub(super) fn new(cfg: &Config) -> Access {
        Access {
            token: cfg.token.clone(),
            jwt: cfg.jwt.clone(),
            metrics_token: cfg.metrics_token.clone(),
            origins: cfg.allowed_origins.clone(),
            publish: PublishRule {
                allow_all: cfg.allow_client_publish,
                token: cfg.publish_token.clone(),
            },
            guard: cfg.subscribe_guard.clone(),
        }
    }

    /// No credential, origin or guard: only who may publish.
    pub(super) fn publishing(publish: PublishRule) -> Access {
        Access {
            token: None,
            jwt: None,
            metrics_token: None,
            origins: None,
            publish,
            guard: None,
        }
    }

    /// The keys tokens are verified with, if any.
    pub(super) fn keys(&self) -> Option<&JwtKeys> {
        self.jwt.as_deref()
    }

    /// Whether any route needs a credential.
    pub(super) fn guarded(&self) -> bool {
        self.token.is_some() || self.jwt.is_some()
    }

    /// The caller of a guarded route at `now`, or the 401 that refuses it.
    pub(super) fn caller(&self, http: &HttpRequest, now: SystemTime) -> Result<Caller, Response> {
        if !self.guarded() {
            return Ok(Caller::Anyone);
        }
        let mut refusal = None;
        for t in http.tokens() {
            let shared = [&self.token, &self.publish.token];
            if shared
                .iter()
                .any(|s| s.as_deref().is_some_and(|s| same_secret(&t, s)))
            {
                return Ok(Caller::Anyone);
            }
            if let Some(keys) = &self.jwt {
                match keys.verify(&t, now) {
                    Ok(id) => return Ok(Caller::Holder(id)),
                    Err(e) => refusal = Some(format!("token refused: {e}")),
                }
            }
        }
        Err(unauthorized(refusal.as_deref().unwrap_or(
            "a token is required: send Authorization: Bearer <token>, or ?token=<token> on the URL",
        )))
    }

    /// Whether a `/feed` upgrade without any token may send one in band:
    /// only where tokens are JWTs (a shared token is not sent twice).
    pub(super) fn awaits_token(&self, http: &HttpRequest) -> bool {
        self.jwt.is_some() && http.tokens().next().is_none()
    }

    /// `/metrics`: its own token when set, else as any guarded route.
    pub(super) fn metrics(&self, http: &HttpRequest, now: SystemTime) -> Result<(), Response> {
        match &self.metrics_token {
            Some(t) if http.presents_token(t) => Ok(()),
            Some(_) => Err(unauthorized("/metrics needs the --metrics-token")),
            None => self.caller(http, now).map(|_| ()),
        }
    }

    /// `--allowed-origins`: a browser's `Origin` must be listed (requests
    /// without one, from non-browser clients, pass). The refusal is a 403.
    pub(super) fn origin(&self, origin: Option<&str>) -> Result<(), String> {
        let (Some(allowed), Some(origin)) = (&self.origins, origin) else {
            return Ok(());
        };
        if allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
        {
            return Ok(());
        }
        Err(format!("origin {origin} is not allowed"))
    }

    /// Whether who `identity` names (`None`: no token, or the shared one)
    /// may subscribe to `topic`: the token's claims, then the
    /// application's [`SubscribeGuard`]; the refusal says why.
    pub(super) fn may_subscribe(
        &self,
        identity: Option<&Identity>,
        topic: &str,
    ) -> Result<(), String> {
        if identity.is_some_and(|i| !i.may_subscribe(topic)) {
            return Err(format!(
                "not entitled to topic {topic:?}: the token's topics.subscribe does not list it"
            ));
        }
        match &self.guard {
            Some(SubscribeGuard(f)) => f(identity, topic),
            None => Ok(()),
        }
    }

    /// Whether a client may publish on `topic`: by the publish rule
    /// (`by_rule`, as [`PublishRule::allows`] found it for its request), or
    /// by its token's claims.
    pub(super) fn may_publish(by_rule: bool, identity: Option<&Identity>, topic: &str) -> bool {
        by_rule || identity.is_some_and(|i| i.may_publish(topic))
    }
}
