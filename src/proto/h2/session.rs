//! One HTTP/2 connection, server side, sans-IO (RFC 9113): the preface and
//! SETTINGS exchange, stream states, flow control in both directions,
//! header blocks (HEADERS and CONTINUATION, HPACK) and the limits a server
//! needs against abusive peers. Bytes go in with [`Session::read`], which
//! returns the requests and request bodies it found as [`Event`]s; the
//! caller answers through [`Session::send_headers`], [`Session::send_data`]
//! and [`Session::reset`], and writes [`Session::output`] to the socket.
//!
//! Time comes in as the caller's tick (`now` in [`Session::read`]): the
//! flood limits count per tick.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{
    decode, encode_frame, encode_goaway, encode_headers, encode_settings, encode_window_update,
    flag, kind, setting, settings, ErrorCode, Frame, FrameError, Head, DEFAULT_MAX_FRAME_SIZE,
    HEAD_LEN, MAX_WINDOW, PREFACE,
};
use crate::proto::hpack::Decoder;

/// What this side announces and enforces.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE, and the connection window.
    pub initial_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (a larger list is answered 431).
    pub max_header_list: usize,
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub header_table_size: usize,
    /// Largest header block (HEADERS and its CONTINUATIONs) read; past it
    /// the connection goes (a CONTINUATION flood). A list at
    /// `max_header_list` encodes in little more than that, so twice it
    /// leaves a list somewhat past the limit its 431.
    pub max_header_block: usize,
    /// Control frames (PING, SETTINGS, PRIORITY, empty DATA/HEADERS
    /// fragments, WINDOW_UPDATE) per tick before the connection goes.
    pub max_control_per_tick: u32,
    /// Streams the peer may reset (or have refused) per tick before the
    /// connection goes (rapid reset, CVE-2023-44487).
    pub max_resets_per_tick: u32,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
    pub connect_protocol: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent_streams: 128,
            initial_window: 1 << 20,
            max_header_list: 16 << 10,
            header_table_size: 4096,
            max_header_block: 32 << 10,
            max_control_per_tick: 1000,
            max_resets_per_tick: 200,
            connect_protocol: true,
        }
    }
}

/// A request head: the pseudo-header fields checked (RFC 9113 §8.3.1), the
/// other fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The stream it opened.
    pub stream: u32,
    /// `:method`.
    pub method: String,
    /// `:scheme` (empty for a plain CONNECT).
    pub scheme: String,
    /// `:authority`, or empty.
    pub authority: String,
    /// `:path` (empty for a plain CONNECT).
    pub path: String,
    /// `:protocol` of an extended CONNECT (RFC 8441).
    pub protocol: Option<String>,
    /// The regular fields (names lower-case, as HTTP/2 requires).
    pub headers: Vec<(String, Vec<u8>)>,
    /// No body follows.
    pub end_stream: bool,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new stream's request head.
    Request(Request),
    /// Request body bytes: `range` into [`Session::take_data`].
    Data {
        /// The stream.
        stream: u32,
        /// Where its bytes are.
        range: Range<usize>,
        /// The peer ended the stream with these.
        end_stream: bool,
    },
    /// The peer reset the stream, or it was refused (its answer was sent).
    Reset {
        /// The stream.
        stream: u32,
    },
    /// A request this side refused before the caller saw it (header list
    /// too large, too many streams, malformed).
    Refused {
        /// The rule it broke.
        violation: Violation,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A stream's state as far as this side still has business with it.
#[derive(Debug)]
struct Stream {
    state: State,
    /// This side sent its response head.
    answered: bool,
    /// What this side may still send.
    send_window: i64,
    /// What the peer may still send.
    recv_window: i64,
    /// The request's `content-length`, which its DATA must add up to
    /// (RFC 9113 §8.1.1).
    expected: Option<u64>,
    /// Body bytes received.
    received: u64,
}

/// Header block being read: HEADERS seen, CONTINUATION expected.
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    /// Its HEADERS made the stream depend on itself (RFC 9113 §5.3.1).
    self_dependent: bool,
    block: Vec<u8>,
    frames: u32,
}

/// One HTTP/2 connection.
pub struct Session {
    cfg: Config,
    /// Preface bytes still expected.
    preface_left: usize,
    /// The peer's first SETTINGS arrived (RFC 9113 §3.4: it must follow
    /// the preface, before any other frame).
    settled: bool,
    inbuf: Vec<u8>,
    decoder: Decoder,
    encoder: loona_hpack::Encoder<'static>,
    /// A table size update to put first in the next header block.
    table_update: Option<usize>,
    out: Vec<u8>,
    out_pos: usize,
    /// Request body bytes of the last read.
    data: Vec<u8>,
    peer_max_frame: u32,
    peer_initial_window: i64,
    conn_send: i64,
    /// Connection-level bytes received and not yet given back.
    conn_unacked: u32,
    streams: BTreeMap<u32, Stream>,
    /// Streams that closed lately, and how.
    closed: Closed,
    /// The highest stream the peer opened.
    last_stream: u32,
    pending: Option<PendingBlock>,
    /// The peer sent GOAWAY: no new streams.
    no_new_streams: bool,
    /// This side sent GOAWAY.
    going: bool,
    tick: u64,
    control: u32,
    resets: u32,
    /// A send window grew since [`Session::take_windows_opened`] last asked.
    windows_opened: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("streams", &self.streams.len())
            .field("last_stream", &self.last_stream)
            .finish()
    }
}

impl Session {
    /// A connection whose preface is still to come; this side's SETTINGS
    /// are queued at once.
    pub fn new(cfg: Config) -> Session {
        let mut out = Vec::with_capacity(256);
        let mut params = vec![
            (setting::MAX_CONCURRENT_STREAMS, cfg.max_concurrent_streams),
            (setting::INITIAL_WINDOW_SIZE, cfg.initial_window),
            (setting::MAX_HEADER_LIST_SIZE, cfg.max_header_list as u32),
            (setting::HEADER_TABLE_SIZE, cfg.header_table_size as u32),
            (setting::ENABLE_PUSH, 0),
        ];
        if cfg.connect_protocol {
            params.push((setting::ENABLE_CONNECT_PROTOCOL, 1));
        }
        encode_settings(&mut out, &params);
        let extra = cfg.initial_window.saturating_sub(65_535);
        if extra > 0 {
            encode_window_update(&mut out, 0, extra);
        }
        Session {
            decoder: Decoder::new(cfg.header_table_size, cfg.max_header_list),
            cfg,
            preface_left: PREFACE.len(),
            settled: false,
            inbuf: Vec::new(),
            encoder: loona_hpack::Encoder::new(),
            table_update: None,
            out,
            out_pos: 0,
            data: Vec::new(),
            peer_max_frame: DEFAULT_MAX_FRAME_SIZE,
            peer_initial_window: 65_535,
            conn_send: 65_535,
            conn_unacked: 0,
            streams: BTreeMap::new(),
            closed: Closed::default(),
            last_stream: 0,
            pending: None,
            no_new_streams: false,
            going: false,
            tick: 0,
            control: 0,
            resets: 0,
            windows_opened: false,
        }
    }

    /// The peer sent its preface and SETTINGS and is not in the middle of
    /// a frame: what the caller's handshake deadline and frame deadline
    /// wait for.
    pub fn between_frames(&self) -> bool {
        self.settled && self.inbuf.is_empty()
    }

    /// The peer sent its preface and first SETTINGS.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// Bytes to write to the peer.
    #[inline]
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`Session::output`] were written.
    pub fn advance_output(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Request body bytes of the last read, which its [`Event::Data`]
    /// ranges index; give the buffer back with [`Session::restore_data`]
    /// to keep its allocation.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// The buffer [`Session::take_data`] gave.
    pub fn restore_data(&mut self, mut data: Vec<u8>) {
        data.clear();
        if data.capacity() <= 1 << 20 {
            self.data = data;
        }
    }

    /// Streams open in either direction.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// This side sent GOAWAY, or the peer did and no stream is left: close
    /// once the output is out.
    pub fn finished(&self) -> bool {
        self.going || (self.no_new_streams && self.streams.is_empty())
    }

    /// Whether `stream` may still be answered.
    pub fn is_open(&self, stream: u32) -> bool {
        self.streams
            .get(&stream)
            .is_some_and(|s| s.state.local_open())
    }

    /// What may be sent on `stream` now: its window and the connection's.
    pub fn send_capacity(&self, stream: u32) -> usize {
        match self.streams.get(&stream) {
            Some(s) if s.state.local_open() => s.send_window.min(self.conn_send).max(0) as usize,
            _ => 0,
        }
    }

    /// Whether a send window grew (WINDOW_UPDATE, a larger
    /// SETTINGS_INITIAL_WINDOW_SIZE) since the last call: streams waiting
    /// for room may send again.
    pub fn take_windows_opened(&mut self) -> bool {
        std::mem::take(&mut self.windows_opened)
    }

    /// Say goodbye: GOAWAY with `code` (no new streams are read after it).
    pub fn go_away(&mut self, code: ErrorCode, reason: &str) {
        if !self.going {
            self.going = true;
            encode_goaway(&mut self.out, self.last_stream, code, reason.as_bytes());
        }
    }

    /// A graceful GOAWAY (shutdown): streams already open go on; the
    /// connection is finished when they end.
    pub fn shut_down(&mut self) {
        if !self.no_new_streams {
            encode_goaway(&mut self.out, self.last_stream, ErrorCode::NO_ERROR, b"");
            self.no_new_streams = true;
        }
    }

    /// Answer `stream` with a response head: `:status` and `headers`
    /// (lower-case names).
    pub fn send_headers(
        &mut self,
        stream: u32,
        status: u16,
        headers: &[(&str, &[u8])],
        end_stream: bool,
    ) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        if !s.state.local_open() || s.answered {
            return;
        }
        s.answered = true;
        let mut block = Vec::with_capacity(64);
        if let Some(size) = self.table_update.take() {
            // RFC 7541 §6.3: a dynamic table size update, 5-bit prefix.
            let mut n = loona_hpack::encoder::encode_integer(size, 5);
            n[0] |= 0x20;
            block.extend_from_slice(&n);
        }
        let status = status.to_string();
        let fields = std::iter::once((&b":status"[..], status.as_bytes()))
            .chain(headers.iter().map(|(n, v)| (n.as_bytes(), *v)));
        for f in fields {
            // Writing to a Vec does not fail.
            let _ = self.encoder.encode_header_into(f, &mut block);
        }
        encode_headers(
            &mut self.out,
            stream,
            end_stream,
            &block,
            self.peer_max_frame,
        );
        if end_stream {
            self.end_local(stream);
        }
    }

    /// Send as much of `bytes` on `stream` as the windows allow, as DATA
    /// frames of at most the peer's frame size; `end_stream` ends the
    /// stream if all of `bytes` went. Returns the bytes taken.
    pub fn send_data(&mut self, stream: u32, bytes: &[u8], end_stream: bool) -> usize {
        let cap = self.send_capacity(stream).min(bytes.len());
        if !self.is_open(stream) {
            return 0;
        }
        let max = self.peer_max_frame as usize;
        let mut sent = 0;
        while sent < cap {
            let n = (cap - sent).min(max);
            let last = sent + n == bytes.len() && end_stream;
            let f = if last { flag::END_STREAM } else { 0 };
            encode_frame(&mut self.out, kind::DATA, f, stream, &bytes[sent..sent + n]);
            sent += n;
        }
        self.conn_send -= sent as i64;
        if let Some(s) = self.streams.get_mut(&stream) {
            s.send_window -= sent as i64;
        }
        if end_stream && sent == bytes.len() {
            if sent == 0 {
                encode_frame(&mut self.out, kind::DATA, flag::END_STREAM, stream, &[]);
            }
            self.end_local(stream);
        }
        sent
    }

    /// End `stream` with RST_STREAM `code` (this side gives up on it).
    pub fn reset(&mut self, stream: u32, code: ErrorCode) {
        if self.streams.remove(&stream).is_some() {
            self.closed.remember(stream, How::Reset);
            encode_frame(
                &mut self.out,
                kind::RST_STREAM,
                0,
                stream,
                &code.0.to_be_bytes(),
            );
        }
    }

    /// This side ended `stream`: half closed, or closed and gone.
    fn end_local(&mut self, stream: u32) {
        match self.streams.get(&stream).map(|s| s.state) {
            Some(State::Open) => self.set_state(stream, State::HalfClosedLocal),
            Some(_) => self.close(stream),
            None => {}
        }
    }

    /// The peer ended `stream`: half closed, or closed and gone.
    fn end_remote(&mut self, stream: u32) {
        match self.streams.get(&stream).map(|s| s.state) {
            Some(State::Open) => self.set_state(stream, State::HalfClosedRemote),
            Some(_) => self.close(stream),
            None => {}
        }
    }

    /// Both sides ended `stream`.
    fn close(&mut self, stream: u32) {
        self.streams.remove(&stream);
        self.closed.remember(stream, How::Ended);
    }

    fn set_state(&mut self, stream: u32, state: State) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.state = state;
        }
    }

    /// Read bytes from the peer at tick `now`, appending what they hold to
    /// `events`. On a connection error the GOAWAY is queued; the caller
    /// writes it out and closes.
    pub fn read(
        &mut self,
        input: &[u8],
        now: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if now != self.tick {
            self.tick = now;
            self.control = 0;
            self.resets = 0;
        }
        self.data.clear();
        let r = self.read_inner(input, events);
        if let Err(e) = r {
            self.go_away(e.code, e.reason);
        }
        r
    }

    fn read_inner(&mut self, mut input: &[u8], events: &mut Vec<Event>) -> Result<(), ConnError> {
        if self.going {
            return Ok(());
        }
        if self.preface_left > 0 {
            let done = PREFACE.len() - self.preface_left;
            let n = self.preface_left.min(input.len());
            if input[..n] != PREFACE[done..done + n] {
                return Err(conn(ErrorCode::PROTOCOL_ERROR, "not the HTTP/2 preface"));
            }
            self.preface_left -= n;
            input = &input[n..];
        }
        let mut buf = std::mem::take(&mut self.inbuf);
        let r = if buf.is_empty() {
            let r = self.frames(input, events);
            if let Ok(n) = r {
                buf.extend_from_slice(&input[n..]);
            }
            r
        } else {
            buf.extend_from_slice(input);
            let r = self.frames(&buf, events);
            if let Ok(n) = r {
                buf.drain(..n);
            }
            r
        };
        self.inbuf = buf;
        // Give back what was read, so a reader that keeps up is never
        // throttled: windows refill once half is used.
        if self.conn_unacked >= self.cfg.initial_window / 2 {
            encode_window_update(&mut self.out, 0, self.conn_unacked);
            self.conn_unacked = 0;
        }
        r.map(|_| ())
    }

    /// Handle every whole frame at the front of `buf`; returns the bytes
    /// taken.
    fn frames(&mut self, buf: &[u8], events: &mut Vec<Event>) -> Result<usize, ConnError> {
        let mut pos = 0;
        while !self.going {
            // This side announces the default frame size.
            match decode(&buf[pos..], DEFAULT_MAX_FRAME_SIZE) {
                Ok(None) => break,
                Ok(Some((frame, n))) => {
                    pos += n;
                    self.frame(frame, events)?;
                }
                Err(e) => {
                    let Some(stream) = e.stream else {
                        return Err(conn(e.code, e.reason));
                    };
                    // A stream error: the frame is whole (only whole frames
                    // are checked), its stream is reset, the rest goes on.
                    pos += self.skip(&buf[pos..]);
                    self.stream_error(stream, e, events)?;
                }
            }
        }
        Ok(pos)
    }

    /// The length of the whole frame at the front of `buf`.
    fn skip(&self, buf: &[u8]) -> usize {
        buf.first_chunk::<HEAD_LEN>()
            .map_or(buf.len(), |h| HEAD_LEN + Head::parse(h).len as usize)
    }

    fn stream_error(
        &mut self,
        stream: u32,
        e: FrameError,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if self.pending.is_some() {
            return Err(conn(ErrorCode::PROTOCOL_ERROR, "expected CONTINUATION"));
        }
        self.stream_reset(stream, e.code, events)
    }

    /// A stream error `code` on `stream`, counted against the resets: an
    /// open stream is reset (and reported), one that is not gets its
    /// RST_STREAM all the same.
    fn stream_reset(
        &mut self,
        stream: u32,
        code: ErrorCode,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        self.reset_counted()?;
        if self.streams.contains_key(&stream) {
            self.reset(stream, code);
            events.push(Event::Reset { stream });
        } else {
            encode_frame(
                &mut self.out,
                kind::RST_STREAM,
                0,
                stream,
                &code.0.to_be_bytes(),
            );
        }
        Ok(())
    }

    fn control_frame(&mut self) -> Result<(), ConnError> {
        self.control += 1;
        if self.control > self.cfg.max_control_per_tick {
            return Err(flood(Violation::ControlFlood, "control frame flood"));
        }
        Ok(())
    }

    fn frame(&mut self, frame: Frame<'_>, events: &mut Vec<Event>) -> Result<(), ConnError> {
        if !self.settled {
            if !matches!(frame, Frame::Settings { ack: false, .. }) {
                return Err(conn(
                    ErrorCode::PROTOCOL_ERROR,
                    "the preface must be followed by SETTINGS",
                ));
            }
            self.settled = true;
        }
        if let Some(p) = &self.pending {
            let ok = matches!(frame, Frame::Continuation { stream, .. } if stream == p.stream);
            if !ok {
                return Err(conn(ErrorCode::PROTOCOL_ERROR, "expected CONTINUATION"));
            }
        }
        match frame {
            Frame::Settings { ack: true, .. } => self.control_frame(),
            Frame::Settings { ack: false, params } => {
                self.control_frame()?;
                self.apply_settings(params)?;
                encode_frame(&mut self.out, kind::SETTINGS, flag::ACK, 0, &[]);
                Ok(())
            }
            Frame::Ping { ack, data } => {
                self.control_frame()?;
                if !ack {
                    encode_frame(&mut self.out, kind::PING, flag::ACK, 0, &data);
                }
                Ok(())
            }
            Frame::GoAway { .. } => {
                self.no_new_streams = true;
                Ok(())
            }
            Frame::Priority { stream, priority } => self.priority_frame(stream, priority, events),
            Frame::Unknown { .. } => self.control_frame(),
            Frame::WindowUpdate { stream, increment } => {
                self.control_frame()?;
                self.window_update(stream, increment, events)
            }
            Frame::RstStream { stream, .. } => {
                self.idle_check(stream)?;
                // A late one is ignored: never a reset for a reset.
                if self.streams.remove(&stream).is_some() {
                    self.closed.remember(stream, How::PeerReset);
                    self.reset_counted()?;
                    events.push(Event::Reset { stream });
                }
                Ok(())
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
                priority,
                ..
            } => {
                if block.is_empty() && !end_headers {
                    self.control_frame()?;
                }
                let p = PendingBlock {
                    stream,
                    end_stream,
                    self_dependent: priority.is_some_and(|p| p.depends_on == stream),
                    block: block.to_vec(),
                    frames: 1,
                };
                self.block_fragment(p, end_headers, events)
            }
            Frame::Continuation {
                end_headers, block, ..
            } => {
                let Some(mut p) = self.pending.take() else {
                    return Err(conn(
                        ErrorCode::PROTOCOL_ERROR,
                        "CONTINUATION without HEADERS",
                    ));
                };
                p.block.extend_from_slice(block);
                p.frames += 1;
                self.block_fragment(p, end_headers, events)
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.data_frame(stream, end_stream, data, flow_len, events),
        }
    }

    /// A header block grew by a fragment: within its limits, it is decoded
    /// when whole, or waits for its next CONTINUATION.
    fn block_fragment(
        &mut self,
        p: PendingBlock,
        end_headers: bool,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        self.check_block(&p)?;
        if end_headers {
            self.header_block(p, events)
        } else {
            self.pending = Some(p);
            Ok(())
        }
    }

    /// A header block past its limits is a flood.
    fn check_block(&self, p: &PendingBlock) -> Result<(), ConnError> {
        if p.block.len() > self.cfg.max_header_block || p.frames > 64 {
            return Err(flood(
                Violation::ContinuationFlood,
                "header block too large (CONTINUATION flood)",
            ));
        }
        Ok(())
    }

    fn reset_counted(&mut self) -> Result<(), ConnError> {
        self.resets += 1;
        if self.resets > self.cfg.max_resets_per_tick {
            return Err(flood(
                Violation::RapidReset,
                "too many streams reset (rapid reset)",
            ));
        }
        Ok(())
    }

    /// A frame for a stream the peer never opened.
    fn idle_check(&self, stream: u32) -> Result<(), ConnError> {
        if stream > self.last_stream {
            return Err(conn(ErrorCode::PROTOCOL_ERROR, "frame on an idle stream"));
        }
        Ok(())
    }

    fn apply_settings(&mut self, params: &[u8]) -> Result<(), ConnError> {
        for (id, value) in settings(params) {
            match id {
                setting::INITIAL_WINDOW_SIZE => {
                    let delta = value as i64 - self.peer_initial_window;
                    self.peer_initial_window = value as i64;
                    self.windows_opened |= delta > 0;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        if s.send_window > MAX_WINDOW as i64 {
                            return Err(conn(ErrorCode::FLOW_CONTROL_ERROR, "window above 2^31-1"));
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => self.peer_max_frame = value,
                setting::HEADER_TABLE_SIZE => {
                    let size = (value as usize).min(4096);
                    self.encoder.set_max_table_size(size);
                    self.table_update = Some(size);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn window_update(
        &mut self,
        stream: u32,
        increment: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        // Increments are never 0 (the codec refuses those).
        self.windows_opened = true;
        if stream == 0 {
            self.conn_send += increment as i64;
            if self.conn_send > MAX_WINDOW as i64 {
                return Err(conn(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window above 2^31-1",
                ));
            }
            return Ok(());
        }
        self.idle_check(stream)?;
        let Some(s) = self.streams.get_mut(&stream) else {
            return self.late_frame(stream, Kind::WindowUpdate, events);
        };
        s.send_window += increment as i64;
        if s.send_window > MAX_WINDOW as i64 {
            self.reset(stream, ErrorCode::FLOW_CONTROL_ERROR);
        }
        Ok(())
    }

    /// A stream refused (its answer queued): counted against the resets,
    /// then reported.
    fn refused(
        &mut self,
        violation: Violation,
        reason: &'static str,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        self.reset_counted()?;
        events.push(Event::Refused { violation, reason });
        Ok(())
    }
}

mod closed;
mod request;
mod state;
mod streams;
mod violation;

use closed::{Closed, How, Kind};
use state::State;
use violation::{conn, flood};
pub use violation::{ConnError, Violation};

#[cfg(test)]
mod tests;
