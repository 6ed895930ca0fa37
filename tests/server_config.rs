//! `Config::validate`: the rules a configuration must keep hold for library
//! users (`serve` refuses the config) and the CLI (exit 2, same message).

mod server;
use server::*;
use std::time::Duration;

use ringwave::server::{Config, EngineConfig, Handler, Msg, Server, Ws};

struct Nothing;

impl Handler for Nothing {
    fn on_message(&mut self, _ws: &mut Ws<'_>, _msg: Msg<'_>) {}
}

#[test]
fn the_default_config_is_valid() {
    assert_eq!(Config::default().validate(), Ok(()));
}

/// A field's name and a change that breaks its rule.
type Breaks = Vec<(&'static str, Box<dyn Fn(&mut Config)>)>;

#[test]
fn each_rule_names_its_field() {
    let cases: Breaks = vec![
        ("threads", Box::new(|c| c.threads = 0)),
        ("token", Box::new(|c| c.token = Some(String::new()))),
        (
            "publish_token",
            Box::new(|c| c.publish_token = Some("a b".into())),
        ),
        (
            "metrics_token",
            Box::new(|c| c.metrics_token = Some(" ".into())),
        ),
        (
            "max_message_size",
            Box::new(|c| c.limits.max_message_size = 0),
        ),
        (
            "max_frame_payload",
            Box::new(|c| c.limits.max_frame_payload = 2 << 40),
        ),
        (
            "max_handshake_bytes",
            Box::new(|c| c.limits.max_handshake_bytes = 100),
        ),
        (
            "handshake_timeout",
            Box::new(|c| c.handshake_timeout = Duration::ZERO),
        ),
        (
            "idle_timeout",
            Box::new(|c| c.idle_timeout = c.ping_interval),
        ),
        (
            "topic_policies/history",
            Box::new(|c| {
                c.topic_policies
                    .insert("bad\ntopic".into(), ringwave::server::Policy::Close);
            }),
        ),
        ("feed_path", Box::new(|c| c.feed_path = Some("feed".into()))),
    ];
    for (field, break_it) in cases {
        let mut c = Config::default();
        break_it(&mut c);
        let e = c.validate().expect_err(field);
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn serve_refuses_an_invalid_config() {
    let c = Config {
        engine: EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            idle_timeout: Duration::from_secs(10),
            ..EngineConfig::default()
        },
        ..Config::default()
    };
    let e = match Server::builder().config(c).serve(|| Nothing) {
        Ok(_) => panic!("served an invalid config"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("idle_timeout"), "{e}");
}

#[test]
fn the_cli_refuses_it_with_the_same_message() {
    let err = refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--ping-interval",
        "30",
        "--idle-timeout",
        "20",
    ]);
    assert!(
        err.contains("invalid idle_timeout: 20 s must be longer than ping_interval (30 s)"),
        "{err}"
    );
}

/// A library server: the built-in routes only when asked for.
fn library_server(builtins: bool) -> ringwave::runtime::Running {
    let b = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(1)
        .config(Config {
            engine: EngineConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                threads: 1,
                pin_threads: false,
                ..EngineConfig::default()
            },
            allow_client_publish: true,
            ..Config::default()
        });
    let b = if builtins { b.builtins() } else { b };
    b.serve(|| Nothing).expect("serve")
}

#[test]
fn a_library_server_serves_no_builtin_route_unless_asked() {
    let post = b"POST /publish/t HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx";
    let plain = library_server(false);
    let addr = plain.local_addr();
    for path in ["/", "/sse/t", "/metrics"] {
        assert_eq!(http_get(addr, path).0, 404, "{path}");
    }
    assert_eq!(http_request(addr, post).0, 404, "POST /publish");
    let c = RawClient::upgrade(RawClient::tcp(addr), "/feed");
    drop(c); // upgraded (101): the handler's WebSocket, on any path
    assert_eq!(http_get(addr, "/healthz").0, 200);
    // Both serve until the test process exits (no drain to wait for).
    std::mem::forget(plain);
    let all = library_server(true);
    let addr = all.local_addr();
    for path in ["/", "/metrics"] {
        assert_eq!(http_get(addr, path).0, 200, "{path}");
    }
    assert_eq!(http_request(addr, post).0, 202, "POST /publish");
    std::mem::forget(all);
}

#[test]
fn threads_0_and_a_log_level_that_is_no_level_are_refused() {
    let err = refused_start(&["--threads", "0"]);
    assert!(err.contains("0 is not in 1..=1024"), "{err}");
    // tracing would take a bare word for a target and log nothing else.
    let err = refused_start(&["--log-level", "loud"]);
    assert!(err.contains("\"loud\" is not a level"), "{err}");
}

#[test]
fn rust_log_is_honoured_and_a_log_file_has_no_colour() {
    let dir = std::env::temp_dir().join(format!("ringwave-rust-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    // No --log-level: RUST_LOG decides (debug shows the startup's sizing).
    let (child, _, _) = spawn_listening(
        std::process::Command::new(env!("CARGO_BIN_EXE_ringwave"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--feed-sim",
                "off",
                "--threads",
                "1",
            ])
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(" DEBUG ringwave"), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in a file: {text:?}");
    // A RUST_LOG tracing cannot read is refused, and named.
    let err = std::process::Command::new(env!("CARGO_BIN_EXE_ringwave"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "[")
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("invalid RUST_LOG"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_closed_stderr_costs_neither_the_workers_nor_sigterm() {
    use std::io::{BufRead, BufReader};
    // Debug logs on every connection, to a pipe closed after its first
    // line (a log pipeline that died): tracing's own error report used to
    // panic the thread that logged, workers and the signal thread alike.
    let (mut child, addr, _) = spawn_listening(
        std::process::Command::new(env!("CARGO_BIN_EXE_ringwave"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--feed-sim",
                "off",
                "--threads",
                "2",
            ])
            .args(["--log-level", "debug"])
            .stderr(std::process::Stdio::piped()),
    );
    let mut err = BufReader::new(child.0.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    drop(err);
    for _ in 0..20 {
        assert_eq!(http_get(addr, "/healthz"), (200, "ok\n".into()));
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = eventually(|| match child.0.try_wait() {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err("still running after SIGTERM".to_string()),
        Err(e) => Err(e.to_string()),
    });
    assert!(status.success(), "{status}");
}

#[test]
fn sizes_take_units() {
    let err = refused_start(&["--max-message", "12x"]);
    assert!(err.contains("\"x\" is not a unit"), "{err}");
    let err = refused_start(&["--max-handshake-bytes", "2MiB"]);
    assert!(
        err.contains("2MiB is outside 256 to 1048576 bytes"),
        "{err}"
    );
    // 1 KiB messages: 1024 bytes pass, 1025 close with 1009.
    let srv = TestServer::start("poll", &["--max-message", "1k"]);
    let mut c = RawClient::connect(srv.addr);
    c.send(&frame(0x81, &[b'a'; 1024]));
    assert_eq!(c.read_frame().map(|f| f.1.len()), Some(1024));
    c.send(&frame(0x81, &[b'a'; 1025]));
    assert_eq!(c.read_close_code(), Some(1009));
}

#[test]
fn json_logs_are_an_object_per_line_with_the_events_fields() {
    let dir = std::env::temp_dir().join(format!("ringwave-json-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let srv = TestServer::start_logged(
        "poll",
        "debug",
        &log,
        &["--log-format", "json", "--handshake-timeout", "1"],
    );
    // A connection that says nothing: its handshake timeout is logged with
    // the worker and the slot.
    let _silent = std::net::TcpStream::connect(srv.addr).unwrap();
    let event = log_line(&log, |l| l.contains("handshake timeout"));
    let v: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(v["level"], "DEBUG", "{v}");
    assert_eq!(v["message"], "handshake timeout", "{v}");
    assert!(v["worker"].is_u64() && v["index"].is_u64(), "{v}");
    assert!(v["timestamp"].is_string() && v["target"].is_string(), "{v}");
    // Every line is an object.
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v.is_object(), "{line}");
    }
    drop(srv);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn json_logs_name_the_peer_and_the_tokens_subject() {
    let dir = std::env::temp_dir().join(format!("ringwave-json-sub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, key) = (dir.join("stderr.log"), dir.join("hs.key"));
    let secret = b"a secret of at least thirty-two bytes, for HS256";
    std::fs::write(&key, secret).unwrap();
    let key_arg = key.to_str().unwrap();
    let srv = TestServer::start_logged(
        "poll",
        "debug",
        &log,
        &["--log-format", "json", "--jwt-key", key_arg],
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "alice", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    let _ws = RawClient::upgrade(RawClient::tcp(srv.addr), &format!("/raw?token={token}"));
    let event = log_line(&log, |l| l.contains("WebSocket opened"));
    let v: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(v["sub"], "alice", "{v}");
    assert_eq!(v["peer"], "127.0.0.1", "{v}");
    assert!(v["worker"].is_u64() && v["index"].is_u64(), "{v}");
    drop(srv);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn listen_takes_a_host_name_and_says_what_is_wrong_with_an_address() {
    // localhost is resolved (here to 127.0.0.1; where it also has ::1,
    // both are served: tests/library_listen.rs serves the two at once).
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringwave"));
    cmd.args(["--listen", "localhost:0", "--feed-sim", "off"]);
    let (_child, addr, line) = spawn_listening(&mut cmd);
    assert!(addr.ip().is_loopback(), "{line}");
    let mut c = RawClient::connect(addr);
    c.send(&frame(0x81, b"hi"));
    assert_eq!(c.read_frame().map(|f| f.1), Some(b"hi".to_vec()));
    for (listen, says) in [
        ("localhost", "\"localhost\" has no port: expected HOST:PORT"),
        ("127.0.0.1:99999", "\"99999\" is not a port"),
        (":9001", "has no host"),
        (
            "no-such-host.invalid:9001",
            "cannot resolve \"no-such-host.invalid\"",
        ),
    ] {
        let err = refused_start(&["--listen", listen]);
        assert!(err.contains(says), "{listen}: {err}");
    }
}
