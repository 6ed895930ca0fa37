//! A library server that asked for `Running::shutdown_on_signals` closes its
//! WebSockets with 1001 on SIGTERM and `join` returns. Alone in its test
//! binary: the signal goes to this whole process.

use ringwave::server::{Config, EngineConfig, Handler, Msg, Server, Ws};
use tungstenite::Message;

struct Nothing;

impl Handler for Nothing {
    fn on_message(&mut self, _ws: &mut Ws<'_>, _msg: Msg<'_>) {}
}

#[test]
fn sigterm_closes_with_1001_and_join_returns() {
    let running = Server::builder()
        .config(Config {
            engine: EngineConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                threads: 2,
                pin_threads: false,
                ..EngineConfig::default()
            },
            ..Config::default()
        })
        .serve(|| Nothing)
        .expect("serve");
    running.shutdown_on_signals().expect("signal handlers");
    let addr = running.local_addr();
    let mut clients: Vec<_> = (0..4)
        .map(|_| {
            let (ws, _) = tungstenite::connect(format!("ws://{addr}/x")).unwrap();
            if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
            }
            ws
        })
        .collect();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    for ws in &mut clients {
        match ws.read() {
            Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1001, "{f}"),
            other => panic!("not closed with 1001: {other:?}"),
        }
        let _ = ws.flush();
    }
    running.join().expect("workers exit");
}
