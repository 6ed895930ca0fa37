//! Identities on every route: tokens made by PyJWT (with keys made by
//! Python's `cryptography`) against the server started with `--jwt-key`,
//! on both backends: every key type, every way a token is bad, the claims
//! limiting topics on WebSocket, SSE over HTTP/1.1 and HTTP/2 and
//! `POST /publish`, a key rotated by SIGHUP; the shared and metrics tokens;
//! and a second server refused an address the first listens on.

mod server;
use server::*;

use std::path::{Path, PathBuf};

/// A fresh folder of keys written by `jwt_clients.py keys`.
fn keys(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringwave-jwt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run_python("jwt_clients.py", &["keys", dir.to_str().unwrap()], &[]);
    dir
}

/// `jwt_clients.py MODE 127.0.0.1 PORT DIR` against `srv`.
fn jwt_clients(mode: &str, srv: &TestServer, dir: &Path) -> Result<(), String> {
    let port = srv.addr.port().to_string();
    let args = [mode, "127.0.0.1", &port, dir.to_str().unwrap()];
    try_python("jwt_clients.py", &args, &[])
}

/// [`jwt_clients`], which must pass.
fn run_jwt_clients(mode: &str, srv: &TestServer, dir: &Path) {
    if let Err(e) = jwt_clients(mode, srv, dir) {
        panic!("{e}");
    }
}

/// The server with every key of `dir`.
fn server(backend: &str, dir: &Path, extra: &[&str]) -> TestServer {
    server_logged(backend, dir, extra, None)
}

/// [`server`], with its log at `level` written to a file.
fn server_logged(
    backend: &str,
    dir: &Path,
    extra: &[&str],
    log: Option<(&str, &Path)>,
) -> TestServer {
    let files = ["hs.key", "rsa.pem", "ec.pem", "ed.pem", "jwks.json"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| dir.join(f).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["--feed-sim", "off", "--max-handshake-bytes", "65536"];
    for p in &paths {
        args.extend(["--jwt-key", p.as_str()]);
    }
    args.extend(extra);
    match log {
        Some((level, path)) => TestServer::start_logged(backend, level, path, &args),
        None => TestServer::start(backend, &args),
    }
}

both_backends!(tokens_decide_who_sees_what_on_every_route, |backend| {
    let dir = keys(&format!("routes-{backend}"));
    let srv = server(backend, &dir, &[]);
    run_jwt_clients("check", &srv, &dir);
});

both_backends!(sighup_rotates_the_keys, |backend| {
    let dir = keys(&format!("rotate-{backend}"));
    let srv = server(backend, &dir, &[]);
    run_python("jwt_clients.py", &["rotate", dir.to_str().unwrap()], &[]);
    srv.signal("HUP");
    // The reload runs on the signal thread: bounded wait for its effect.
    eventually(|| jwt_clients("rotated", &srv, &dir));
});

both_backends!(metrics_and_the_shared_token, |backend| {
    let dir = keys(&format!("shared-{backend}"));
    let srv = server(
        backend,
        &dir,
        &["--token", "sh4red", "--metrics-token", "scr4pe"],
    );
    let get = |path: &str, auth: &str| {
        http_request(
            srv.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\n").as_bytes(),
        )
    };
    assert_eq!(get("/metrics", "").0, 401);
    assert_eq!(get("/metrics", "Authorization: Bearer sh4red\r\n").0, 401);
    let (st, body) = get("/metrics", "Authorization: Bearer scr4pe\r\n");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("ringwave_connections_open"), "{body}");
    // The shared token opens every other route, every topic included.
    assert_eq!(get("/sse/anything?token=sh4red", "").0, 200);
    assert_eq!(get("/", "Authorization: Bearer sh4red\r\n").0, 200);
    assert_eq!(get("/sse/anything?token=wrong", "").0, 401);
    assert_eq!(get("/healthz", "").0, 200);
});

#[test]
fn a_second_server_on_the_same_address_refuses_to_start() {
    let first = TestServer::start("poll", &["--feed-sim", "off"]);
    let addr = first.addr.to_string();
    let err = refused_start(&["--listen", &addr, "--feed-sim", "off"]);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("already listening"),
        "{err}"
    );
    // The first one still serves alone.
    assert_eq!(http_get(first.addr, "/healthz").0, 200);
}

both_backends!(an_expired_token_ends_its_connection, |backend| {
    let dir = keys(&format!("expiry-{backend}"));
    let srv = server(backend, &dir, &["--metrics-token", "m3trics"]);
    run_jwt_clients("expiry", &srv, &dir);
    let (_, m) = http_request(
        srv.addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer m3trics\r\n\r\n",
    );
    assert!(m.contains("ringwave_closes_total{code=\"4001\"} 1"), "{m}");
});

both_backends!(max_lifetime_closes_with_1001, |backend| {
    let srv = TestServer::start(backend, &["--feed-sim", "off", "--max-lifetime", "2"]);
    run_jwt_clients("lifetime", &srv, Path::new("-"));
    assert_eq!(metrics(srv.addr)["ringwave_lifetime_closes_total"], 1.0);
});

both_backends!(feed_tokens_in_band_first_refreshed_or_never, |backend| {
    let dir = keys(&format!("inband-{backend}"));
    let srv = server(backend, &dir, &["--handshake-timeout", "2"]);
    run_jwt_clients("inband", &srv, &dir);
});

// No secret reaches the log, at the most verbose level: the JWTs of every
// route's checks (good, bad, in band) and the metrics token. A JWT's first
// part always starts `eyJ` (`{"` in base64url).
both_backends!(no_secret_is_logged_even_at_trace_level, |backend| {
    let dir = keys(&format!("log-{backend}"));
    let log = dir.join("server.log");
    let args = ["--handshake-timeout", "2", "--metrics-token", "scr4pe-me"];
    let mut srv = server_logged(backend, &dir, &args, Some(("trace", &log)));
    run_jwt_clients("check", &srv, &dir);
    run_jwt_clients("inband", &srv, &dir);
    let get = |path: &str, auth: &str| {
        http_request(
            srv.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\n").as_bytes(),
        )
        .0
    };
    assert_eq!(get("/metrics?token=scr4pe-me", ""), 200);
    assert_eq!(get("/metrics", "Authorization: Bearer wr0ng-one\r\n"), 401);
    assert_eq!(get("/sse/t?token=eyJub3QiOiJ2YWxpZCJ9.x.y", ""), 401);
    srv.terminate();
    let text = std::fs::read_to_string(&log).expect("log");
    // The log is there, and verbose: requests and closes were logged.
    let debug = text
        .lines()
        .filter(|l| l.contains("DEBUG") || l.contains("TRACE"))
        .count();
    assert!(debug >= 10, "only {debug} debug lines:\n{text}");
    for secret in ["eyJ", "scr4pe-me", "wr0ng-one"] {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} logged: {leaks:#?}");
    }
});
