//! Mailboxes between workers and from other threads: a bounded queue plus the
//! worker's waker. A full mailbox is back-pressure (`Err` to the sender),
//! never a silent drop.
//!
//! The sender wakes the worker only when the queue goes from empty to
//! non-empty: the worker takes everything each time it is woken, so one wake
//! covers every message queued before it drains.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::driver::Waker;
use crate::pubsub::Publication;

/// Messages a worker accepts from outside.
#[derive(Debug, Clone)]
pub enum Control {
    /// Stop accepting, close every connection with 1001, exit when done or at
    /// the deadline.
    Shutdown,
    /// Deliver a publication to this worker's subscribers of its topic.
    Publish(Arc<Publication>),
    /// Close every WebSocket whose token names this subject (`sub`) with
    /// [`DISCONNECTED`](super::app::DISCONNECTED).
    Disconnect(Arc<str>),
    /// Take these limits and policies ([`Running::reconfigure`]).
    ///
    /// [`Running::reconfigure`]: super::Running::reconfigure
    Reconfigure(Arc<super::live::Live>),
}

/// Why a message was not queued; the message is handed back.
#[derive(Debug)]
pub enum Refused {
    /// The mailbox holds its capacity: try again later.
    Full(Control),
    /// The worker has exited.
    Closed(Control),
}

struct Queue {
    items: VecDeque<Control>,
    closed: bool,
}

/// One worker's inbox.
pub struct Mailbox {
    queue: Mutex<Queue>,
    capacity: usize,
    waker: Waker,
}

impl Mailbox {
    /// An inbox of `capacity` messages that wakes the worker through `waker`.
    pub fn new(capacity: usize, waker: Waker) -> Self {
        Mailbox {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
            }),
            capacity,
            waker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(q) => q,
            Err(p) => p.into_inner(),
        }
    }

    /// Deliver `msg`, or hand it back if the mailbox is full or closed.
    pub fn send(&self, msg: Control) -> Result<(), Refused> {
        let was_empty = {
            let mut q = self.lock();
            if q.closed {
                return Err(Refused::Closed(msg));
            }
            if q.items.len() >= self.capacity {
                return Err(Refused::Full(msg));
            }
            let was_empty = q.items.is_empty();
            q.items.push_back(msg);
            was_empty
        };
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    /// Take everything queued.
    pub fn drain(&self, out: &mut Vec<Control>) {
        out.extend(self.lock().items.drain(..));
    }

    /// Messages waiting now.
    pub fn depth(&self) -> usize {
        self.lock().items.len()
    }

    /// The worker is gone: refuse everything from now on.
    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Wake;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Count(AtomicU32);
    impl Wake for Count {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn full_is_refused_and_wakes_only_on_empty_to_non_empty() {
        let wakes = Arc::new(Count(AtomicU32::new(0)));
        let m = Mailbox::new(2, wakes.clone());
        assert!(m.send(Control::Shutdown).is_ok());
        assert!(m.send(Control::Shutdown).is_ok());
        assert!(matches!(m.send(Control::Shutdown), Err(Refused::Full(_))));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        let mut out = Vec::new();
        m.drain(&mut out);
        assert_eq!(out.len(), 2);
        assert!(m.send(Control::Shutdown).is_ok());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
        m.close();
        assert!(matches!(m.send(Control::Shutdown), Err(Refused::Closed(_))));
    }
}
