//! What can change while the server runs: [`Live`].

use std::collections::HashMap;

use crate::proto::Limits;
use crate::pubsub::{HistoryConfig, Policy};

/// What can change while the server runs ([`Running::reconfigure`]): the
/// engine's limits and slow-consumer policies, and how much history the
/// topics that keep it hold. Everything else in [`EngineConfig`](super::app::EngineConfig) is fixed
/// at start.
///
/// [`Running::reconfigure`]: super::Running::reconfigure
#[derive(Debug, Clone)]
pub struct Live {
    /// Protocol limits: for connections and requests that start after the
    /// change (an open WebSocket keeps the limits it was opened with).
    pub limits: Limits,
    /// Unsent bytes per connection past which sends are refused: every
    /// connection, from the next send.
    pub max_buffered: usize,
    /// Messages a client may send per second (0: no limit): every
    /// connection, from its next message.
    pub max_message_rate: u32,
    /// Connections per process (0: no limit): from the next accept.
    pub max_connections: usize,
    /// The default slow-consumer policy and the per-topic ones: every
    /// topic, from its next publication.
    pub slow_consumer: Policy,
    /// Per-topic overrides of `slow_consumer`.
    pub topic_policies: HashMap<String, Policy>,
    /// New amounts of history for the topics that keep it (see
    /// [`History::set_retention`](crate::pubsub::history::History::set_retention)); `None` leaves them as they are.
    pub history: Option<HistoryConfig>,
}
