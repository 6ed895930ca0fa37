//! The configuration file (`--config`, `--check-config`) and SIGHUP
//! reloads, through the real binary: every kind of value a file holds, the
//! errors it can have, flags over the file, and a reload that changes a
//! topic's slow-consumer policy and a limit while connections stay open.

mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use server::pubsub::*;
use server::{
    eventually, frame, log_line, metrics, refused_start, spawn_listening, RawClient, TestServer,
};

/// A file `name` holding `text` in a directory of this test's own.
fn write(test: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringwave-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// `ringwave --check-config FILE ARGS`: its stdout, which must say ok.
fn check(file: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ringwave"))
        .arg("--check-config")
        .arg(file)
        .args(args)
        .output()
        .expect("run ringwave --check-config");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Send a binary message of `len` bytes: echoed (true), or closed with
/// 1009 (false).
fn echoes(c: &mut RawClient, len: usize) -> bool {
    c.send(&frame(0x82, &vec![7u8; len]));
    loop {
        match c.read_frame().expect("a frame") {
            (0x2, p) => return p.len() == len,
            (0x8, p) => {
                assert_eq!(u16::from_be_bytes([p[0], p[1]]), 1009);
                return false;
            }
            _ => {}
        }
    }
}

const EVERY_KIND: &str = r#"
# a string, an integer, sizes with and without a unit, flags, lists
listen = "127.0.0.1:0"
backend = "poll"
threads = 1
max-message = "1KiB"
max-buffered = 65536
no-http2 = true
deflate = false
allowed-origins = ["http://a.example", "http://b.example"]
topic-policy = ["t=drop", "u=conflate"]
history = ["t=100,60"]
feed-sim = "off"
log-format = "json"
"#;

#[test]
fn a_config_file_holds_every_kind_of_value() {
    let file = write("every-kind", "ringwave.toml", EVERY_KIND);
    let shown = check(&file, &[]);
    for line in [
        r#"listen = "127.0.0.1:0"  # file"#,
        "threads = 1  # file",
        r#"max-message = "1KiB"  # file"#,
        "max-buffered = 65536  # file",
        "no-http2 = true  # file",
        "deflate = false  # file",
        r#"allowed-origins = ["http://a.example", "http://b.example"]  # file"#,
        r#"topic-policy = ["t=drop", "u=conflate"]  # file"#,
        r#"history = ["t=100,60"]  # file"#,
        r#"log-format = "json"  # file"#,
        "ping-interval = 30  # default",
        "# token  # not set",
    ] {
        assert!(shown.lines().any(|l| l == line), "no {line:?} in\n{shown}");
    }
    // Served as the file says.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringwave"));
    cmd.arg("--config").arg(&file).stderr(Stdio::piped());
    let (mut child, addr, line) = spawn_listening(&mut cmd);
    assert!(line.contains("backend poll, 1 threads"), "{line}");
    let mut c = RawClient::connect(addr);
    assert!(echoes(&mut c, 1000));
    assert!(!echoes(&mut c, 2000), "max-message from the file");
    let upgrade = |origin: &str| {
        let mut c = RawClient::tcp(addr);
        c.send(
            format!(
                "GET /raw HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 Origin: {origin}\r\n\r\n"
            )
            .as_bytes(),
        );
        c.read_http_head()
    };
    assert!(upgrade("http://b.example").starts_with("HTTP/1.1 101"));
    assert!(upgrade("http://c.example").starts_with("HTTP/1.1 403"));
    // JSON logs from the file's log-format: each line an object.
    let _ = child.0.kill();
    let out = child.0.wait_with_output_stderr();
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
    }
}

/// Reading a killed child's whole stderr.
trait StderrOf {
    fn wait_with_output_stderr(&mut self) -> String;
}

impl StderrOf for std::process::Child {
    fn wait_with_output_stderr(&mut self) -> String {
        use std::io::Read as _;
        let mut text = String::new();
        if let Some(mut e) = self.stderr.take() {
            e.read_to_string(&mut text).expect("stderr");
        }
        let _ = self.wait();
        text
    }
}

#[test]
fn a_bad_file_is_refused_with_what_to_write_instead() {
    for (text, says) in [
        (
            "max_mesage = \"1k\"",
            "unknown key `max_mesage`: did you mean `max-message`?",
        ),
        ("listn = \"127.0.0.1:1\"", "did you mean `listen`?"),
        (
            "zzz = 1",
            "the keys are the long options of `ringwave --help`",
        ),
        ("max-message = \"1x\"", "\"x\" is not a unit"),
        ("deflate = \"yes\"", "`deflate` is a flag: true or false"),
        (
            "listen = [\"127.0.0.1:1\"]",
            "`listen` takes one value, not a list",
        ),
        (
            "threads = true",
            "`threads` takes a value, not true or false",
        ),
        ("threads = 0", "0 is not in 1..=1024"),
        (
            "history = [\"t=0\"]",
            "history count \"0\" is not a positive number",
        ),
        ("config = \"other.toml\"", "unknown key `config`"),
        ("listen = ", "TOML parse error at line 1"),
        (
            "tls-cert = [\"/nonexistent/c.pem\"]\ntls-key = [\"/nonexistent/k.pem\"]",
            "cannot read certificate file /nonexistent/c.pem",
        ),
    ] {
        let file = write("bad", "bad.toml", text);
        let f = file.to_str().expect("utf-8 path");
        let err = refused_start(&["--config", f]);
        assert!(err.contains(says), "{text}: {err}");
        let err = refused_start(&["--check-config", f]);
        assert!(err.contains(says), "{text}: {err}");
    }
    let err = refused_start(&["--config", "/nonexistent/ringwave.toml"]);
    assert!(
        err.contains("/nonexistent/ringwave.toml: No such file"),
        "{err}"
    );
}

#[test]
fn options_on_the_command_line_override_the_file() {
    let file = write(
        "override",
        "ringwave.toml",
        "max-message = \"1KiB\"\ntopic-policy = [\"t=close\", \"u=close\"]\nfeed-sim = \"off\"\n",
    );
    let shown = check(
        &file,
        &["--max-message", "4KiB", "--topic-policy", "t=drop"],
    );
    for line in [
        r#"max-message = "4KiB"  # command line"#,
        r#"topic-policy = ["t=drop"]  # command line"#,
        r#"feed-sim = "off"  # file"#,
    ] {
        assert!(shown.lines().any(|l| l == line), "no {line:?} in\n{shown}");
    }
    let f = file.to_str().expect("utf-8 path");
    let srv = TestServer::start("poll", &["--config", f, "--max-message", "4KiB"]);
    let mut c = RawClient::connect(srv.addr);
    assert!(echoes(&mut c, 3000), "the command line's max-message");
    assert!(!echoes(&mut c, 5000));
}

both_backends!(
    sighup_applies_a_policy_and_a_limit_without_dropping_a_connection,
    |backend| {
        let before = "feed-sim = \"off\"\nallow-client-publish = true\nmax-buffered = 65536\n\
                      max-message = \"8KiB\"\ntopic-policy = [\"t=close\"]\n";
        let file = write(&format!("sighup-{backend}"), "ringwave.toml", before);
        let log = file.with_file_name("ringwave.log");
        let f = file.to_str().expect("utf-8 path");
        let srv = TestServer::start_logged(backend, "info", &log, &["--config", f]);
        // Open before the reload, and kept through it.
        let mut kept = RawClient::connect(srv.addr);
        assert!(echoes(&mut kept, 100));
        assert!(
            !echoes(&mut RawClient::connect(srv.addr), 16_000),
            "8KiB at first"
        );
        let mut slow = slow_feed(srv.addr);
        raw_subscribe(&mut slow, "t");
        let mut fast = feed(srv.addr);
        subscribe(&mut fast, "t");

        std::fs::write(
            &file,
            before.replace("8KiB", "64KiB").replace("t=close", "t=drop"),
        )
        .expect("rewrite config");
        srv.signal("HUP");
        let applied = log_line(&log, |l| l.contains("SIGHUP") && l.contains("applied"));
        assert!(
            applied.contains(r#"max-message "8KiB" -> "64KiB""#),
            "{applied}"
        );
        assert!(
            applied.contains(r#"topic-policy ["t=close"] -> ["t=drop"]"#),
            "{applied}"
        );

        // /metrics shows the limit in effect once the workers have it.
        eventually(|| {
            let m = metrics(srv.addr);
            match m.get("ringwave_limit{limit=\"max_message_bytes\"}") {
                Some(v) if *v == 65536.0 => Ok(()),
                v => Err(format!("ringwave_limit max_message_bytes is {v:?}")),
            }
        });
        // The new limit on a new connection; the old one still echoes.
        assert!(
            echoes(&mut RawClient::connect(srv.addr), 16_000),
            "64KiB after"
        );
        assert!(echoes(&mut kept, 100));
        // The slow subscriber of t is now skipped (drop), not closed.
        let mut p = publisher(srv.addr);
        publish_past_the_limit(
            srv.addr,
            &mut p,
            &mut fast,
            "ringwave_slow_consumer_drops_total",
            false,
        );
        let m = metrics(srv.addr);
        assert_eq!(m.get("ringwave_slow_consumer_closes_total"), Some(&0.0));
        assert!(echoes(&mut kept, 100));
    }
);

#[test]
fn a_file_with_a_secret_that_every_user_may_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let file = write("secret", "ringwave.toml", "api-token = \"s3cret\"\n");
    let check = |mode: u32| {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ringwave"))
            .arg("--check-config")
            .arg(&file)
            .output()
            .expect("run ringwave --check-config");
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!stdout.contains("s3cret"), "a secret shown: {stdout}");
        assert!(
            stdout.contains("# api-token = (set, not shown)  # file"),
            "{stdout}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let warned = check(0o644);
    assert!(
        warned.contains("holds api-token and every user may read it"),
        "{warned}"
    );
    assert_eq!(check(0o640), "");
}
