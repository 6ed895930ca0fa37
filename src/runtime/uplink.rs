//! The way out of the process for pub/sub: an [`Uplink`] (a broker bridge)
//! is handed every publication made on this node, whatever its source, and
//! told which topics have subscribers here, so that it can bring other
//! nodes' publications on those topics back in (through
//! [`Publisher::local`](super::Publisher::local), which does not hand them
//! out again).
//!
//! The loop calls it on worker threads, on the serving path: every method
//! returns at once, whatever the broker is doing.

use std::fmt;
use std::sync::Arc;

use crate::pubsub::Publication;

/// A bridge from this node's pub/sub to other nodes'.
pub trait Uplink: fmt::Debug + Send + Sync + 'static {
    /// A publication made on this node (a WebSocket client's, `POST
    /// /publish`, a `Publisher`'s, a handler's). Must not block: an uplink
    /// that cannot take it drops it and counts it.
    fn publish(&self, p: &Arc<Publication>);

    /// A worker has its first subscriber of `topic` (`subscribed`), or lost
    /// its last. Each worker reports its own changes, in order; the topic
    /// has subscribers on this node while more workers reported `true` than
    /// `false`.
    fn interest(&self, topic: &str, subscribed: bool);

    /// Its state and counts in the Prometheus text format (for `/metrics`).
    fn metrics(&self) -> String;

    /// The server stopped: let go of the broker.
    fn close(&self);
}
