"""HTTP/2 cases of RFC 9113 that a well-behaved client library will not
send, written as raw frames (header blocks by Python's `hpack`), each on a
new connection, modelled on h2spec's: what the server must answer.

    h2_conformance.py HOST PORT [--tls]

Each case prints "ok: <section> <what>"; then "N passed, 0 failed"; the
first failure exits non-zero.
"""

import struct
import sys
import time

import hpack

from h2_clients import h2_socket

HOST, PORT = sys.argv[1], int(sys.argv[2])
TLS = "--tls" in sys.argv[3:]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, PRIORITY_FLAG, ACK = 0x1, 0x4, 0x20, 0x1
PROTOCOL_ERROR, STREAM_CLOSED = 1, 5
TIMEOUT = 10
PASSED = 0


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class Conn:
    def __init__(self, preface=PREFACE):
        self.sock = h2_socket(HOST, PORT, TLS, TIMEOUT)
        self.buf = b""
        self.enc = hpack.Encoder()
        self.sock.sendall(preface)
        if preface == PREFACE:
            self.send(frame(SETTINGS, 0, 0))
            # The server's SETTINGS, then its ACK of ours.
            acked = False
            while not acked:
                kind, flags, _, _ = self.read()
                if kind == SETTINGS and not flags & ACK:
                    self.send(frame(SETTINGS, ACK, 0))
                acked = kind == SETTINGS and flags & ACK

    def send(self, b):
        self.sock.sendall(b)

    def read(self):
        """The next frame (kind, flags, stream, payload); None at EOF."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        kind, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
        return kind, flags, stream, payload

    def headers(self, stream, fields, flags=END_HEADERS, priority=None):
        block = self.enc.encode(fields)
        if priority is not None:
            flags |= PRIORITY_FLAG
            block = struct.pack(">IB", priority, 15) + block
        self.send(frame(HEADERS, flags, stream, block))

    def request(self, stream, method="POST", path="/", extra=(), end=False, priority=None):
        fields = [(":method", method), (":scheme", "https" if TLS else "http"),
                  (":authority", f"{HOST}:{PORT}"), (":path", path), *extra]
        self.headers(stream, fields, END_HEADERS | (END_STREAM if end else 0), priority)

    def error(self):
        """Frames until a stream or connection error (others, such as a
        response, are passed over): ("rst", stream, code), ("goaway", code),
        or ("eof",) when the connection ended without either."""
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            f = self.read()
            if f is None:
                return ("eof",)
            kind, _, stream, payload = f
            if kind == RST_STREAM:
                return ("rst", stream, int.from_bytes(payload[:4], "big"))
            if kind == GOAWAY:
                return ("goaway", int.from_bytes(payload[4:8], "big"))
        raise AssertionError("no error in time")

    def end_of(self, stream):
        """Read the response on `stream` to its END_STREAM."""
        while True:
            f = self.read()
            assert f is not None, "EOF before the response ended"
            kind, flags, s, _ = f
            if s == stream and kind in (HEADERS, DATA) and flags & END_STREAM:
                return


def expect(got, *accepted):
    assert got in accepted, f"got {got}, want one of {accepted}"


def case(name, fn):
    global PASSED
    fn()
    PASSED += 1
    print("ok:", name)


def invalid_preface():
    # Over TLS the client chose h2 by ALPN, so anything is a (bad) preface;
    # in cleartext a preface is recognised by its start.
    c = Conn(b"INVALID CONNECTION PREFACE\r\n\r\n" if TLS else b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    expect(c.error(), ("goaway", PROTOCOL_ERROR))


def data_after_client_reset():
    c = Conn()
    c.request(1)
    c.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
    c.send(frame(DATA, END_STREAM, 1, b"test"))
    expect(c.error(), ("rst", 1, STREAM_CLOSED), ("goaway", STREAM_CLOSED))


def data_on_a_closed_stream():
    c = Conn()
    c.request(1, "GET", "/healthz", end=True)
    c.end_of(1)
    c.send(frame(DATA, END_STREAM, 1, b"test"))
    expect(c.error(), ("rst", 1, STREAM_CLOSED), ("goaway", STREAM_CLOSED))


def data_after_end_stream():
    # Half closed (remote), or closed once the answer went: either way
    # not "open" or "half-closed (local)" (§5.1, §6.1).
    c = Conn()
    c.request(1, "GET", "/healthz", end=True)
    c.send(frame(DATA, END_STREAM, 1, b"test"))
    expect(c.error(), ("rst", 1, STREAM_CLOSED), ("goaway", STREAM_CLOSED))


def headers_on_itself():
    c = Conn()
    c.request(1, "GET", "/healthz", end=True, priority=1)
    expect(c.error(), ("rst", 1, PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))


def priority_on_itself():
    c = Conn()
    c.request(1, "GET", "/healthz", end=False)
    c.send(frame(PRIORITY, 0, 1, struct.pack(">IB", 1, 15)))
    expect(c.error(), ("rst", 1, PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))


def content_length_one_frame():
    c = Conn()
    c.request(1, "POST", "/", extra=[("content-length", "1")])
    c.send(frame(DATA, END_STREAM, 1, b"test"))
    expect(c.error(), ("rst", 1, PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))


def content_length_summed():
    c = Conn()
    c.request(1, "POST", "/", extra=[("content-length", "8")])
    c.send(frame(DATA, 0, 1, b"test"))
    c.send(frame(DATA, 0, 1, b"test"))
    c.send(frame(DATA, END_STREAM, 1, b"x"))
    expect(c.error(), ("rst", 1, PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))


def still_serving():
    c = Conn()
    c.request(1, "GET", "/healthz", end=True)
    c.end_of(1)


case("3.5 an invalid connection preface: GOAWAY PROTOCOL_ERROR", invalid_preface)
case("5.1 closed: DATA after the client's RST_STREAM: STREAM_CLOSED", data_after_client_reset)
case("5.1 closed: DATA on a stream both sides ended: STREAM_CLOSED", data_on_a_closed_stream)
case("5.1 half-closed (remote), 6.1: DATA after END_STREAM: STREAM_CLOSED", data_after_end_stream)
case("5.3.1 HEADERS depending on its own stream: PROTOCOL_ERROR", headers_on_itself)
case("5.3.1 PRIORITY depending on its own stream: PROTOCOL_ERROR", priority_on_itself)
case("8.1.1 content-length above one DATA frame: PROTOCOL_ERROR", content_length_one_frame)
case("8.1.1 content-length against DATA summed over frames: PROTOCOL_ERROR", content_length_summed)
case("and a good request is still answered", still_serving)
print(f"{PASSED} passed, 0 failed")
