//! Replies straight from the receive buffer.
//!
//! When the driver lends the socket with the bytes it read
//! ([`crate::driver::Reply`]), a message sent during that read whose payload
//! lies in the read buffer (an echo: the payload just unmasked in place) is
//! not copied into the connection's output. Its header is made here and the
//! payload is remembered as a range of the buffer, at the place in the
//! output it would have had; at the end of the read, the output and these
//! messages go out interleaved in that order as one vectored write. A lone
//! message with nothing else to send goes out as one run of the buffer, its
//! header written in front of its payload over the frame header consumed
//! there, so a driver can send it from where it lies without a copy.
//! Whatever the socket does not take is copied into the output then, in
//! order, and sent the usual way; the buffer is not written after the
//! reply (see [`crate::driver::Reply`]).
//!
//! The order of bytes on the wire is the order of the calls, whatever mixes
//! with the replies (a pong for a ping in the same read, a close frame, a
//! message sent from elsewhere). Only a plaintext connection's own socket
//! writes this way: under TLS the buffer is plaintext, on an HTTP/2 stream
//! the bytes belong in DATA frames.

use std::io::IoSlice;
use std::ops::Range;

use crate::driver::{offsets_in, Reply};
use crate::proto::ws::frame::MAX_HEADER_LEN;
use crate::proto::{Conn, MessageKind, SendError, Sender};

/// Most replies held for one read; more are queued the usual way.
const MAX_REPLIES: usize = 16;

/// One message to send from the buffer.
struct Held {
    /// The connection's unsent output length when it was sent: it goes out
    /// after those bytes and before the ones queued after it.
    at: usize,
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    /// Its payload, as a range of the lent buffer.
    payload: Range<usize>,
}

/// The messages a read's callbacks sent from its buffer (one per worker,
/// reused from read to read).
#[derive(Default)]
pub(crate) struct Replies {
    /// The lent buffer's addresses.
    lent: Range<usize>,
    held: Vec<Held>,
    /// Header and payload bytes held.
    bytes: usize,
}

impl Replies {
    /// A read's callbacks may send from `buf` from now on.
    pub(super) fn lend(&mut self, buf: &[u8]) {
        let r = buf.as_ptr_range();
        self.lent = r.start as usize..r.end as usize;
        self.held.clear();
        self.bytes = 0;
    }

    /// Bytes held to be sent (they count as the connection's unsent
    /// bytes).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Send a whole message: held, when its payload lies in the lent buffer
    /// and the connection sends it as it is; queued by `sender` otherwise.
    pub(super) fn send(
        &mut self,
        sender: &mut Sender<'_>,
        kind: MessageKind,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if self.held.len() < MAX_REPLIES {
            if let Some(range) = offsets_in(&self.lent, payload) {
                if let Some(h) = sender.header_for(kind, payload.len())? {
                    let mut header = [0; MAX_HEADER_LEN];
                    let header_len = h.encode(&mut header);
                    self.bytes += header_len + payload.len();
                    self.held.push(Held {
                        at: sender.buffered_output(),
                        header,
                        header_len: header_len as u8,
                        payload: range,
                    });
                    return Ok(());
                }
            }
        }
        sender.send(kind, payload)
    }

    /// End of the read: write the connection's output and the held
    /// messages, interleaved in order, to the lent socket; what it does not
    /// take becomes the connection's output. `buf` is the lent buffer.
    /// Returns the bytes written.
    pub(super) fn write(
        &mut self,
        conn: &mut Conn,
        buf: &mut [u8],
        reply: &mut dyn Reply,
    ) -> usize {
        let mut written = 0;
        if self.held.is_empty() {
            return 0;
        }
        let held = &self.held;
        conn.rewrite_output(|out| {
            if out.is_empty() {
                if let Some(run) = in_front(held, buf) {
                    let run = &buf[run];
                    written = reply.reply(&[IoSlice::new(run)]).unwrap_or(0);
                    return run[written.min(run.len())..].to_vec();
                }
            }
            let mut slices = [IoSlice::new(&[]); 3 * MAX_REPLIES + 1];
            let mut n = 0;
            let mut from = 0;
            for h in held {
                let at = h.at.clamp(from, out.len());
                // `lend` took the range from this same buffer.
                let payload = &buf[h.payload.clone()];
                for s in [&out[from..at], &h.header[..h.header_len as usize], payload] {
                    if !s.is_empty() {
                        slices[n] = IoSlice::new(s);
                        n += 1;
                    }
                }
                from = at;
            }
            if from < out.len() {
                slices[n] = IoSlice::new(&out[from..]);
                n += 1;
            }
            // A failed write leaves everything queued: the flush meets the
            // error again and closes the connection.
            written = reply.reply(&slices[..n]).unwrap_or(0);
            let total: usize = slices[..n].iter().map(|s| s.len()).sum();
            let mut rest = Vec::with_capacity(total.saturating_sub(written));
            let mut skip = written;
            for s in &slices[..n] {
                if skip >= s.len() {
                    skip -= s.len();
                } else {
                    rest.extend_from_slice(&s[skip..]);
                    skip = 0;
                }
            }
            rest
        });
        self.held.clear();
        self.bytes = 0;
        written
    }
}

/// A lone held message whose header fits in front of its payload: the
/// header is written there, over bytes already consumed (the received
/// frame's own header, which is longer than the one sent back), and the
/// message is that one run of `buf`, which a driver may send from where it
/// lies. With more than one message held the bytes in front of a payload
/// might belong to another, so those go out as separate parts.
fn in_front(held: &[Held], buf: &mut [u8]) -> Option<Range<usize>> {
    let [h] = held else {
        return None;
    };
    let header = &h.header[..h.header_len as usize];
    let start = h.payload.start.checked_sub(header.len())?;
    buf.get_mut(start..h.payload.start)?.copy_from_slice(header);
    Some(start..h.payload.end)
}
