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
