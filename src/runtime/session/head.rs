//! The request-head sessions: an optional PROXY protocol v2 header (with
//! `trust_proxy`), then the HTTP request head. Both end in a request for the
//! route table, or in an error response.

use std::net::{IpAddr, SocketAddr};

use crate::proto::http::{HttpError, HttpRequest, RequestParser};
use crate::proto::proxy::{self, Preamble};
use crate::proto::Limits;

use super::super::app::Response;
use super::http::Respond;

/// Reading a PROXY protocol v2 header, if any.
pub(in crate::runtime) struct ProxyHead {
    buf: Vec<u8>,
    peer: Option<SocketAddr>,
}

/// What the PROXY header reader made of the bytes so far.
pub(in crate::runtime) enum ProxyStep {
    /// Need more bytes.
    Incomplete,
    /// Header read (or absent): the request head follows, starting with
    /// `rest`.
    Done(RequestHead, Vec<u8>),
    /// Not a valid header: answer 400.
    Invalid(Response),
}

impl ProxyHead {
    pub(in crate::runtime) fn new(peer: Option<SocketAddr>) -> ProxyHead {
        ProxyHead {
            buf: Vec::new(),
            peer,
        }
    }

    pub(in crate::runtime) fn read(&mut self, data: &[u8], limits: &Limits) -> ProxyStep {
        self.buf.extend_from_slice(data);
        let (skip, source) = match proxy::parse_v2(&self.buf) {
            Preamble::Incomplete => return ProxyStep::Incomplete,
            Preamble::Absent => (0, None),
            Preamble::Header { len, source } => (len, source),
            Preamble::Invalid(why) => {
                return ProxyStep::Invalid(HttpError::bad(why).response());
            }
        };
        let rest = std::mem::take(&mut self.buf).split_off(skip);
        let mut head = RequestHead::new(limits, self.peer);
        head.proxied = source;
        ProxyStep::Done(head, rest)
    }
}

/// Reading the HTTP request head. On a persistent connection (HTTP/1.1
/// keep-alive) it is also where the answer to the request before goes out:
/// what arrives meanwhile (a pipelined request) is held, and read once the
/// answer is written, so answers leave in the order of their requests and
/// a client that does not read them cannot make us hold more than one.
pub(in crate::runtime) struct RequestHead {
    parser: RequestParser,
    peer: Option<SocketAddr>,
    /// The client a PROXY v2 header named.
    proxied: Option<SocketAddr>,
    /// Requests answered on this connection before this one.
    served: u32,
    /// The previous request's answer, while it is written.
    answer: Respond,
    /// Bytes that came while the answer was unsent.
    held: Vec<u8>,
}

/// What the head reader made of the bytes so far.
pub(in crate::runtime) enum HeadStep {
    /// Need more bytes.
    Incomplete,
    /// A whole head, and the bytes after it.
    Request(HttpRequest, Vec<u8>),
    /// Malformed or too large.
    Invalid(Response),
}

impl RequestHead {
    pub(in crate::runtime) fn new(limits: &Limits, peer: Option<SocketAddr>) -> RequestHead {
        RequestHead {
            parser: RequestParser::new(limits),
            peer,
            proxied: None,
            served: 0,
            answer: Respond::new(Vec::new()),
            held: Vec::new(),
        }
    }

    /// The head of the connection's next request, after this one's
    /// `answer`; `rest`, what came after this request, is held until the
    /// answer is out.
    pub(in crate::runtime) fn next(
        &self,
        limits: &Limits,
        answer: Vec<u8>,
        rest: Vec<u8>,
    ) -> RequestHead {
        RequestHead {
            parser: RequestParser::new(limits),
            peer: self.peer,
            proxied: self.proxied,
            served: self.served + 1,
            answer: Respond::new(answer),
            held: rest,
        }
    }

    pub(in crate::runtime) fn read(&mut self, data: &[u8]) -> HeadStep {
        match self.parser.read(data) {
            Ok(None) => HeadStep::Incomplete,
            Ok(Some(parsed)) => HeadStep::Request(parsed.request, parsed.rest),
            Err(e) => HeadStep::Invalid(e.response()),
        }
    }

    /// Requests answered on this connection before this one.
    pub(in crate::runtime) fn served(&self) -> u32 {
        self.served
    }

    /// The previous answer's unsent bytes.
    pub(in crate::runtime) fn output(&self) -> &[u8] {
        self.answer.output()
    }

    pub(in crate::runtime) fn advance(&mut self, n: usize) {
        self.answer.advance(n);
        if self.answer.output().is_empty() {
            // Not held while the connection waits for its next request.
            self.answer = Respond::new(Vec::new());
        }
    }

    /// Bytes are held: the previous answer is still going out, or it is out
    /// and they wait to be read ([`RequestHead::take_held`]).
    pub(in crate::runtime) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether bytes that arrive now must wait (the previous answer is
    /// unsent, or bytes before them wait).
    pub(in crate::runtime) fn must_hold(&self) -> bool {
        !self.answer.output().is_empty() || self.holding()
    }

    /// Hold bytes that came while the answer was unsent; the count held.
    pub(in crate::runtime) fn hold(&mut self, data: &[u8]) -> usize {
        self.held.extend_from_slice(data);
        self.held.len()
    }

    /// The held bytes, to be read now that the answer is out.
    pub(in crate::runtime) fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    /// A persistent connection waiting for its next request, with nothing
    /// of it read.
    pub(in crate::runtime) fn idle(&self) -> bool {
        self.served > 0 && self.is_empty() && !self.must_hold()
    }

    /// The connection's first bytes: nothing read and nothing answered.
    pub(in crate::runtime) fn fresh(&self) -> bool {
        self.served == 0 && self.is_empty()
    }

    /// Nothing read yet.
    pub(in crate::runtime) fn is_empty(&self) -> bool {
        self.parser.buffered() == 0
    }

    /// The TCP peer.
    pub(in crate::runtime) fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The client's address: the peer's, or behind a trusted proxy the one
    /// its PROXY header or the last `X-Forwarded-For` entry names.
    pub(in crate::runtime) fn client_ip(
        &self,
        http: &HttpRequest,
        trust_proxy: bool,
    ) -> Option<IpAddr> {
        client_ip(self.peer, self.proxied, http, trust_proxy)
    }
}

/// A request's client: the TCP peer's address, or behind a trusted proxy
/// the one its PROXY header named (`proxied`), else the last
/// `X-Forwarded-For` entry, else the peer's.
pub(in crate::runtime) fn client_ip(
    peer: Option<SocketAddr>,
    proxied: Option<SocketAddr>,
    http: &HttpRequest,
    trust_proxy: bool,
) -> Option<IpAddr> {
    let peer = peer.map(|a| a.ip());
    if !trust_proxy {
        return peer;
    }
    proxied
        .map(|a| a.ip())
        .or_else(|| proxy::forwarded_for(http.header_values("x-forwarded-for")))
        .or(peer)
}
