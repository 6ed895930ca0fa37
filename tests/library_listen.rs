//! A library server with `EngineConfig::also_listen` serves every address
//! it names on every worker: IPv4 and IPv6 loopback, the second on the
//! port the first got.

use std::net::SocketAddr;

use ringwave::server::{Config, EngineConfig, Server};
use tungstenite::Message;

fn serves_v4_and_v6(backend: &str) {
    let running = Server::builder()
        .config(Config {
            engine: EngineConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                also_listen: vec!["[::1]:0".parse().unwrap()],
                threads: 2,
                backend: backend.parse().unwrap(),
                pin_threads: false,
                ..EngineConfig::default()
            },
            ..Config::default()
        })
        .serve(|| ringwave::server::Echo)
        .expect("serve");
    let addrs: Vec<SocketAddr> = running.local_addrs();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    assert_eq!(addrs[0].port(), addrs[1].port(), "port 0 takes the first's");
    // Enough connections to each that both workers' listeners answer.
    for addr in &addrs {
        for i in 0..8 {
            let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/echo")).unwrap();
            ws.send(Message::text(format!("{addr} {i}"))).unwrap();
            assert_eq!(ws.read().unwrap(), Message::text(format!("{addr} {i}")));
        }
    }
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn also_listen_uring() {
    serves_v4_and_v6("uring");
}

#[test]
fn also_listen_poll() {
    serves_v4_and_v6("poll");
}
