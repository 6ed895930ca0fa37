//! The real server, on both backends, against clients nobody here wrote:
//! Python's `websockets` (with permessage-deflate, fragmentation, ping, close
//! codes, 1009 and 5,000 concurrent connections), headless Chromium
//! loading the `GET /` page (and its JavaScript client, through a proxy
//! that cuts its connections), and `prometheus_client` parsing `/metrics`.
//! The Python side lives in tests/python/.

mod server;
use server::*;

fn run_script(script: &str, args: &[&str]) {
    run_python(script, args, &[]);
}

both_backends!(python_websockets_clients, |backend| {
    let srv = TestServer::start(backend, &["--deflate"]);
    run_script("ws_clients.py", &[&srv.url("/echo")]);
});

both_backends!(
    chromium_loads_the_page_echoes_and_shows_live_ticks,
    |backend| {
        let srv = TestServer::start(backend, &[]);
        run_script("browser.py", &[&format!("http://{}/", srv.addr)]);
    }
);

both_backends!(
    chromium_runs_the_js_client_through_cut_connections,
    |backend| {
        let srv = TestServer::start(
            backend,
            &["--history", "ticks=100000", "--feed-sim", "10:200"],
        );
        run_script("browser_client.py", &[&srv.addr.port().to_string()]);
    }
);

both_backends!(
    conformance_cases_modelled_on_autobahn_sections_1_to_10,
    |backend| {
        let srv = TestServer::start(backend, &[]);
        run_script(
            "conformance.py",
            &["127.0.0.1", &srv.addr.port().to_string()],
        );
    }
);

both_backends!(metrics_parse_with_prometheus_client, |backend| {
    let srv = TestServer::start(backend, &["--threads", "2"]);
    run_script(
        "metrics_parse.py",
        &["127.0.0.1", &srv.addr.port().to_string(), "2"],
    );
});
