//! A library server that asked for `Running::reload_on_sighup` runs its
//! reload on SIGHUP instead of dying, and `Running::reconfigure` from that
//! reload changes a limit while a connection stays open. Alone in its test
//! binary: the signal goes to this whole process.

use std::sync::mpsc;
use std::time::Duration;

use ringwave::server::{Config, EngineConfig, Live, Server};
use tungstenite::Message;

#[test]
fn sighup_runs_the_reload_and_reconfigure_changes_a_limit() {
    let mut engine = EngineConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        pin_threads: false,
        ..EngineConfig::default()
    };
    engine.limits.max_message_size = 1024;
    engine.limits.max_frame_payload = 1024;
    let running = Server::builder()
        .config(Config {
            engine: engine.clone(),
            ..Config::default()
        })
        .serve(|| ringwave::server::Echo)
        .expect("serve");
    let addr = running.local_addr();
    let connect = || tungstenite::connect(format!("ws://{addr}/echo")).unwrap().0;
    let mut kept = connect();
    // 2 KiB is past the limit: closed with 1009.
    let mut over = connect();
    over.send(Message::binary(vec![1u8; 2048])).unwrap();
    match over.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    let handle = running.reconfigure_handle();
    let (done_tx, done) = mpsc::channel();
    running
        .reload_on_sighup(move || {
            let mut live = Live::of(&engine);
            live.limits.max_message_size = 1 << 20;
            live.limits.max_frame_payload = 1 << 20;
            let _ = done_tx.send(handle.reconfigure(live));
        })
        .expect("SIGHUP handler");
    let st = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    done.recv_timeout(Duration::from_secs(20))
        .expect("the reload ran")
        .expect("reconfigured");
    // Every worker takes it at its next turn: a new connection, on any
    // worker, is eventually opened with the new limit.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = connect();
        c.send(Message::binary(vec![2u8; 2048])).unwrap();
        match c.read() {
            Ok(Message::Binary(b)) if b.len() == 2048 => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "still refused: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The connection opened before the reload is still served.
    kept.send(Message::text("still here")).unwrap();
    assert_eq!(kept.read().unwrap(), Message::text("still here"));
    running.shutdown();
    running.join().unwrap();
}
