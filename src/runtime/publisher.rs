//! [`Publisher`]: publishing from any thread, outside the workers, through
//! their mailboxes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::mailbox::{Control, Mailbox, Refused};
use super::uplink::Uplink;
use crate::proto::MessageKind;
use crate::pubsub::history::History;
use crate::pubsub::Publication;

/// Why a [`Publisher::publish`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The server stopped; nothing more is delivered.
    Stopped,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Publishes from any thread to every worker's subscribers. Cloneable.
///
/// A full worker mailbox is back-pressure: `publish` waits until that worker
/// takes the publication, so nothing is dropped on the way.
#[derive(Clone)]
pub struct Publisher {
    mailboxes: Arc<[Arc<Mailbox>]>,
    uplink: Option<Arc<dyn Uplink>>,
    history: Option<Arc<History>>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("workers", &self.mailboxes.len())
            .field("uplink", &self.uplink.is_some())
            .finish()
    }
}

impl Publisher {
    pub(crate) fn new(
        mailboxes: Arc<[Arc<Mailbox>]>,
        uplink: Option<Arc<dyn Uplink>>,
        history: Option<Arc<History>>,
    ) -> Self {
        Publisher {
            mailboxes,
            uplink,
            history,
        }
    }

    /// The same workers without the uplink: what it publishes reaches this
    /// node's subscribers only. For the uplink itself, which brings other
    /// nodes' publications in and must not hand them out again.
    pub fn local(&self) -> Publisher {
        Publisher {
            mailboxes: self.mailboxes.clone(),
            uplink: None,
            history: self.history.clone(),
        }
    }

    /// Publish a text message on `topic`.
    pub fn publish_text(&self, topic: &str, text: &str) -> Result<(), PublishError> {
        self.publish(Publication::new(
            topic,
            None,
            MessageKind::Text,
            text.as_bytes(),
        ))
    }

    /// Publish a binary message on `topic`.
    pub fn publish_binary(&self, topic: &str, data: &[u8]) -> Result<(), PublishError> {
        self.publish(Publication::new(topic, None, MessageKind::Binary, data))
    }

    /// Publish a prepared publication (see [`Publication::new`] for keyed
    /// conflation). On a topic with history it takes the topic's next offset
    /// here, so publishers on any thread share one sequence.
    pub fn publish(&self, p: Arc<Publication>) -> Result<(), PublishError> {
        let p = match (&self.history, &self.uplink) {
            (Some(h), Some(u)) if h.relays(p.topic()) => {
                // The broker numbers it; it comes back through the uplink.
                u.publish(&p);
                return Ok(());
            }
            (Some(h), _) => h.record(p, Instant::now()),
            (None, _) => p,
        };
        if let Some(u) = &self.uplink {
            u.publish(&p);
        }
        self.hand_out(p)
    }

    /// A publication the broker numbered (its position set): into its
    /// topic's log, then to every worker; a redelivery is dropped.
    pub(crate) fn relay(&self, p: Arc<Publication>) -> Result<(), PublishError> {
        match &self.history {
            Some(h) => match h.adopt(p, Instant::now()) {
                Some(p) => self.hand_out(p),
                None => Ok(()),
            },
            None => self.hand_out(p),
        }
    }

    fn hand_out(&self, p: Arc<Publication>) -> Result<(), PublishError> {
        for m in self.mailboxes.iter() {
            let mut msg = Control::Publish(p.clone());
            loop {
                match m.send(msg) {
                    Ok(()) => break,
                    Err(Refused::Closed(_)) => return Err(PublishError::Stopped),
                    Err(Refused::Full(back)) => {
                        msg = back;
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
        }
        Ok(())
    }
}
