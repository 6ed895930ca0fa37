//! The Grafana dashboard (deploy/grafana/ringwave-dashboard.json) against a
//! real Prometheus (Debian's `prometheus`, which scripts/test.sh installs)
//! scraping a running ringwave with TLS, HTTP/2, history and the NATS
//! bridge on: every query of every panel returns data
//! (tests/python/prometheus_dashboard.py).

mod server;

use server::certs::TestPki;
use server::nats::Nats;
use server::{run_python, TestServer};

#[test]
fn every_dashboard_query_returns_data_from_prometheus() {
    let nats = Nats::start();
    let pki = TestPki::new("prometheus");
    let leaf = pki.leaf("server", &["localhost"], 1);
    let url = nats.url();
    let srv = TestServer::start_tls(
        "uring",
        &leaf.cert,
        &leaf.key,
        &[
            "--nats",
            &url,
            "--history",
            "ticks=1000",
            "--max-connections",
            "10000",
            "--feed-sim",
            "20:50",
        ],
    );
    let dashboard = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/ringwave-dashboard.json"
    );
    run_python(
        "prometheus_dashboard.py",
        &[&srv.addr.to_string(), dashboard],
        &[],
    );
}
