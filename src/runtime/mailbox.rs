//! Mailboxes between workers and from other threads: a bounded queue plus the
//! worker's waker. A full mailbox is back-pressure (`Err` to the sender),
//! never a silent drop.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::driver::Waker;

/// Messages a worker accepts from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Stop accepting, close every connection with 1001, exit when done or at
    /// the deadline.
    Shutdown,
}

/// One worker's inbox.
pub struct Mailbox {
    queue: Mutex<VecDeque<Control>>,
    capacity: usize,
    waker: Waker,
}

impl Mailbox {
    /// An inbox of `capacity` messages that wakes the worker through `waker`.
    pub fn new(capacity: usize, waker: Waker) -> Self {
        Mailbox {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
            waker,
        }
    }

    /// Deliver `msg`; `Err(msg)` if the mailbox is full.
    pub fn send(&self, msg: Control) -> Result<(), Control> {
        {
            let mut q = match self.queue.lock() {
                Ok(q) => q,
                Err(p) => p.into_inner(),
            };
            if q.len() >= self.capacity {
                return Err(msg);
            }
            q.push_back(msg);
        }
        self.waker.wake();
        Ok(())
    }

    /// Take everything queued.
    pub fn drain(&self, out: &mut Vec<Control>) {
        let mut q = match self.queue.lock() {
            Ok(q) => q,
            Err(p) => p.into_inner(),
        };
        out.extend(q.drain(..));
    }
}
