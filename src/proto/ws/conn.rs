//! The per-connection state machine: bytes in, events out; calls in, bytes
//! out. No I/O, no clock.
//!
//! [`Conn::read`] takes the bytes of one read, unmasks them in place and
//! returns at most one event per call with how many bytes it consumed; call it
//! again with the rest. A whole single-frame message found in the read buffer
//! is returned as a slice of that buffer (no copy); only a frame cut by the
//! end of the read is copied into the connection. Pings are answered and
//! close frames replied to automatically. A protocol violation queues a close
//! frame with the matching code, moves the connection to
//! [`CloseState::Closed`] and returns the [`ProtocolError`].
//!
//! Output (frames from the `send_*` calls, pongs, close replies) accumulates
//! in one buffer per connection, so everything queued during a loop turn goes
//! out in one write: [`Conn::output`] / [`Conn::advance_output`].

use std::ops::Range;

use rand::{rngs::StdRng, RngCore, SeedableRng};

use super::close::{close_payload, parse_close_payload, CloseCode, CloseState};
use super::deflate::{DeflateParams, PerMessageDeflate};
use super::frame::{encode_frame, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use super::mask::apply_mask;
use super::message::{too_big, MessageKind, Reassembly};
use super::ProtocolError;
use crate::proto::Limits;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, masks what it sends with a fresh random key
    /// per frame.
    Client,
}

/// Something that happened on the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole text message (already checked to be UTF-8).
    Text(&'a str),
    /// A whole binary message.
    Binary(&'a [u8]),
    /// A ping; the pong is already queued.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's close frame. If we had not sent one, the reply (echoing the
    /// code) is queued; either way the connection is now closed once the
    /// output is flushed.
    Close {
        /// The peer's status code, if it sent one.
        code: Option<CloseCode>,
        /// The peer's reason.
        reason: &'a str,
    },
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A close frame was already sent or received: no more data may be sent.
    Closing,
    /// Control frame payloads are limited to 125 bytes.
    ControlTooLong,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::Closing => "the connection is closing",
            SendError::ControlTooLong => "control frame payload exceeds 125 bytes",
        })
    }
}

impl std::error::Error for SendError {}

/// The frame whose payload is being received.
#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// At most `u32::MAX`: the frame limit is clamped to it.
    remaining: u32,
    /// Payload bytes already received (the mask key offset).
    received: u32,
    /// A Text/Binary frame with FIN that is not compressed: if its payload is
    /// whole in one read it is handed out without a copy.
    single: bool,
}

/// Where a control frame's payload is.
#[derive(Debug, Clone)]
enum Src {
    Input(Range<usize>),
    Held,
}

/// The message kind a data frame's opcode starts.
fn kind_of(op: OpCode) -> MessageKind {
    if op == OpCode::Text {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

/// What a `read` call found, as positions rather than borrows so the borrow
/// is made once, at the end.
#[derive(Debug)]
enum Found {
    Nothing,
    InputMessage(MessageKind, Range<usize>),
    HeldMessage(MessageKind),
    Control(OpCode, Src),
}

/// The state a connection needs only while a header, a control frame or a
/// message spans reads (or a message is fragmented or compressed). Whole
/// uncompressed messages in one read never touch it, so most connections
/// never allocate it, and [`Conn::release_idle`] drops it again: an idle
/// connection holds a null pointer instead of some 80 bytes.
#[derive(Debug, Default)]
struct Held {
    /// A partial frame header (at most 13 bytes) and its length.
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    message: Reassembly,
    control: Vec<u8>,
    /// The message payload was handed out from `message`: clear it at the
    /// next `read`.
    message_delivered: bool,
    /// The control payload was handed out from `control`: clear it at the
    /// next `read` (a partial control frame's bytes stay).
    control_delivered: bool,
}

/// One WebSocket connection's protocol state.
#[derive(Debug)]
pub struct Conn {
    /// [`Limits::max_frame_payload`] and [`Limits::max_message_size`],
    /// clamped to `u32::MAX` (kept small: an idle connection is mostly this
    /// struct).
    max_frame: u32,
    max_message: u32,
    frame: Option<FrameInProgress>,
    /// What only a frame or message spanning reads needs, out of line.
    held: Option<Box<Held>>,
    deflate: Option<Box<PerMessageDeflate>>,
    tx: Tx,
}

/// Unsent bytes up to which every ping gets its own pong (a burst of pings
/// is answered in full, as Autobahn's cases 2.10 and 2.11 expect); past
/// them a peer is not reading, and each new pong replaces the unsent one
/// before it.
pub const PONG_BACKLOG: usize = 64 * 1024;

/// The sending half: close state, output buffer and mask keys. Kept apart so
/// it can be changed while a received payload is borrowed.
#[derive(Debug)]
struct Tx {
    state: CloseState,
    keys: Option<Box<StdRng>>,
    out: Vec<u8>,
    /// Written bytes at the front of `out`. 32 bits keep an idle
    /// connection small; past them the written bytes are dropped from the
    /// front.
    out_pos: u32,
    /// The length of the automatic pong that ends `out`, 0 when `out` does
    /// not end with one. Past [`PONG_BACKLOG`] unsent bytes it is replaced
    /// by the next ping's while unsent (RFC 6455 §5.5.3 lets an endpoint
    /// answer only the latest ping), so a peer that pings and never reads
    /// makes the output grow to that, not by a pong per ping.
    pong_len: u8,
}

impl Tx {
    fn next_key(&mut self) -> Option<[u8; 4]> {
        self.keys.as_mut().map(|rng| rng.next_u32().to_ne_bytes())
    }

    fn push_frame(&mut self, op: OpCode, fin: bool, rsv1: bool, payload: &[u8]) {
        let key = self.next_key();
        encode_frame(&mut self.out, op, fin, rsv1, key, payload);
        self.pong_len = 0;
    }

    /// Answer a ping: queue its pong; but past [`PONG_BACKLOG`] unsent
    /// bytes, replace the pong that ends the output if none of it was
    /// written yet.
    fn push_pong(&mut self, payload: &[u8]) {
        let at = self.out.len().saturating_sub(self.pong_len as usize);
        let unsent = self.out.len() - self.out_pos as usize;
        if self.pong_len > 0 && at >= self.out_pos as usize && unsent > PONG_BACKLOG {
            self.out.truncate(at);
        }
        let start = self.out.len();
        self.push_frame(OpCode::Pong, true, false, payload);
        // At most 2 + 4 + 125 bytes: a control frame's.
        self.pong_len = u8::try_from(self.out.len() - start).unwrap_or(0);
    }

    /// Queue a close frame for `e` (unless one was sent) and close.
    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        if self.state == CloseState::Open {
            let mut p = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
            close_payload(e.code, e.reason, &mut p);
            self.push_frame(OpCode::Close, true, false, &p);
        }
        self.state = CloseState::Closed;
        e
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.state == CloseState::Open {
            Ok(())
        } else {
            Err(SendError::Closing)
        }
    }
}

impl Conn {
    /// A connection after a successful handshake. `deflate` carries the
    /// negotiated permessage-deflate parameters with the compression level
    /// and the smallest message worth compressing.
    pub fn new(role: Role, limits: Limits, deflate: Option<(DeflateParams, u32, usize)>) -> Self {
        let keys = (role == Role::Client).then(|| Box::new(StdRng::from_os_rng()));
        Self::build(role, limits, deflate, keys)
    }

    /// A client connection whose mask keys come from `seed` (for reproducible
    /// tests and fuzzing).
    pub fn client_with_seed(
        limits: Limits,
        deflate: Option<(DeflateParams, u32, usize)>,
        seed: u64,
    ) -> Self {
        Self::build(
            Role::Client,
            limits,
            deflate,
            Some(Box::new(StdRng::seed_from_u64(seed))),
        )
    }

    fn build(
        role: Role,
        limits: Limits,
        deflate: Option<(DeflateParams, u32, usize)>,
        keys: Option<Box<StdRng>>,
    ) -> Self {
        Conn {
            max_frame: u32::try_from(limits.max_frame_payload).unwrap_or(u32::MAX),
            max_message: u32::try_from(limits.max_message_size).unwrap_or(u32::MAX),
            frame: None,
            held: None,
            deflate: deflate.map(|(p, level, min)| {
                Box::new(PerMessageDeflate::new(&p, role == Role::Server, level, min))
            }),
            tx: Tx {
                state: CloseState::Open,
                keys,
                out: Vec::new(),
                out_pos: 0,
                pong_len: 0,
            },
        }
    }

    /// This end's role: a client masks its frames, so it alone has mask
    /// keys (one byte less per connection than a field).
    pub fn role(&self) -> Role {
        if self.tx.keys.is_some() {
            Role::Client
        } else {
            Role::Server
        }
    }

    /// Where the close handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.tx.state
    }

    /// Whether the transport should be closed: the connection is closed and
    /// every queued byte was written.
    pub fn is_done(&self) -> bool {
        self.tx.state == CloseState::Closed && self.output().is_empty()
    }

    /// Whether permessage-deflate is active.
    pub fn compression(&self) -> bool {
        self.deflate.is_some()
    }

    /// Bytes queued for the peer.
    pub fn output(&self) -> &[u8] {
        &self.tx.out[self.tx.out_pos as usize..]
    }

    /// Hand the output to `write`, which gets the buffer and the position
    /// of its first unwritten byte, may take the buffer whole (leaving an
    /// empty one) and returns how many bytes it wrote; they count as
    /// written.
    pub fn send_output_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>, usize) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let n = write(&mut self.tx.out, self.tx.out_pos as usize)?;
        self.advance_output(n);
        Ok(n)
    }

    /// `n` bytes of [`Conn::output`] were written.
    pub fn advance_output(&mut self, n: usize) {
        let tx = &mut self.tx;
        let pos = (tx.out_pos as usize).saturating_add(n).min(tx.out.len());
        if pos == tx.out.len() {
            // Written out: the buffer goes back to the allocator, so an idle
            // connection holds none (the next frame takes one from its
            // thread cache).
            tx.out = Vec::new();
            tx.out_pos = 0;
            tx.pong_len = 0;
        } else if let Ok(pos) = u32::try_from(pos) {
            tx.out_pos = pos;
        } else {
            tx.out.drain(..pos);
            tx.out_pos = 0;
            tx.pong_len = 0;
        }
    }

    /// Lay the unsent bytes out anew: `f` gets them and returns what is
    /// still to be sent, in order. For a caller that sent some of them,
    /// interleaved with frames of its own (see [`Sender::header_for`]), by
    /// other means.
    pub fn rewrite_output(&mut self, f: impl FnOnce(&[u8]) -> Vec<u8>) {
        let rest = f(self.output());
        self.tx.out = rest;
        self.tx.out_pos = 0;
        self.tx.pong_len = 0;
    }

    /// Let go of the receive state held for frames and messages spanning
    /// reads, when none is in progress (a connection gone quiet): its
    /// allocations go back, and the next such frame makes them again.
    pub fn release_idle(&mut self) {
        // A control frame split across reads has its frame in progress.
        let busy = self
            .held
            .as_ref()
            .is_some_and(|h| h.header_len > 0 || h.message.in_progress());
        if !busy && self.frame.is_none() {
            self.held = None;
        }
    }

    /// Bytes queued and not yet written.
    pub fn buffered_output(&self) -> usize {
        self.tx.out.len() - self.tx.out_pos as usize
    }

    /// Process received bytes. Returns how many were consumed and the event
    /// they completed, if any; call again with the unconsumed rest. Bytes
    /// after a close frame are ignored.
    pub fn read<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), ProtocolError> {
        self.read_and_reply(input).map(|(n, ev, _)| (n, ev))
    }

    /// [`Conn::read`], also returning a [`Sender`] usable while the event's
    /// payload is borrowed (an echo sends the payload it just received).
    #[allow(clippy::type_complexity)]
    pub fn read_and_reply<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>, Sender<'a>), ProtocolError> {
        if let Some(held) = &mut self.held {
            if held.message_delivered {
                held.message.clear();
                held.message_delivered = false;
            }
            if held.control_delivered {
                held.control = Vec::new();
                held.control_delivered = false;
            }
        }
        if self.tx.state == CloseState::Closed {
            return Ok((input.len(), None, self.sender()));
        }
        let (pos, found) = match self.scan(input) {
            Ok(v) => v,
            Err(e) => return Err(self.tx.fail(e)),
        };
        let input: &'a [u8] = input;
        match found {
            Found::Nothing => Ok((pos, None, self.sender())),
            Found::InputMessage(kind, r) => match deliver(kind, &input[r]) {
                Ok(ev) => Ok((pos, Some(ev), self.sender())),
                Err(e) => Err(self.tx.fail(e)),
            },
            Found::HeldMessage(kind) => {
                let payload = match self.held.as_deref_mut() {
                    Some(h) => {
                        h.message_delivered = true;
                        h.message.payload()
                    }
                    None => &[],
                };
                match deliver(kind, payload) {
                    Ok(ev) => Ok((
                        pos,
                        Some(ev),
                        Sender {
                            tx: &mut self.tx,
                            deflate: self.deflate.as_deref_mut(),
                        },
                    )),
                    Err(e) => Err(self.tx.fail(e)),
                }
            }
            Found::Control(op, src) => {
                let held = match &mut self.held {
                    Some(h) => std::mem::take(&mut h.control),
                    None => Vec::new(),
                };
                let payload: &[u8] = match &src {
                    Src::Input(r) => &input[r.clone()],
                    Src::Held => &held,
                };
                let handled = self.on_control(op, payload);
                if let Some(h) = &mut self.held {
                    h.control = held;
                    h.control_delivered = true;
                }
                let close = match handled {
                    Ok(close) => close,
                    Err(e) => return Err(self.tx.fail(e)),
                };
                let payload: &'a [u8] = match src {
                    Src::Input(r) => &input[r],
                    Src::Held => self.held.as_deref().map_or(&[][..], |h| &h.control),
                };
                let sender = Sender {
                    tx: &mut self.tx,
                    deflate: self.deflate.as_deref_mut(),
                };
                Ok((
                    pos,
                    Some(match op {
                        OpCode::Ping => Event::Ping(payload),
                        OpCode::Pong => Event::Pong(payload),
                        _ => Event::Close {
                            code: close,
                            reason: payload
                                .get(2..)
                                .and_then(|r| std::str::from_utf8(r).ok())
                                .unwrap_or(""),
                        },
                    }),
                    sender,
                ))
            }
        }
    }

    /// Walk frames until one completes an event or the input runs out.
    fn scan(&mut self, input: &mut [u8]) -> Result<(usize, Found), ProtocolError> {
        let mut pos = 0;
        loop {
            let mut f = match self.frame {
                Some(f) => f,
                None => match self.take_header(input, &mut pos)? {
                    Some(f) => f,
                    None => return Ok((pos, Found::Nothing)),
                },
            };
            let avail = (input.len() - pos).min(f.remaining as usize);
            let range = pos..pos + avail;
            let chunk = &mut input[range.clone()];
            if let Some(k) = f.mask {
                apply_mask(chunk, k, f.received as usize);
            }
            let first = f.received == 0 && avail > 0;
            let whole = f.received == 0 && avail == f.remaining as usize;
            pos += avail;
            // `avail <= remaining <= u32::MAX`.
            f.remaining -= avail as u32;
            f.received += avail as u32;
            let done = f.remaining == 0;
            self.frame = if done { None } else { Some(f) };
            if f.opcode.is_control() {
                if !whole {
                    let held = self.held.get_or_insert_with(Box::default);
                    held.control.extend_from_slice(chunk);
                }
                if done {
                    let src = if whole { Src::Input(range) } else { Src::Held };
                    return Ok((pos, Found::Control(f.opcode, src)));
                }
            } else if whole && f.single {
                return Ok((pos, Found::InputMessage(kind_of(f.opcode), range)));
            } else {
                let held = self.held.get_or_insert_with(Box::default);
                if f.single && first {
                    // A single frame spanning reads: collect it after all.
                    held.message.start(kind_of(f.opcode), false);
                }
                let max_message = self.max_message as usize;
                held.message
                    .push(chunk, self.deflate.as_deref_mut(), max_message)?;
                if done && f.fin {
                    let kind = held
                        .message
                        .finish(self.deflate.as_deref_mut(), max_message)?;
                    return Ok((pos, Found::HeldMessage(kind)));
                }
            }
            if pos == input.len() {
                return Ok((pos, Found::Nothing));
            }
        }
    }

    /// Decode the next header from held bytes plus `input[*pos..]`, check it
    /// against the connection's state and start the frame.
    fn take_header(
        &mut self,
        input: &[u8],
        pos: &mut usize,
    ) -> Result<Option<FrameInProgress>, ProtocolError> {
        let rest = &input[*pos..];
        let held = self.held.as_ref().map_or(0, |h| h.header_len as usize);
        let take = rest.len().min(MAX_HEADER_LEN - held);
        let decoded = match self.held.as_deref_mut() {
            Some(hb) if held > 0 => {
                hb.header[held..held + take].copy_from_slice(&rest[..take]);
                FrameHeader::decode(&hb.header[..held + take])?.map(|(h, n)| (h, n - held))
            }
            _ => FrameHeader::decode(rest)?,
        };
        let Some((h, used)) = decoded else {
            // Keep the partial header (at most 13 bytes) for the next read.
            let hb = self.held.get_or_insert_with(Box::default);
            if held == 0 {
                hb.header[..take].copy_from_slice(&rest[..take]);
            }
            hb.header_len = (held + take) as u8;
            *pos += take;
            return Ok(None);
        };
        if let Some(hb) = self.held.as_deref_mut() {
            hb.header_len = 0;
        }
        *pos += used;
        self.start_frame(h).map(Some)
    }

    fn start_frame(&mut self, h: FrameHeader) -> Result<FrameInProgress, ProtocolError> {
        let perr = |reason| Err(ProtocolError::new(CloseCode::PROTOCOL_ERROR, reason));
        if h.rsv2 || h.rsv3 {
            return perr("RSV2/RSV3 set without a negotiated extension");
        }
        if h.rsv1 && (self.deflate.is_none() || !matches!(h.opcode, OpCode::Text | OpCode::Binary))
        {
            return perr("RSV1 set outside the first frame of a compressed message");
        }
        match (self.role(), h.mask.is_some()) {
            (Role::Server, false) => return perr("client frame not masked"),
            (Role::Client, true) => return perr("server frame masked"),
            _ => {}
        }
        if h.payload_len > self.max_frame as u64 {
            return Err(too_big());
        }
        let in_progress = self.held.as_ref().is_some_and(|m| m.message.in_progress());
        let mut single = false;
        // Bytes of the message collected before this frame, and whether it
        // is compressed (its limit is then checked as it inflates).
        let (collected, compressed) = match h.opcode {
            OpCode::Continuation if !in_progress => {
                return perr("continuation frame without a message to continue");
            }
            OpCode::Continuation => self
                .held
                .as_ref()
                .map_or((0, false), |m| (m.message.len(), m.message.compressed())),
            OpCode::Text | OpCode::Binary => {
                if in_progress {
                    return perr("new data frame inside a fragmented message");
                }
                // A whole uncompressed message in one frame is collected
                // only if it spans reads (see `scan`).
                single = h.fin && !h.rsv1;
                if !single {
                    let held = self.held.get_or_insert_with(Box::default);
                    held.message.start(kind_of(h.opcode), h.rsv1);
                }
                (0, h.rsv1)
            }
            _ => (0, false),
        };
        if !h.opcode.is_control()
            && !compressed
            && collected as u64 + h.payload_len > self.max_message as u64
        {
            return Err(too_big());
        }
        Ok(FrameInProgress {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            // Checked against `max_frame` above.
            remaining: h.payload_len as u32,
            received: 0,
            single,
        })
    }

    /// React to a whole control frame. For a close, returns its code.
    fn on_control(
        &mut self,
        op: OpCode,
        payload: &[u8],
    ) -> Result<Option<CloseCode>, ProtocolError> {
        match op {
            OpCode::Ping => {
                if self.tx.state == CloseState::Open {
                    self.tx.push_pong(payload);
                }
                Ok(None)
            }
            OpCode::Pong => Ok(None),
            _ => {
                let parsed = parse_close_payload(payload)
                    .map_err(|e| ProtocolError::new(e.close_code(), "invalid close frame"))?;
                let code = parsed.map(|(c, _)| c);
                if self.tx.state == CloseState::Open {
                    let reply = code.map(|c| c.0.to_be_bytes());
                    self.tx.push_frame(
                        OpCode::Close,
                        true,
                        false,
                        reply.as_ref().map_or(&[], |r| &r[..]),
                    );
                }
                self.tx.state = CloseState::Closed;
                Ok(code)
            }
        }
    }

    /// The sending half, for queueing frames.
    pub fn sender(&mut self) -> Sender<'_> {
        Sender {
            tx: &mut self.tx,
            deflate: self.deflate.as_deref_mut(),
        }
    }

    /// Queue a whole message; see [`Sender::send`].
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        self.sender().send(kind, payload)
    }

    /// Queue a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.sender().send_text(text)
    }

    /// Queue a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.sender().send_binary(data)
    }

    /// Queue one uncompressed frame; see [`Sender::send_frame`].
    pub fn send_frame(&mut self, op: OpCode, fin: bool, payload: &[u8]) -> Result<(), SendError> {
        self.sender().send_frame(op, fin, payload)
    }

    /// Queue already-framed bytes; see [`Sender::send_raw`].
    pub fn send_raw(&mut self, frame: &[u8]) -> Result<(), SendError> {
        self.sender().send_raw(frame)
    }

    /// Queue a ping.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.sender().ping(payload)
    }

    /// Queue an unsolicited pong.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.sender().pong(payload)
    }

    /// Start the close handshake; see [`Sender::close`].
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.sender().close(code, reason)
    }
}

/// The sending half of a [`Conn`]: queues frames into its output buffer.
/// Obtained from [`Conn::sender`], or with a received event from
/// [`Conn::read_and_reply`].
#[derive(Debug)]
pub struct Sender<'a> {
    tx: &'a mut Tx,
    deflate: Option<&'a mut PerMessageDeflate>,
}

impl Sender<'_> {
    /// Bytes queued and not yet written.
    pub fn buffered_output(&self) -> usize {
        self.tx.out.len() - self.tx.out_pos as usize
    }

    /// Whether data may still be sent (no close frame sent or received).
    pub fn is_open(&self) -> bool {
        self.tx.state == CloseState::Open
    }

    /// Queue a whole message, compressed when deflate is active and the
    /// message is large enough.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        self.tx.check_open()?;
        let op = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        match self
            .deflate
            .as_deref_mut()
            .filter(|d| d.should_compress(payload.len()))
        {
            Some(d) => {
                let key = self.tx.next_key();
                let compressed = d.compress_message(payload);
                encode_frame(&mut self.tx.out, op, true, true, key, compressed);
                self.tx.pong_len = 0;
            }
            None => self.tx.push_frame(op, true, false, payload),
        }
        Ok(())
    }

    /// The header of a whole message of `len` bytes that this side would
    /// send exactly as given, for a caller that sends header and payload
    /// itself, from where the payload lies (a reply straight from the
    /// receive buffer), in the place of [`Sender::send`]: nothing is queued.
    /// `None` when the bytes would change on the way (a client masks them,
    /// deflate would compress them): queue the message with `send` then.
    /// Fails as `send` does.
    pub fn header_for(
        &mut self,
        kind: MessageKind,
        len: usize,
    ) -> Result<Option<FrameHeader>, SendError> {
        self.tx.check_open()?;
        if self.tx.keys.is_some()
            || self
                .deflate
                .as_ref()
                .is_some_and(|d| d.should_compress(len))
        {
            return Ok(None);
        }
        Ok(Some(FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: match kind {
                MessageKind::Text => OpCode::Text,
                MessageKind::Binary => OpCode::Binary,
            },
            mask: None,
            payload_len: len as u64,
        }))
    }

    /// Queue a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send(MessageKind::Text, text.as_bytes())
    }

    /// Queue a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send(MessageKind::Binary, data)
    }

    /// Queue one uncompressed data frame as given (for fragmented sends): the
    /// caller keeps the fragmentation rules (Text/Binary first, then
    /// Continuation, FIN on the last).
    pub fn send_frame(&mut self, op: OpCode, fin: bool, payload: &[u8]) -> Result<(), SendError> {
        self.tx.check_open()?;
        if op.is_control() && (payload.len() > MAX_CONTROL_PAYLOAD || !fin) {
            return Err(SendError::ControlTooLong);
        }
        self.tx.push_frame(op, fin, false, payload);
        Ok(())
    }

    /// Queue already-framed bytes (a publish framed once for many receivers).
    /// Server role only: client frames need a fresh mask each.
    pub fn send_raw(&mut self, frame: &[u8]) -> Result<(), SendError> {
        self.tx.check_open()?;
        self.tx.out.extend_from_slice(frame);
        self.tx.pong_len = 0;
        Ok(())
    }

    /// Queue a ping.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_frame(OpCode::Ping, true, payload)
    }

    /// Queue an unsolicited pong.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_frame(OpCode::Pong, true, payload)
    }

    /// Start the close handshake with `code` (must be valid on the wire) and
    /// `reason` (cut to fit 123 bytes).
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.tx.check_open()?;
        let mut p = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
        close_payload(code, reason, &mut p);
        self.tx.push_frame(OpCode::Close, true, false, &p);
        self.tx.state = CloseState::CloseSent;
        Ok(())
    }
}

/// Turn a finished payload into an event, checking text.
fn deliver(kind: MessageKind, payload: &[u8]) -> Result<Event<'_>, ProtocolError> {
    match kind {
        MessageKind::Binary => Ok(Event::Binary(payload)),
        MessageKind::Text => simdutf8::basic::from_utf8(payload)
            .map(Event::Text)
            .map_err(|_| {
                ProtocolError::new(CloseCode::INVALID_PAYLOAD, "invalid UTF-8 in text message")
            }),
    }
}
