"""HTTP/2 clients for ringwave, driven by Python's h2 (the hyper project's
HTTP/2 state machine) and wsproto's WebSocket framing: nothing of ringwave's
own code on the client side.

    h2_clients.py HOST PORT [--tls] websockets   several RFC 8441 WebSocket
                                                 streams on one connection,
                                                 each echoing, with and
                                                 without permessage-deflate
    h2_clients.py HOST PORT [--tls] feed         /feed over HTTP/2: a
                                                 subscriber stream receives
                                                 what POST /publish streams
                                                 of the same connection send
    h2_clients.py HOST PORT [--tls] pingflood PID
                                                 1,000,000 pings on a
                                                 WebSocket stream whose
                                                 pongs are never read: the
                                                 server's (PID) RSS grows by
                                                 less than 32 MiB

Prints one line per check, then "N passed, 0 failed"; exits non-zero on
the first failure.
"""

import os
import socket
import ssl
import sys
import time
import urllib.request

import h2.config
import h2.connection
import h2.events
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

TIMEOUT = 20
PASSED = 0


def ok(what):
    global PASSED
    PASSED += 1
    print("ok:", what)


def h2_socket(host, port, tls, timeout=TIMEOUT):
    """A connected socket: over TLS (the test certificate not checked)
    with `h2` chosen by ALPN, or plain."""
    sock = socket.create_connection((host, port), timeout=timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
        assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    return sock


class Conn:
    """One HTTP/2 connection and the events it has read."""

    def __init__(self, host, port, tls):
        self.sock = h2_socket(host, port, tls)
        self.scheme = "https" if tls else "http"
        self.authority = f"{host}:{port}"
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()
        self.headers = {}
        self.data = {}
        self.ended = set()
        self.reset = {}
        self.settings_seen = False
        # Whether DATA read is acknowledged (a client that does not read
        # leaves the server's send windows closed).
        self.reading = True
        # The server's SETTINGS, with RFC 8441's flag.
        self.pump_until(lambda: self.settings_seen)
        assert self.h2.remote_settings.enable_connect_protocol == 1

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError("the server closed the connection")
        for ev in self.h2.receive_data(chunk):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(ev, h2.events.ResponseReceived):
                self.headers[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                if self.reading:
                    self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.reset[ev.stream_id] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise AssertionError(f"GOAWAY {ev.error_code}: {ev.additional_data}")
        self.flush()

    def pump_until(self, done):
        while not done():
            self.pump()

    def take(self, stream):
        b = bytes(self.data.get(stream, b""))
        self.data[stream] = bytearray()
        return b

    def request(self, method, path, body=b"", extra=()):
        s = self.h2.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", self.scheme), (":authority", self.authority), (":path", path)]
        hdrs += list(extra)
        if body:
            hdrs.append(("content-length", str(len(body))))
        self.h2.send_headers(s, hdrs, end_stream=not body)
        if body:
            self.h2.send_data(s, body, end_stream=True)
        self.flush()
        return s


class WsStream:
    """A WebSocket over one HTTP/2 stream (extended CONNECT)."""

    def __init__(self, conn, path, deflate=False):
        self.c = conn
        extra = [("sec-websocket-version", "13")]
        ext = []
        if deflate:
            pmd = PerMessageDeflate()
            extra.append(("sec-websocket-extensions", f"{pmd.name}; {pmd.offer()}"))
            ext = [pmd]
        s = conn.h2.get_next_available_stream_id()
        conn.h2.send_headers(s, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", conn.scheme),
            (":authority", conn.authority), (":path", path)] + extra)
        conn.flush()
        conn.pump_until(lambda: s in conn.headers or s in conn.reset)
        head = conn.headers[s]
        assert head[b":status"] == b"200", head
        if deflate:
            value = head.get(b"sec-websocket-extensions")
            assert value and value.startswith(b"permessage-deflate"), head
            ext[0].finalize(value.decode())
        self.stream = s
        self.proto = FrameProtocol(client=True, extensions=ext)
        self.messages = []
        self.partial = {}

    def send(self, payload):
        self.c.h2.send_data(self.stream, self.proto.send_data(payload, fin=True))
        self.c.flush()

    def send_all(self, data):
        # Within the windows h2 tracks: the rest after WINDOW_UPDATEs.
        view = memoryview(data)
        while view:
            room = min(self.c.h2.local_flow_control_window(self.stream), self.c.h2.max_outbound_frame_size)
            if room == 0:
                self.c.pump()
                continue
            self.c.h2.send_data(self.stream, bytes(view[:room]))
            self.c.flush()
            view = view[room:]

    def read_frames(self):
        self.proto.receive_bytes(self.c.take(self.stream))
        for f in self.proto.received_frames():
            if f.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                kind = self.partial.get("kind", f.opcode)
                acc = self.partial.setdefault("data", "" if kind == Opcode.TEXT else b"")
                self.partial["kind"] = kind
                self.partial["data"] = acc + f.payload
                if f.message_finished:
                    self.messages.append(self.partial.pop("data"))
                    self.partial.clear()
            elif f.opcode == Opcode.CLOSE:
                self.messages.append(("close", f.payload[0]))

    def receive(self):
        self.read_frames()
        while not self.messages:
            self.c.pump()
            self.read_frames()
        return self.messages.pop(0)

    def close(self):
        self.send_all(self.proto.close(1000, "bye"))
        msg = self.receive()
        assert msg[0] == "close" and msg[1] == 1000, msg
        self.c.pump_until(lambda: self.stream in self.c.ended or self.stream in self.c.reset)
        assert self.stream in self.c.ended, f"stream {self.stream} was reset, not ended"
        self.c.h2.end_stream(self.stream)
        self.c.flush()


def websockets(host, port, tls):
    c = Conn(host, port, tls)
    streams = [WsStream(c, f"/echo/{i}", deflate=(i % 2 == 1)) for i in range(6)]
    ok(f"{len(streams)} WebSocket streams on one connection (3 with permessage-deflate)")
    # Interleaved: every stream echoes text, binary, and a message larger
    # than the 64 KiB default window (flow control in both directions).
    for round_ in range(3):
        for i, w in enumerate(streams):
            w.send(f"hello {i} round {round_} ✓")
        for i, w in enumerate(streams):
            got = w.receive()
            assert got == f"hello {i} round {round_} ✓", got
    ok("text echoed on every stream, in order")
    big = os.urandom(300_000)
    for w in streams:
        frame = w.proto.send_data(big, fin=True)
        w.send_all(frame)
    for w in streams:
        got = w.receive()
        assert got == big, (len(got), len(big))
    ok("300,000-byte binary messages echoed on every stream (past both windows)")
    for w in streams[:3]:
        w.close()
    # The others still work after their siblings closed.
    for w in streams[3:]:
        w.send(b"\x00\x01\x02")
        assert w.receive() == b"\x00\x01\x02"
        w.close()
    ok("close handshakes end each stream with END_STREAM; the rest go on")
    # A plain request on the same connection.
    s = c.request("GET", "/healthz")
    c.pump_until(lambda: s in c.ended)
    assert c.headers[s][b":status"] == b"200" and c.take(s) == b"ok\n"
    ok("/healthz on the same connection")


def feed(host, port, tls):
    c = Conn(host, port, tls)
    w = WsStream(c, "/feed")
    w.send('{"op":"subscribe","topic":"h2news"}')
    got = w.receive()
    assert '"subscribed"' in got, got
    for i in range(20):
        s = c.request("POST", "/publish/h2news", body=f"item {i}".encode())
        c.pump_until(lambda: s in c.ended)
        assert c.headers[s][b":status"] == b"202", c.headers[s]
    for i in range(20):
        got = w.receive()
        assert got == f"item {i}", got
    ok("20 publications over POST streams reached the /feed stream, in order")
    # A body that is not exactly its content-length is malformed (RFC 9113
    # 8.1.1): a stream error PROTOCOL_ERROR, and nothing of it published.
    for declared, body in (("1", b"test"), ("10", b"test")):
        s = c.h2.get_next_available_stream_id()
        c.h2.send_headers(s, [(":method", "POST"), (":scheme", c.scheme),
                              (":authority", c.authority), (":path", "/publish/h2news"),
                              ("content-length", declared)])
        c.h2.send_data(s, body, end_stream=True)
        c.flush()
        c.pump_until(lambda: s in c.ended or s in c.reset)
        assert c.reset.get(s) == 1, (declared, c.headers.get(s), c.reset.get(s))
    s = c.request("POST", "/publish/h2news", body=b"after")
    c.pump_until(lambda: s in c.ended)
    got = w.receive()
    assert got == "after", got
    ok("bodies longer or shorter than their content-length refused, nothing published")
    # An event stream on the same connection.
    sse = c.request("GET", "/sse/h2news")
    c.pump_until(lambda: sse in c.headers)
    assert c.headers[sse][b"content-type"] == b"text/event-stream", c.headers[sse]
    c.pump_until(lambda: b"subscribed" in c.data.get(sse, b""))
    s = c.request("POST", "/publish/h2news", body=b"to both")
    c.pump_until(lambda: b"data: to both" in c.data.get(sse, b""))
    assert w.receive() == "to both"
    ok("an SSE stream and the WebSocket stream on one connection both receive")
    c.h2.reset_stream(sse)
    c.flush()
    w.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def bytes_in(host, port):
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=TIMEOUT) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("ringwave_bytes_in_total "):
                return float(line.split()[1])
    raise AssertionError("no ringwave_bytes_in_total")


def pingflood(host, port, tls, pid, metrics_port):
    c = Conn(host, port, tls)
    w = WsStream(c, "/echo")
    c.reading = False
    before = bytes_in(host, metrics_port)
    rss_before = rss_kib(pid)
    burst = b"".join(w.proto.ping(bytes([7] * 125)) for _ in range(1000))
    for _ in range(1000):
        w.send_all(burst)
    sent = len(burst) * 1000
    # Every ping was read once the server counted its bytes (in
    # cleartext: over TLS the count is of ciphertext). Polled, bounded.
    deadline = time.monotonic() + 60
    while bytes_in(host, metrics_port) < before + sent:
        assert time.monotonic() < deadline, "the server did not read every ping"
        time.sleep(0.05)
    grown = (rss_kib(pid) - rss_before) // 1024
    print(f"RSS grew by {grown} MiB over 1,000,000 pings ({sent} bytes)")
    assert grown < 32, f"RSS grew by {grown} MiB"
    ok("the pongs to a ping flood on a WebSocket stream that is not read stay bounded")


def main():
    args = sys.argv[1:]
    tls = "--tls" in args
    args = [a for a in args if a != "--tls"]
    host, port, mode = args[0], int(args[1]), args[2]
    if mode == "pingflood":
        metrics_port = int(args[4]) if len(args) > 4 else port
        pingflood(host, port, tls, int(args[3]), metrics_port)
    else:
        {"websockets": websockets, "feed": feed}[mode](host, port, tls)
    print(f"{PASSED} passed, 0 failed")


if __name__ == "__main__":
    main()
