//! A nats-server of a test's own (Debian's, which scripts/test.sh
//! installs), on free ports with its monitoring endpoint.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A nats-server of this test's own.
pub struct Nats {
    pub child: Option<Child>,
    pub port: u16,
    pub monitor: u16,
    pub extra: Vec<String>,
}

impl Nats {
    pub fn start() -> Nats {
        Nats::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Nats {
        let mut n = Nats {
            child: None,
            port: free_port(),
            monitor: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        n.run();
        n
    }

    /// Start (again) on the same ports, and wait until it serves.
    pub fn run(&mut self) {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect(
                "nats-server is missing: scripts/test.sh installs it (apt-get install nats-server)",
            );
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        eventually(|| {
            self.healthz()
                .ok_or_else(|| "nats-server did not come up".to_string())
        });
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn monitor_get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.monitor)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (_, body) = out.split_once("\r\n\r\n")?;
        Some(body.to_string())
    }

    pub fn healthz(&self) -> Option<String> {
        TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        self.monitor_get("/healthz")
    }

    /// Subscriptions per subject under `ringwave.`, from `/subsz`.
    pub fn subjects(&self) -> HashMap<String, usize> {
        let body = self.monitor_get("/subsz?subs=1").expect("/subsz");
        let v: serde_json::Value = serde_json::from_str(&body).expect("/subsz JSON");
        let mut out = HashMap::new();
        for s in v["subscriptions_list"].as_array().into_iter().flatten() {
            if let Some(subject) = s["subject"].as_str().filter(|s| s.starts_with("ringwave.")) {
                *out.entry(subject.to_string()).or_default() += 1;
            }
        }
        out
    }

    /// Wait (bounded) until `subject` has `n` subscriptions.
    pub fn wait_subscriptions(&self, subject: &str, n: usize) {
        eventually(
            || match self.subjects().get(subject).copied().unwrap_or(0) {
                now if now == n => Ok(()),
                now => Err(format!(
                    "{subject}: {now} subscriptions in NATS, expected {n}"
                )),
            },
        );
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}
