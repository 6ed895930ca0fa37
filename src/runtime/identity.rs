//! [`Identity`]: who a connection's token names and the topics it entitles
//! them to. The runtime carries it on a WebSocket for the handler
//! ([`Ws::identity`](super::ws::Ws::identity)); `server::jwt` makes it from
//! a verified token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who a valid token names and what it entitles them to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    subject: Option<String>,
    expires: u64,
    subscribe: Vec<String>,
    publish: Vec<String>,
}

impl Identity {
    /// An identity for `subject` until `expires` (seconds since the Unix
    /// epoch), entitled to subscribe and publish on the topics the two
    /// lists name (a name, or a prefix ending in `*`).
    pub fn new(
        subject: Option<String>,
        expires: u64,
        subscribe: Vec<String>,
        publish: Vec<String>,
    ) -> Identity {
        Identity {
            subject,
            expires,
            subscribe,
            publish,
        }
    }

    /// The `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// When the token expires (its `exp`).
    pub fn expires(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires)
    }

    /// Whether `topics.subscribe` lists `topic` or a prefix of it ending in
    /// `*`.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        matches(&self.subscribe, topic)
    }

    /// Whether `topics.publish` lists `topic` or a prefix of it ending in
    /// `*`.
    pub fn may_publish(&self, topic: &str) -> bool {
        matches(&self.publish, topic)
    }
}

fn matches(patterns: &[String], topic: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => p == topic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subscribe: &[&str]) -> Identity {
        Identity::new(
            None,
            0,
            subscribe.iter().map(|s| s.to_string()).collect(),
            Vec::new(),
        )
    }

    #[test]
    fn topics_match_by_name_or_by_prefix_ending_in_a_star() {
        let id = identity(&["ticks", "fx.*"]);
        assert!(id.may_subscribe("ticks"));
        assert!(!id.may_subscribe("ticks2"));
        assert!(id.may_subscribe("fx.EURUSD"));
        assert!(id.may_subscribe("fx."));
        assert!(!id.may_subscribe("fx"));
        assert!(!id.may_publish("ticks"));
        assert!(identity(&["*"]).may_subscribe("anything"));
    }
}
