//! The other workers, as one worker sees them: its own mailbox (what they
//! send it, read in order) and theirs (what it sends them). A publication
//! for a full mailbox waits here, behind any held for that worker before
//! it, so each worker receives one worker's publications in order.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use super::mailbox::{Control, Mailbox, Refused};
use super::Shared;
use crate::pubsub::Publication;

pub(super) struct Peers {
    worker: u16,
    /// This worker's mailbox.
    mailbox: Arc<Mailbox>,
    /// Messages taken from the mailbox (kept for the allocation).
    mail: Vec<Control>,
    /// Every worker's mailbox and counters, set once all have started.
    shared: Arc<OnceLock<Shared>>,
    /// Publications for a worker whose mailbox was full, in order.
    outbox: Vec<VecDeque<Arc<Publication>>>,
}

impl Peers {
    pub(super) fn new(worker: u16, mailbox: Arc<Mailbox>, shared: Arc<OnceLock<Shared>>) -> Peers {
        Peers {
            worker,
            mailbox,
            mail: Vec::new(),
            shared,
            outbox: Vec::new(),
        }
    }

    /// Everything this worker's mailbox holds, in order; hand the vector
    /// back with [`Peers::done_with`].
    pub(super) fn take_mail(&mut self) -> Vec<Control> {
        let mut mail = std::mem::take(&mut self.mail);
        self.mailbox.drain(&mut mail);
        mail
    }

    pub(super) fn done_with(&mut self, mut mail: Vec<Control>) {
        mail.clear();
        self.mail = mail;
    }

    /// Send `p` to every other worker: now, or after what waits for a
    /// full mailbox.
    pub(super) fn forward(&mut self, p: &Arc<Publication>) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        if self.outbox.len() < shared.mailboxes.len() {
            self.outbox
                .resize_with(shared.mailboxes.len(), VecDeque::new);
        }
        for (w, m) in shared.mailboxes.iter().enumerate() {
            if w == self.worker as usize {
                continue;
            }
            if !self.outbox[w].is_empty() {
                self.outbox[w].push_back(p.clone());
                continue;
            }
            match m.send(Control::Publish(p.clone())) {
                Ok(()) | Err(Refused::Closed(_)) => {}
                Err(Refused::Full(_)) => self.outbox[w].push_back(p.clone()),
            }
        }
    }

    /// Hand publications held for full mailboxes on, in order.
    pub(super) fn retry(&mut self) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        for (w, q) in self.outbox.iter_mut().enumerate() {
            while let Some(p) = q.pop_front() {
                match shared.mailboxes[w].send(Control::Publish(p)) {
                    Ok(()) => {}
                    Err(Refused::Closed(_)) => q.clear(),
                    Err(Refused::Full(Control::Publish(p))) => {
                        q.push_front(p);
                        break;
                    }
                    Err(Refused::Full(_)) => break,
                }
            }
        }
    }

    /// Publications wait for a full mailbox.
    pub(super) fn holding(&self) -> bool {
        self.outbox.iter().any(|q| !q.is_empty())
    }

    /// Every worker's mailboxes and counters, once all have started.
    pub(super) fn shared(&self) -> Option<&Shared> {
        self.shared.get()
    }

    /// Tests: what the runtime sets once every worker has started.
    #[cfg(test)]
    pub(super) fn share(&self, shared: Shared) -> bool {
        self.shared.set(shared).is_ok()
    }
}
