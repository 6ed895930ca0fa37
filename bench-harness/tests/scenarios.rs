//! ringwave-bench against an in-process ringwave: every scenario produces a
//! result, and `report` turns results into report.md and charts.

use std::process::Command;

use bench_harness::stats::RunResult;
use ringwave::driver::Backend;
use ringwave::server::{Config, Echo, EngineConfig, HistoryConfig, Retention, Server};

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ringwave-bench"))
        .args(args)
        .output()
        .expect("run ringwave-bench");
    assert!(
        out.status.success(),
        "ringwave-bench {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn results(path: &std::path::Path) -> Vec<RunResult> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_scenario_reports_and_the_report_renders() {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(1)
        .backend(Backend::Poll)
        .serve(|| Echo)
        .expect("server");
    let url = format!("ws://{}/", server.local_addr());
    let dir = std::env::temp_dir().join(format!("ringwave-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("results.jsonl");
    let j = json.to_str().unwrap();
    let pid = std::process::id().to_string();
    let common = [
        "--url",
        &url,
        "--json",
        j,
        "--quiet",
        "--server-pid",
        &pid,
        "--label",
        "ringwave-poll",
    ];

    let out = bench(
        &[
            &[
                "echo", "-c", "10", "-s", "100", "-d", "2", "-t", "0.5", "--warmup", "0.2",
            ],
            &common[..],
        ]
        .concat(),
    );
    assert!(out.contains("msg/s"), "{out}");
    let out = bench(
        &[
            &[
                "latency", "-c", "100", "-s", "16", "--rate", "20000", "-t", "0.5", "--warmup",
                "0.2",
            ],
            &common[..],
        ]
        .concat(),
    );
    assert!(out.contains("p99"), "{out}");
    bench(
        &[
            &["connect", "-n", "300", "-k", "50", "--sources", "3"],
            &common[..],
        ]
        .concat(),
    );
    let out = bench(&[&["idle", "-n", "200", "-t", "0"], &common[..]].concat());
    assert!(out.starts_with("open 200"), "{out}");

    let rs = results(&json);
    assert_eq!(rs.len(), 4);
    let echo = &rs[0];
    assert_eq!((echo.scenario.as_str(), echo.errors), ("echo", 0));
    assert!(echo.count > 0 && echo.rate > 0.0 && echo.bytes_per_s >= echo.rate * 100.0 * 0.99);
    assert!(echo.server_cpu_pct.is_some() && echo.server_cpu_ns_per_op.is_some());
    let lat = &rs[1];
    let p = lat.latency.as_ref().expect("percentiles");
    // 20,000/s leaves no time to wait between sends: the engine must still
    // reap receives on zero-timeout turns.
    assert!(p.count > 5000, "{} samples at 20000/s for 0.5 s", p.count);
    assert!(p.p50_us <= p.p99_us && p.p99_us <= p.max_us);
    assert_eq!(rs[2].errors, 0);
    assert_eq!(rs[2].count, 300);
    assert!(rs[3].rss_per_conn.is_some());

    let out_dir = dir.join("report");
    bench(&["report", "--input", j, "--out", out_dir.to_str().unwrap()]);
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for needle in [
        "## Echo throughput",
        "generator ns/msg",
        "## Latency",
        "## Connect rate",
        "## Memory per idle connection",
        "ringwave-poll",
    ] {
        assert!(md.contains(needle), "report lacks {needle}:\n{md}");
    }
    for png in ["echo.png", "latency.png", "idle.png"] {
        let bytes = std::fs::read(out_dir.join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png} is a PNG");
    }
    server.shutdown();
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// SSE and /feed WebSocket subscribers, over HTTP/1.1 and as HTTP/2
/// streams (RFC 8441 for the WebSockets): every publication of the measured
/// window reaches every subscriber. The topic keeps history, so the
/// answers and events carry positions too.
#[test]
fn stream_fanouts_deliver_everything_over_both_protocols() {
    let server = Server::builder()
        .config(Config {
            engine: EngineConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                threads: 1,
                ..EngineConfig::default()
            },
            allow_client_publish: true,
            history: HistoryConfig {
                default: Some(Retention {
                    count: 1000,
                    max_age: None,
                }),
                ..HistoryConfig::default()
            },
            ..Config::default()
        })
        // The feed, SSE and POST /publish, as the binary serves them.
        .builtins()
        .serve(|| Echo)
        .expect("server");
    let addr = server.local_addr().to_string();
    for kind in ["sse-fanout", "ws-fanout"] {
        for (per, proto) in [
            ("0", "HTTP/1.1, 20 connections"),
            ("5", "HTTP/2, 4 connections x 5 streams"),
        ] {
            let out = bench(&[
                kind,
                "--addr",
                &addr,
                "-n",
                "20",
                "--streams-per-conn",
                per,
                "-r",
                "50",
                "-t",
                "0.5",
                "--warmup",
                "0.2",
            ]);
            assert!(out.contains(&format!("({proto})")), "{kind}: {out}");
            assert!(out.contains("; missing 0;"), "{kind} {proto}: {out}");
            let delivered: f64 = out
                .split("delivered ")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{kind}: no delivered figure in {out}"));
            assert!(delivered > 0.0, "{kind} {proto}: {out}");
        }
    }
    server.shutdown();
    server.join().unwrap();
}

/// The reconnect storm: every subscriber comes back from its position and
/// gets exactly the publications it missed (the scenario fails otherwise).
#[test]
fn a_reconnect_storm_recovers_every_subscriber() {
    let mut history = HistoryConfig::default();
    history.topics.insert(
        "bench".into(),
        Retention {
            count: 100,
            max_age: None,
        },
    );
    let server = Server::builder()
        .config(Config {
            engine: EngineConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                threads: 2,
                ..EngineConfig::default()
            },
            allow_client_publish: true,
            history,
            ..Config::default()
        })
        // The feed, SSE and POST /publish, as the binary serves them.
        .builtins()
        .serve(|| Echo)
        .expect("server");
    let addr = server.local_addr().to_string();
    let out = bench(&["recover", "--addr", &addr, "-n", "50", "-m", "40"]);
    assert!(out.contains("recovered 50/50; wrong 0;"), "{out}");
    // Without history on the topic the scenario says so and fails.
    let out = Command::new(env!("CARGO_BIN_EXE_ringwave-bench"))
        .args(["recover", "--addr", &addr, "--topic", "other", "-n", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--history"),
        "{out:?}"
    );
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn bad_urls_are_rejected_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringwave-bench"))
        .args(["echo", "--url", "http://example/", "-t", "0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only ws:// and wss:// URLs"));
}

/// A CA and a leaf for localhost signed by it, as PEM files in `dir`;
/// returns (CA file, certificate file, key file).
fn make_certs(dir: &std::path::Path, tag: &str) -> [std::path::PathBuf; 3] {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let files = [
        dir.join(format!("{tag}-ca.pem")),
        dir.join(format!("{tag}-cert.pem")),
        dir.join(format!("{tag}-key.pem")),
    ];
    std::fs::write(&files[0], ca.pem()).unwrap();
    std::fs::write(&files[1], leaf.pem()).unwrap();
    std::fs::write(&files[2], key.serialize_pem()).unwrap();
    files
}

#[test]
fn wss_scenarios_verify_the_server_or_refuse_it() {
    let dir = std::env::temp_dir().join(format!("ringwave-bench-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let [ca, cert, key] = make_certs(&dir, "good");
    let [other_ca, _, _] = make_certs(&dir, "other");
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(1)
        .backend(Backend::Poll)
        .tls(
            "127.0.0.1:0".parse().unwrap(),
            vec![ringwave::server::CertFiles { cert, key }],
        )
        .serve(|| Echo)
        .expect("server");
    let url = format!("wss://localhost:{}/", server.tls_addr().unwrap().port());
    let json = dir.join("results.jsonl");
    let j = json.to_str().unwrap();
    let ca = ca.to_str().unwrap();
    let common = ["--url", &url, "--json", j, "--quiet"];
    let echo = [
        "echo", "-c", "4", "-s", "2000", "-t", "0.5", "--warmup", "0.2",
    ];
    bench(&[&echo[..], &common, &["--ca", ca]].concat());
    bench(
        &[
            &["connect", "-n", "50", "-k", "10"][..],
            &common,
            &["--insecure"],
        ]
        .concat(),
    );
    let rs = results(&json);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].errors, 0);
    assert!(rs[0].rate > 0.0 && rs[0].bytes_per_s >= rs[0].rate * 2000.0 * 0.99);
    assert_eq!((rs[1].count, rs[1].errors), (50, 0));

    // A certificate from a CA the generator does not trust: every
    // handshake fails, and says why.
    let out = Command::new(env!("CARGO_BIN_EXE_ringwave-bench"))
        .args(["connect", "-n", "5", "-k", "5", "--url", &url, "--ca"])
        .arg(&other_ca)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("invalid peer certificate"), "{text}");
    // wss:// without a CA or --insecure is refused before connecting.
    let out = Command::new(env!("CARGO_BIN_EXE_ringwave-bench"))
        .args(["echo", "-t", "0.1", "--url", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca FILE (or --insecure)"));
    server.shutdown();
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hold` over several generator processes: every connection opens from the
/// processes' own source addresses, the checkpoints come in order, the
/// sample echoes while held, and nothing is lost.
#[test]
fn hold_spreads_connections_over_processes_and_loses_none() {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(2)
        .serve(|| Echo)
        .expect("server");
    let url = format!("ws://{}/", server.local_addr());
    let json =
        std::env::temp_dir().join(format!("ringwave-hold-test-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let pid = std::process::id().to_string();
    let table = bench(&[
        "hold",
        "--url",
        &url,
        "-n",
        "300",
        "-r",
        "3000",
        "-t",
        "2.5",
        "--per-process",
        "120",
        "--sample",
        "12",
        "--checkpoints",
        "100",
        "--server-pid",
        &pid,
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels[..2], ["100", "300"], "{table}");
    assert!(labels[2].starts_with("held"), "{table}");
    let held = &rows[2];
    assert_eq!(held["open"], 300, "{table}");
    assert_eq!(held["lost"], 0, "{table}");
    assert_eq!(held["failed"], 0, "{table}");
    assert!(held["echo_samples"].as_u64().unwrap() >= 12, "{table}");
    assert!(held["server_rss_bytes"].as_u64().unwrap() > 0, "{table}");
    // Three processes of at most 120: their sockets came from three sets of
    // source addresses; all 300 are in the kernel's count (both ends).
    assert!(held["tcp_inuse"].as_u64().unwrap() >= 600, "{table}");
    assert!(table.contains("| held"), "{table}");
    assert!(
        table.contains("server RSS against connections open"),
        "{table}"
    );
    let _ = std::fs::remove_file(&json);

    // More per process than the descriptor limit allows: refused, with why.
    let out = Command::new(env!("CARGO_BIN_EXE_ringwave-bench"))
        .args([
            "hold",
            "--url",
            &url,
            "-n",
            "10",
            "--per-process",
            "100000000",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("descriptor limit"), "{err}");
}
