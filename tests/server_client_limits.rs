//! Limits per client: a WebSocket that sends faster than
//! `--max-message-rate` is closed with 1008 while a bystander on the same
//! server keeps its feed.

mod server;
use server::*;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

both_backends!(
    a_client_over_its_message_rate_is_closed_with_1008,
    |backend| {
        let srv = TestServer::start(
            backend,
            &["--feed-sim", "20:200", "--max-message-rate", "50"],
        );
        let mut bystander = feed_client(srv.addr);
        bystander
            .send(Message::text(r#"{"op":"subscribe","topic":"ticks"}"#))
            .unwrap();
        // 1,000 echo requests at once: 50 are allowed in the first second.
        let (mut flood, _) = tungstenite::connect(srv.url("/echo")).expect("connect");
        for i in 0..1000 {
            flood.send(Message::text(format!("m{i}"))).unwrap();
        }
        let mut echoed = 0;
        let close = loop {
            match flood.read() {
                Ok(Message::Text(_)) => echoed += 1,
                Ok(Message::Close(c)) => break c.expect("a close code"),
                Ok(_) => {}
                Err(e) => panic!("no close after {echoed} echoes: {e}"),
            }
        };
        assert_eq!(close.code, CloseCode::Policy, "{close:?}");
        assert_eq!(close.reason.as_str(), "message rate exceeded");
        assert!((50..1000).contains(&echoed), "{echoed} echoed");
        // The bystander's ticks keep coming after the flooder is gone.
        let mut ticks = 0;
        while ticks < 20 {
            if let Message::Text(t) = bystander.read().unwrap() {
                if t.contains("\"tick\"") {
                    ticks += 1;
                }
            }
        }
        assert_eq!(metrics(srv.addr)["ringwave_message_rate_closes_total"], 1.0);
    }
);
