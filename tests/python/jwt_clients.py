"""Tokens made with PyJWT (and `cryptography` for the keys) against a
ringwave started with --jwt-key: nothing of ringwave's own code makes or
reads a token here.

    jwt_clients.py keys DIR                  write the keys the server is
                                             started with (secret, RSA, EC,
                                             Ed25519, a JWKS of two EC keys)
    jwt_clients.py rotate DIR                replace the HMAC secret (the old
                                             one is kept as hs.old)
    jwt_clients.py check HOST PORT DIR       every route with good, bad and
                                             missing tokens, over HTTP/1.1
                                             and HTTP/2
    jwt_clients.py rotated HOST PORT DIR     after SIGHUP: the old secret's
                                             tokens refused, the new one's
                                             accepted
    jwt_clients.py expiry HOST PORT DIR      a WebSocket closed with 4001 and
                                             an event stream ended once the
                                             token expires, not before
    jwt_clients.py lifetime HOST PORT DIR    (--max-lifetime 2) a WebSocket
                                             closed with 1001, traffic or not
    jwt_clients.py inband HOST PORT DIR      (--handshake-timeout 2) /feed
                                             tokens sent as a first message,
                                             refreshed, or never sent

Prints one line per case, then "N passed, N failed".
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from cases import case, run

PUBLIC = serialization.PublicFormat.SubjectPublicKeyInfo
PEM = serialization.Encoding.PEM


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def keys(d):
    os.makedirs(d, exist_ok=True)
    write(f"{d}/hs.key", secrets.token_hex(32).encode() + b"\n")
    pairs = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }
    for name, k in pairs.items():
        write(f"{d}/{name}.pem", k.public_key().public_bytes(PEM, PUBLIC))
        write(f"{d}/{name}.priv.pem", k.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    jwks = []
    for kid in ("k1", "k2"):
        k = ec.generate_private_key(ec.SECP256R1())
        write(f"{d}/{kid}.priv.pem", k.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key()))
        jwk.update(kid=kid, use="sig", alg="ES256")
        jwks.append(jwk)
    write(f"{d}/jwks.json", json.dumps({"keys": jwks}).encode())


def rotate(d):
    os.replace(f"{d}/hs.key", f"{d}/hs.old")
    write(f"{d}/hs.key", secrets.token_hex(32).encode() + b"\n")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def secret(d, name="hs.key"):
    return read(f"{d}/{name}").rstrip(b"\n")


def claims(subscribe=("ticks", "fx.*"), publish=("news",), exp=300, **extra):
    now = int(time.time())
    c = {"sub": "alice", "exp": now + exp, "topics": {"subscribe": list(subscribe), "publish": list(publish)}}
    c.update(extra)
    return c


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unsigned(payload, alg, key=None):
    """A token made by hand: `alg: none` (no key), or HMAC with `key`."""
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    msg = f"{head}.{body}"
    if key is None:
        return msg + "."
    return msg + "." + b64(hmac.new(key, msg.encode(), hashlib.sha256).digest())


def ws_status(url, headers=None):
    """The status of a WebSocket upgrade: 101, or what refused it."""
    try:
        with connect(url, additional_headers=headers or {}, open_timeout=10) as ws:
            ws.close()
            return 101, ""
    except InvalidStatus as e:
        return e.response.status_code, e.response.body.decode(errors="replace")


def get(path, headers=None, method="GET", body=None):
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    if r.getheader("content-type") == "text/event-stream":
        return r.status, r, c
    data = r.read().decode(errors="replace")
    c.close()
    return r.status, data, r


def bearer(t):
    return {"Authorization": f"Bearer {t}"}


if __name__ == "__main__" and sys.argv[1] in ("keys", "rotate"):
    {"keys": keys, "rotate": rotate}[sys.argv[1]](sys.argv[2])
    print("1 passed, 0 failed")
    sys.exit(0)

HOST, PORT, DIR = sys.argv[2], int(sys.argv[3]), sys.argv[4]
WS = f"ws://{HOST}:{PORT}"


def hs(c=None, name="hs.key", **kw):
    return jwt.encode(c or claims(), secret(DIR, name), algorithm="HS256", **kw)


def signed(alg, keyfile, c=None, **kw):
    return jwt.encode(c or claims(), read(f"{DIR}/{keyfile}"), algorithm=alg, **kw)


if sys.argv[1] == "check":

    @case
    async def every_key_type_admits_an_upgrade():
        for name, token in [
            ("HS256", hs()),
            ("HS512", jwt.encode(claims(), secret(DIR), algorithm="HS512")),
            ("RS256", signed("RS256", "rsa.priv.pem")),
            ("PS256", signed("PS256", "rsa.priv.pem")),
            ("ES256", signed("ES256", "ec.priv.pem")),
            ("EdDSA", signed("EdDSA", "ed.priv.pem")),
            ("JWKS k2", signed("ES256", "k2.priv.pem", headers={"kid": "k2"})),
        ]:
            st, body = ws_status(f"{WS}/echo", bearer(token))
            assert st == 101, f"{name}: {st} {body}"
            st, body = ws_status(f"{WS}/echo?token={token}")
            assert st == 101, f"{name} as ?token=: {st} {body}"

    @case
    async def bad_tokens_are_refused_with_their_reason():
        other = secrets.token_hex(32).encode()
        rsa_pem = read(f"{DIR}/rsa.pem")
        good = hs()
        head, body, sig = good.split(".")
        tampered_body = b64(json.dumps(claims(subscribe=["*"])).encode())
        for name, token, why in [
            ("expired", hs(claims(exp=-60)), "expired"),
            ("not yet valid", hs(claims(nbf=int(time.time()) + 120)), "not yet valid"),
            ("no exp", hs({"sub": "x"}), "no exp claim"),
            ("wrong key", jwt.encode(claims(), other, algorithm="HS256"), "bad signature"),
            ("alg none", unsigned(claims(), "none"), "malformed"),
            ("HS256 over the RSA key's bytes", unsigned(claims(), "HS256", rsa_pem), "bad signature"),
            ("tampered", f"{head}.{tampered_body}.{sig}", "bad signature"),
            ("JWKS k1 named, k2 signed", signed("ES256", "k2.priv.pem", headers={"kid": "k1"}), "bad signature"),
            ("garbage", "not.a.token", "malformed"),
        ]:
            st, text = ws_status(f"{WS}/echo", bearer(token))
            assert st == 401, f"{name}: {st} {text}"
            assert why in text, f"{name}: {text!r}"

    @case
    async def no_token_is_401_with_the_scheme_to_use():
        st, body, r = get("/sse/ticks")
        assert st == 401, (st, body)
        assert r.getheader("www-authenticate") == "Bearer", r.getheaders()
        st, _ = ws_status(f"{WS}/echo")
        assert st == 401
        st, body, _ = get("/")
        assert st == 401, "the page"
        st, body, _ = get("/metrics")
        assert st == 401, "metrics"
        st, body, _ = get("/healthz")
        assert (st, body) == (200, "ok\n"), "healthz stays open"

    @case
    async def an_oversized_token_is_refused_unread():
        big = hs(claims(pad="x" * 9000))
        st, text = ws_status(f"{WS}/echo", bearer(big))
        assert st == 401 and "too long" in text, (st, text)

    @case
    async def the_scheme_is_matched_without_case():
        st, text = ws_status(f"{WS}/echo", {"Authorization": f"bearer {hs()}"})
        assert st == 101, (st, text)

    @case
    async def the_feed_subscribes_and_publishes_within_the_claims():
        with connect(f"{WS}/feed", additional_headers=bearer(hs())) as ws:
            for topic, ok in [("ticks", True), ("fx.EURUSD", True), ("rates", False), ("fx", False)]:
                ws.send(json.dumps({"op": "subscribe", "topic": topic}))
                reply = json.loads(ws.recv(timeout=10))
                if ok:
                    assert reply["event"] == "subscribed", reply
                else:
                    assert reply["event"] == "error" and reply["topic"] == topic, reply
            ws.send(json.dumps({"op": "publish", "topic": "ticks", "data": "no"}))
            reply = json.loads(ws.recv(timeout=10))
            assert reply["event"] == "error" and reply["topic"] == "ticks", reply
            # Its own publication on a topic it may publish on and not
            # read: subscribe to it with another token.
            sub = claims(subscribe=["news"])
            with connect(f"{WS}/feed", additional_headers=bearer(hs(sub))) as reader:
                reader.send(json.dumps({"op": "subscribe", "topic": "news"}))
                assert json.loads(reader.recv(timeout=10))["event"] == "subscribed"
                ws.send(json.dumps({"op": "publish", "topic": "news", "data": "hello"}))
                assert reader.recv(timeout=10) == "hello"

    @case
    async def sse_over_http1_within_the_claims():
        st, body, _ = get("/sse/rates", bearer(hs()))
        assert st == 403 and "rates" in body, (st, body)
        st, r, c = get("/sse/fx.USDJPY", bearer(hs()))
        assert st == 200, st
        # Subscribed once the head came: a publication inside the
        # publisher's claims reaches it.
        pub = hs(claims(publish=["fx.*"]))
        s, text, _ = get("/publish/fx.USDJPY", bearer(pub), "POST", b"142")
        assert s == 202, (s, text)
        lines = []
        while b"data: 142\n" not in lines:
            assert len(lines) < 20, lines
            lines.append(r.fp.readline())
        c.close()

    @case
    async def publish_within_and_outside_the_claims():
        st, text, _ = get("/publish/news", bearer(hs()), "POST", b"x")
        assert st == 202, (st, text)
        st, text, _ = get("/publish/ticks", bearer(hs()), "POST", b"x")
        assert st == 403, (st, text)
        st, text, _ = get("/publish/news", {}, "POST", b"x")
        assert st == 401, (st, text)

    @case
    async def sse_over_http2_within_the_claims():
        from h2_clients import Conn

        c = Conn(HOST, PORT, False)
        for path, want in [("/sse/ticks", b"200"), ("/sse/rates", b"403")]:
            s = c.h2.get_next_available_stream_id()
            c.h2.send_headers(s, [
                (":method", "GET"), (":scheme", "http"), (":authority", c.authority),
                (":path", path), ("authorization", f"Bearer {hs()}")], end_stream=True)
            c.flush()
            c.pump_until(lambda: s in c.headers)
            assert c.headers[s][b":status"] == want, (path, c.headers[s])
        s = c.h2.get_next_available_stream_id()
        c.h2.send_headers(s, [
            (":method", "GET"), (":scheme", "http"), (":authority", c.authority),
            (":path", "/sse/ticks")], end_stream=True)
        c.flush()
        c.pump_until(lambda: s in c.headers)
        assert c.headers[s][b":status"] == b"401", c.headers[s]

elif sys.argv[1] == "expiry":

    def closed_with(url, headers=None):
        """Open a WebSocket and wait (bounded) for the server to close it:
        its close code, reason and when."""
        from websockets.exceptions import ConnectionClosed

        with connect(url, additional_headers=headers or {}, open_timeout=10) as ws:
            try:
                ws.recv(timeout=30)
                raise AssertionError("a message instead of a close")
            except ConnectionClosed as e:
                return e.rcvd.code, e.rcvd.reason, time.time()

    @case
    async def a_websocket_is_closed_with_4001_once_its_token_expires():
        exp = int(time.time()) + 3
        code, reason, at = closed_with(f"{WS}/echo", bearer(hs(claims(exp=exp - int(time.time())))))
        assert (code, reason) == (4001, "no valid token"), (code, reason)
        assert at >= exp, f"closed {exp - at:.2f} s before the token expired"

    @case
    async def an_event_stream_ends_once_its_token_expires():
        exp = int(time.time()) + 3
        st, r, c = get("/sse/ticks", bearer(hs(claims(exp=exp - int(time.time())))))
        assert st == 200, st
        # To the end of the stream (a silence of 10 s fails: the socket's
        # timeout).
        r.read()
        assert time.time() >= exp, "ended before the token expired"
        c.close()

elif sys.argv[1] == "lifetime":

    @case
    async def a_websocket_is_closed_with_1001_at_its_lifetime():
        from websockets.exceptions import ConnectionClosed

        start = time.time()
        with connect(f"{WS}/echo", open_timeout=10) as ws:
            try:
                while True:
                    ws.send("x")
                    assert ws.recv(timeout=30) == "x"
                    time.sleep(0.2)  # traffic while it lives: it must not extend it
            except ConnectionClosed as e:
                code, reason = e.rcvd.code, e.rcvd.reason
        took = time.time() - start
        assert (code, reason) == (1001, "connection lifetime reached"), (code, reason)
        # --max-lifetime 2, less up to a tenth.
        assert took >= 1.8, f"closed after {took:.2f} s"

elif sys.argv[1] == "inband":
    # The server runs with --handshake-timeout 2.
    from websockets.exceptions import ConnectionClosed

    def ask(ws, req):
        ws.send(json.dumps(req))
        return json.loads(ws.recv(timeout=10))

    @case
    async def a_feed_client_may_send_its_token_first_and_nothing_else():
        st, _ = ws_status(f"{WS}/echo")
        assert st == 401, "only the feed takes a token in band"
        with connect(f"{WS}/feed", open_timeout=10) as ws:
            r = ask(ws, {"op": "subscribe", "topic": "ticks"})
            assert r["event"] == "error" and "auth" in r["error"], r
            r = ask(ws, {"op": "auth", "token": hs(claims(exp=-60))})
            assert r["event"] == "error" and "expired" in r["error"], r
            r = ask(ws, {"op": "auth", "token": hs()})
            assert r["event"] == "authenticated" and r["sub"] == "alice", r
            assert ask(ws, {"op": "subscribe", "topic": "ticks"})["event"] == "subscribed"
            r = ask(ws, {"op": "subscribe", "topic": "rates"})
            assert r["event"] == "error" and r["topic"] == "rates", r

    @case
    async def a_feed_client_that_sends_no_token_is_closed_with_4001():
        start = time.time()
        with connect(f"{WS}/feed", open_timeout=10) as ws:
            try:
                ws.recv(timeout=20)
                raise AssertionError("a message instead of a close")
            except ConnectionClosed as e:
                assert (e.rcvd.code, e.rcvd.reason) == (4001, "no valid token"), e.rcvd
        assert time.time() - start >= 2, "closed before the handshake timeout"

    @case
    async def a_refreshed_token_keeps_the_connection_past_the_first_expiry():
        first = int(time.time()) + 3
        with connect(f"{WS}/feed", additional_headers=bearer(hs(claims(exp=first - int(time.time())))),
                     open_timeout=10) as ws:
            r = ask(ws, {"op": "auth", "token": hs(claims(exp=120))})
            assert r["event"] == "authenticated", r
            # Past the first token's expiry (and the 2 s the close may take):
            # nothing comes, the connection is open.
            try:
                msg = ws.recv(timeout=first + 3 - time.time())
                raise AssertionError(f"got {msg!r}")
            except TimeoutError:
                pass
            assert ask(ws, {"op": "subscribe", "topic": "ticks"})["event"] == "subscribed"

elif sys.argv[1] == "rotated":

    @case
    async def after_sighup_the_new_secret_admits_and_the_old_does_not():
        st, text = ws_status(f"{WS}/echo", bearer(hs(name="hs.old")))
        assert st == 401 and "bad signature" in text, (st, text)
        st, text = ws_status(f"{WS}/echo", bearer(hs()))
        assert st == 101, (st, text)


if __name__ == "__main__":
    run()
