//! `mosaic healthcheck` (the container image's HEALTHCHECK): exit 0 when the
//! server answers 2xx, a failing exit naming the URL otherwise.

mod common;

use std::process::{Command, Output};

fn healthcheck(args: &[&str]) -> Output {
    Command::new(common::BIN)
        .arg("healthcheck")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mosaic healthcheck")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn healthcheck_passes_on_a_live_server_and_fails_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path());

    let ok = healthcheck(&["--url", &format!("{}/healthz", server.url)]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let ready = healthcheck(&["--url", &format!("{}/readyz", server.url)]);
    assert!(ready.status.success(), "{}", stderr(&ready));

    // A 404 is an answer, but not a healthy one.
    let missing = healthcheck(&["--url", &format!("{}/no-such-path", server.url)]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));

    // Nothing listening: a failing exit, not a hang or a panic.
    let url = server.url.clone();
    drop(server);
    let down = healthcheck(&["--url", &format!("{url}/healthz"), "--timeout-ms", "1000"]);
    assert!(!down.status.success());
    assert!(stderr(&down).contains("/healthz"), "{}", stderr(&down));
}

#[test]
fn healthcheck_refuses_bad_arguments_by_name() {
    let scheme = healthcheck(&["--url", "ftp://127.0.0.1/healthz"]);
    assert!(!scheme.status.success());
    assert!(stderr(&scheme).contains("--url"), "{}", stderr(&scheme));
    let garbage = healthcheck(&["--url", "not a url"]);
    assert!(!garbage.status.success());
    assert!(stderr(&garbage).contains("--url"), "{}", stderr(&garbage));
    let zero = healthcheck(&["--timeout-ms", "0"]);
    assert!(!zero.status.success());
    assert!(stderr(&zero).contains("--timeout-ms"), "{}", stderr(&zero));
}
