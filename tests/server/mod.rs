//! Helpers for black-box tests against the real `ringwave` binary, run on both
//! backends.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod certs;
pub mod nats;
pub mod pubsub;

/// Run a test body once per backend: `both_backends!(name, |backend| ...)`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn uring() {
                ($body)("uring")
            }
            #[test]
            fn poll() {
                ($body)("poll")
            }
        }
    };
}

pub struct TestServer {
    /// `None` once terminated; killed when the test ends otherwise.
    child: Option<KillOnDrop>,
    pub addr: SocketAddr,
    /// The TLS listener, when started with a certificate.
    pub tls_addr: Option<SocketAddr>,
    pub backend: String,
}

impl TestServer {
    /// Start `ringwave --listen 127.0.0.1:0 --backend B --threads 2 ARGS` and
    /// wait for its "listening" line.
    pub fn start(backend: &str, args: &[&str]) -> TestServer {
        Self::start_with_nofile(backend, None, args)
    }

    /// Like `start`, with the open-file limit set before the server starts
    /// (io_uring takes the limit in force when its ring is set up).
    pub fn start_with_nofile(backend: &str, nofile: Option<u32>, args: &[&str]) -> TestServer {
        TestServer::start_with_nofile_limits(backend, nofile.map(|n| (n, n)), args)
    }

    /// Start with the descriptor limit set to `(soft, hard)` (by prlimit).
    pub fn start_with_nofile_limits(
        backend: &str,
        nofile: Option<(u32, u32)>,
        args: &[&str],
    ) -> TestServer {
        TestServer::spawn(backend, nofile, None, args)
    }

    /// Start with `--log-level level`, its log (stderr) written to `log`.
    pub fn start_logged(backend: &str, level: &str, log: &Path, args: &[&str]) -> TestServer {
        TestServer::spawn(backend, None, Some((level, log)), args)
    }

    fn spawn(
        backend: &str,
        nofile: Option<(u32, u32)>,
        log: Option<(&str, &Path)>,
        args: &[&str],
    ) -> TestServer {
        let bin = env!("CARGO_BIN_EXE_ringwave");
        let mut cmd = match nofile {
            None => Command::new(bin),
            Some((soft, hard)) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={soft}:{hard}")).arg("--").arg(bin);
                c
            }
        };
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
            "--log-level",
            log.map_or("warn", |l| l.0),
        ]);
        if !args.contains(&"--threads") {
            cmd.args(["--threads", "2"]);
        }
        cmd.args(args).stderr(match log {
            Some((_, path)) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::inherit(),
        });
        let (child, addr, line) = spawn_listening(&mut cmd);
        assert!(line.contains(&format!("backend {backend}")), "{line}");
        let tls_addr = line
            .split("wss://")
            .nth(1)
            .and_then(|s| s.split(|c: char| c == ';' || c.is_whitespace()).next())
            .map(|s| s.parse().expect("TLS address"));
        TestServer {
            child: Some(child),
            addr,
            tls_addr,
            backend: backend.to_string(),
        }
    }

    /// Start with a TLS listener on a free port serving `cert` and `key`.
    pub fn start_tls(backend: &str, cert: &Path, key: &Path, args: &[&str]) -> TestServer {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let mut all = vec![
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ];
        all.extend_from_slice(args);
        let srv = TestServer::start(backend, &all);
        assert!(srv.tls_addr.is_some(), "no wss:// address announced");
        srv
    }

    /// The TLS listener's address.
    pub fn tls(&self) -> SocketAddr {
        self.tls_addr.expect("started with TLS")
    }

    /// Send the server a signal (`HUP`, `TERM`, ...).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.0.id()).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.0.try_wait()), Some(Ok(None)))
    }

    /// Send SIGTERM and wait (bounded: [`eventually`]) for the exit status.
    /// A server that does not exit fails the test and is killed.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .expect("kill");
        eventually(|| match child.0.try_wait().expect("wait") {
            Some(st) => Ok(st),
            None => Err("server did not exit after SIGTERM".to_string()),
        })
    }
}

/// A raw TCP client that completed a WebSocket handshake by hand, for
/// sending frames no well-behaved client would.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

pub const REQUEST: &str = "GET /raw HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::upgrade(RawClient::tcp(addr), "/raw")
    }

    /// Complete a WebSocket handshake for `path` on a connected client.
    pub fn upgrade(mut c: RawClient, path: &str) -> RawClient {
        let req = REQUEST.replacen("/raw", path, 1);
        c.stream.write_all(req.as_bytes()).unwrap();
        let head = c.read_http_head();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        c
    }

    pub fn tcp(addr: SocketAddr) -> RawClient {
        RawClient::from_stream(TcpStream::connect(addr).unwrap())
    }

    pub fn from_stream(stream: TcpStream) -> RawClient {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Read until the end of an HTTP head; returns it (body bytes stay
    /// buffered).
    pub fn read_http_head(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            if !self.fill() {
                return String::from_utf8_lossy(&self.buf).into_owned();
            }
        }
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// The body of a response whose head is `head`: `Content-Length`
    /// bytes (the connection may stay open), else everything to EOF.
    pub fn read_body(&mut self, head: &str) -> Vec<u8> {
        let len = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        let Some(len) = len else {
            return self.read_to_end();
        };
        while self.buf.len() < len && self.fill() {}
        self.buf.drain(..len.min(self.buf.len())).collect()
    }

    /// Read to EOF (or timeout) and return everything after the head.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Read one server frame: (opcode, payload). None at EOF.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let op = self.buf[0] & 0x0f;
                let len7 = (self.buf[1] & 0x7f) as usize;
                let (len, hdr) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= hdr + len {
                    let payload = self.buf[hdr..hdr + len].to_vec();
                    self.buf.drain(..hdr + len);
                    return Some((op, payload));
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Read frames until a close frame; return its code (1005 if empty).
    pub fn read_close_code(&mut self) -> Option<u16> {
        while let Some((op, p)) = self.read_frame() {
            if op == 0x8 {
                return Some(if p.len() >= 2 {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    1005
                });
            }
        }
        None
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }
}

/// A client frame (masked) with explicit first byte.
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut v = vec![b0];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n if n <= 0xffff => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&key);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    v
}

/// GET `path` over plain HTTP/1.1; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes(),
    )
}

/// Spawn `cmd`, a ringwave, with its stdout piped, and read the line it
/// prints once it listens: the child (killed on drop, so also when a check
/// after this fails), its plaintext address, and the line.
pub fn spawn_listening(cmd: &mut Command) -> (KillOnDrop, SocketAddr, String) {
    let mut child = KillOnDrop(cmd.stdout(Stdio::piped()).spawn().expect("spawn ringwave"));
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listening line");
    let addr = line
        .split("ws://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .expect("address");
    (child, addr, line)
}

/// Send a raw HTTP request; returns (status, body).
pub fn http_request(addr: SocketAddr, req: &[u8]) -> (u16, String) {
    let mut c = RawClient::tcp(addr);
    c.send(req);
    let head = c.read_http_head();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (
        status,
        String::from_utf8_lossy(&c.read_body(&head)).into_owned(),
    )
}

/// The server's `/metrics`, as (name with labels) -> value.
pub fn metrics(addr: SocketAddr) -> std::collections::HashMap<String, f64> {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

/// The Prometheus text `body` as (name with labels) -> value.
pub fn parse_metrics(body: &str) -> std::collections::HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// How long a bounded wait ([`eventually`], [`until`]) waits before the
/// test fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(20);

/// Poll `probe` every 20 ms until it gives `Ok` (bounded: [`WAIT_LIMIT`],
/// then the last `Err` is the failure).
pub fn eventually<T>(probe: impl FnMut() -> Result<T, String>) -> T {
    bounded(probe, Duration::from_millis(20))
}

/// Call `probe` until it gives `Ok`, at once again each time: for a probe
/// that waits by itself (a driver turn with a timeout). Bounded like
/// [`eventually`].
pub fn until<T>(probe: impl FnMut() -> Result<T, String>) -> T {
    bounded(probe, Duration::ZERO)
}

fn bounded<T>(mut probe: impl FnMut() -> Result<T, String>, pause: Duration) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

/// Run the server with `args`, which must stop its start: it has to exit
/// (bounded: [`eventually`]) with a failure status. Returns its stderr. A
/// server that starts anyway fails the test and is killed, not waited for.
pub fn refused_start(args: &[&str]) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_ringwave"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringwave");
    let mut child = KillOnDrop(child);
    let status = eventually(|| match child.0.try_wait() {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(format!("ringwave started with {args:?}")),
        Err(e) => Err(e.to_string()),
    });
    assert!(!status.success(), "exited with {status} for {args:?}");
    let mut err = String::new();
    if let Some(mut stderr) = child.0.stderr.take() {
        stderr.read_to_string(&mut err).expect("stderr read");
    }
    err
}

/// A child process killed (and reaped) when the test ends, passing or not.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first line of the log file `log` that `wanted` accepts, once one
/// is there (bounded like [`eventually`]; the failure shows the log).
pub fn log_line(log: &Path, wanted: impl Fn(&str) -> bool) -> String {
    eventually(|| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        match text.lines().find(|l| wanted(l)) {
            Some(l) => Ok(l.to_string()),
            None => Err(format!("not in the log yet:\n{text}")),
        }
    })
}

/// Poll `/metrics` until `name` satisfies `ok` (bounded: 20 s); returns it.
pub fn wait_metric(addr: SocketAddr, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    eventually(|| {
        let v = metrics(addr).get(name).copied().unwrap_or(0.0);
        if ok(v) {
            Ok(v)
        } else {
            Err(format!("{name} stayed at {v}"))
        }
    })
}

/// Run `tests/python/SCRIPT ARGS` with `env` set; it must exit 0 and print
/// "N passed, 0 failed".
pub fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) {
    if let Err(e) = try_python(script, args, env) {
        panic!("{e}");
    }
}

/// [`run_python`], its failure returned (for [`eventually`]).
pub fn try_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.success() && stdout.contains(" passed, 0 failed") {
        true => {
            // Shown with --nocapture: what the script checked.
            print!("{stdout}");
            Ok(())
        }
        false => Err(format!("{script} failed:\n{stdout}\n{stderr}")),
    }
}

/// Path of the Python interpreter of the venv that scripts/test.sh builds.
pub fn python() -> String {
    if let Ok(p) = std::env::var("RINGWAVE_PYTHON") {
        return p;
    }
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    assert!(
        std::path::Path::new(p).exists(),
        "{p} is missing: run scripts/test.sh, which creates the venv with the Python test clients"
    );
    p.to_string()
}

/// The slots of a process's descriptor table (FDSize in /proc/PID/status).
pub fn fd_table_size(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no FDSize in /proc/{pid}/status"))
}

/// A process's soft descriptor limit (from /proc/PID/limits).
pub fn nofile_soft_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no open-files limit in /proc/{pid}/limits"))
}

/// Whether a `uring` server these tests start accepts into io_uring direct
/// descriptors: yes, unless the test run forces regular descriptors with
/// `RINGWAVE_URING_NO_DIRECT` (scripts/test.sh runs the io_uring tests both
/// ways; the server inherits the variable).
pub fn uring_direct(backend: &str) -> bool {
    backend == "uring" && std::env::var_os("RINGWAVE_URING_NO_DIRECT").is_none_or(|v| v == "0")
}

/// What each of a process's descriptors names (`socket:[inode]`, a path),
/// for messages.
pub fn fd_targets(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let target = std::fs::read_link(e.path()).ok()?;
        Some(format!(
            "{}={}",
            e.file_name().to_string_lossy(),
            target.display()
        ))
    })
    .collect()
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A tungstenite client on the feed app's `/feed` (reads time out after
/// 20 s).
pub fn feed_client(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}/feed"), stream).unwrap();
    ws
}

/// Run `curl -sS -N -v --max-time 20 ARGS` until the first event of the
/// stream it reads; returns what it read and its trace (stderr).
pub fn curl_sse(args: &[&str]) -> (String, String) {
    let mut curl = Command::new("curl")
        .args(["-sS", "-N", "-v", "--max-time", "20"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl (scripts/test.sh installs it)");
    let mut out = curl.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the first event: curl's own --max-time bounds the wait.
    while !String::from_utf8_lossy(&got).contains("\ndata: ") {
        let n = out.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "stream ended before an event: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let _ = curl.kill();
    let mut err = String::new();
    curl.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = curl.wait();
    (String::from_utf8_lossy(&got).into_owned(), err)
}

/// A process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

/// A process's address space (`VmSize`), in KiB.
pub fn vm_size_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmSize:")
}

/// A `kB` field of `/proc/PID/status`.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}
