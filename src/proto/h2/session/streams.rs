//! What the peer's frames do to a stream: DATA, a whole header block (a new
//! request, or trailers), a PRIORITY, and any of them late, on a stream
//! that already closed (RFC 9113 §5.1, §6.1, §6.2, §6.3, §8.1.1).

use crate::proto::h2::{encode_window_update, ErrorCode, Priority};
use crate::proto::hpack::Block;

use super::closed::{How, Kind, Late};
use super::request::{self, content_length};
use super::state::State;
use super::violation::conn;
use super::{ConnError, Event, PendingBlock, Session, Stream, Violation};

impl Session {
    pub(super) fn data_frame(
        &mut self,
        stream: u32,
        end_stream: bool,
        data: &[u8],
        flow_len: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if flow_len == 0 && !end_stream {
            self.control_frame()?;
        }
        self.idle_check(stream)?;
        // The connection window counts every DATA frame, whatever its
        // stream's state.
        self.conn_unacked += flow_len;
        if self.conn_unacked > self.cfg.initial_window {
            return Err(conn(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA past the connection window",
            ));
        }
        let half = self.cfg.initial_window as i64 / 2;
        let Some(s) = self.streams.get_mut(&stream) else {
            return self.late_frame(stream, Kind::Data, events);
        };
        if !s.state.remote_open() {
            // Half closed (remote): the peer ended it (§5.1, §6.1).
            return self.stream_reset(stream, ErrorCode::STREAM_CLOSED, events);
        }
        s.recv_window -= flow_len as i64;
        if s.recv_window < 0 {
            self.reset(stream, ErrorCode::FLOW_CONTROL_ERROR);
            events.push(Event::Reset { stream });
            return Ok(());
        }
        s.received += data.len() as u64;
        let whole = s.expected.is_none_or(|n| s.received == n);
        if s.expected.is_some_and(|n| s.received > n) || (end_stream && !whole) {
            // §8.1.1: a body longer or shorter than its content-length is
            // malformed.
            return self.stream_reset(stream, ErrorCode::PROTOCOL_ERROR, events);
        }
        if end_stream {
            self.end_remote(stream);
        } else if s.recv_window <= half {
            let inc = self.cfg.initial_window as i64 - s.recv_window;
            s.recv_window += inc;
            encode_window_update(&mut self.out, stream, inc as u32);
        }
        let start = self.data.len();
        self.data.extend_from_slice(data);
        events.push(Event::Data {
            stream,
            range: start..self.data.len(),
            end_stream,
        });
        Ok(())
    }

    /// A PRIORITY frame: ignored (RFC 9113 §5.3.2 deprecates the scheme),
    /// but a stream may not depend on itself (§5.3.1).
    pub(super) fn priority_frame(
        &mut self,
        stream: u32,
        priority: Priority,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        self.control_frame()?;
        if priority.depends_on != stream {
            return Ok(());
        }
        self.stream_reset(stream, ErrorCode::PROTOCOL_ERROR, events)
    }

    /// A whole header block on `p.stream`.
    pub(super) fn header_block(
        &mut self,
        p: PendingBlock,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        // Decoded whatever becomes of the stream: the HPACK table is the
        // connection's.
        let decoded = self.decoder.decode(&p.block).map_err(|_| {
            conn(
                ErrorCode::COMPRESSION_ERROR,
                "HPACK block cannot be decoded",
            )
        })?;
        let stream = p.stream;
        if let Some(s) = self.streams.get_mut(&stream) {
            // Trailers: the end of the request body, their fields unused.
            if !s.state.remote_open() {
                return self.stream_reset(stream, ErrorCode::STREAM_CLOSED, events);
            }
            if !p.end_stream {
                return Err(conn(
                    ErrorCode::PROTOCOL_ERROR,
                    "second HEADERS without END_STREAM",
                ));
            }
            if p.self_dependent {
                return self.stream_reset(stream, ErrorCode::PROTOCOL_ERROR, events);
            }
            if s.expected.is_some_and(|n| n != s.received) {
                return self.stream_reset(stream, ErrorCode::PROTOCOL_ERROR, events);
            }
            self.end_remote(stream);
            events.push(Event::Data {
                stream,
                range: self.data.len()..self.data.len(),
                end_stream: true,
            });
            return Ok(());
        }
        if stream <= self.last_stream {
            return self.late_frame(stream, Kind::Headers, events);
        }
        if stream.is_multiple_of(2) {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "a client stream with an even number",
            ));
        }
        self.last_stream = stream;
        if self.no_new_streams {
            return Ok(());
        }
        if p.self_dependent {
            // §5.3.1: a stream error; the stream opened and closed.
            self.stream_reset(stream, ErrorCode::PROTOCOL_ERROR, events)?;
            self.closed.remember(stream, How::Reset);
            return self.refused(
                Violation::Malformed,
                "a stream that depends on itself",
                events,
            );
        }
        self.streams.insert(
            stream,
            Stream {
                state: if p.end_stream {
                    State::HalfClosedRemote
                } else {
                    State::Open
                },
                answered: false,
                send_window: self.peer_initial_window,
                recv_window: self.cfg.initial_window as i64,
                expected: None,
                received: 0,
            },
        );
        if self.streams.len() > self.cfg.max_concurrent_streams as usize {
            self.reset(stream, ErrorCode::REFUSED_STREAM);
            return self.refused(
                Violation::StreamLimit,
                "too many concurrent streams",
                events,
            );
        }
        let fields = match decoded {
            Block::Fields(f) => f,
            Block::TooLarge { .. } => {
                self.send_headers(stream, 431, &[], true);
                if self.streams.remove(&stream).is_some() {
                    self.closed.remember(stream, How::Reset);
                }
                return self.refused(Violation::HeaderList, "header list too large", events);
            }
        };
        let req = request::parse(stream, fields, p.end_stream).and_then(|req| {
            let expected = content_length(&req)?;
            // A request that ends with its head has an empty body.
            if p.end_stream && expected.is_some_and(|n| n > 0) {
                return Err("a content-length for a body that is not there");
            }
            Ok((req, expected))
        });
        match req {
            Ok((req, expected)) => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.expected = expected;
                }
                events.push(Event::Request(req));
                Ok(())
            }
            Err(reason) => {
                self.reset(stream, ErrorCode::PROTOCOL_ERROR);
                self.refused(Violation::Malformed, reason, events)
            }
        }
    }

    /// A frame of `kind` on `stream`, which the peer opened and which is
    /// closed: answered as [`super::closed::late`] says.
    pub(super) fn late_frame(
        &mut self,
        stream: u32,
        kind: Kind,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        match self.closed.late(stream, kind) {
            Late::Ignore => Ok(()),
            Late::StreamClosed => self.stream_reset(stream, ErrorCode::STREAM_CLOSED, events),
            Late::ConnectionError => Err(conn(
                ErrorCode::STREAM_CLOSED,
                "a frame on a stream both sides ended",
            )),
        }
    }
}
