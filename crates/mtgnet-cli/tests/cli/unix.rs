//! `serve --listen unix:PATH`, `call unix:PATH` and `bench --addr unix:PATH`:
//! encrypted and plain, the socket file's life, and the paths that are refused.

use std::path::Path;
use std::time::Duration;

use crate::util::{Server, run};

fn unix(path: &Path) -> String {
    format!("unix:{}", path.to_str().expect("UTF-8 path"))
}

#[test]
fn call_over_a_unix_socket_works_with_v2_v1_and_plain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let encrypted_path = unix(&dir.path().join("encrypted.sock"));
    let server = Server::start_at(&encrypted_path, &[]);
    assert_eq!(server.addr, encrypted_path, "`listening unix:PATH`");
    for version in ["v2", "v1"] {
        let out = run(&[
            "call",
            &server.addr,
            "Test",
            "add",
            "20",
            "22",
            "--server-key",
            server.key(),
            "--encryption",
            version,
        ]);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(0), "42\n"),
            "{version}: {out:?}"
        );
    }

    let plain_path = unix(&dir.path().join("plain.sock"));
    let plain = Server::start_at(&plain_path, &["--plain"]);
    assert_eq!(plain.addr, plain_path);
    let out = run(&["call", "--plain", &plain.addr, "Test", "echo", "over unix"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "\"over unix\"\n"),
        "{out:?}"
    );
}

#[test]
fn serve_removes_its_socket_file_on_sigterm_and_on_sigint() {
    let dir = tempfile::tempdir().expect("temp dir");
    for signal in ["TERM", "INT"] {
        let path = dir.path().join(format!("{signal}.sock"));
        let mut server = Server::start_at(&unix(&path), &["--plain"]);
        assert!(path.exists());
        server.assert_serves();
        let status = server
            .signal(signal, Duration::from_secs(5))
            .expect("exits promptly");
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        assert!(
            !path.exists(),
            "SIG{signal}: the socket file is left behind"
        );
    }
}

#[test]
fn a_stale_socket_file_left_by_a_killed_server_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stale.sock");
    // What a killed server leaves: the file, and nobody listening on it.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let server = Server::start_at(&unix(&path), &[]);
    server.assert_serves();
}

#[test]
fn a_socket_a_server_listens_on_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let address = unix(&dir.path().join("live.sock"));
    let server = Server::start_at(&address, &["--plain"]);
    let out = run(&["serve", "--plain", "--listen", &address]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot listen on {address}: address in use: a server is listening on this socket\n"
        ),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    server.assert_serves();
}

#[test]
fn a_path_that_is_not_a_socket_is_refused_with_exit_2_and_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "keep me\n").expect("write");
    let address = unix(&path);
    let out = run(&["serve", "--plain", "--listen", &address]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot listen on {address}: the path exists and is not a socket (left alone)\n"
        ),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("kept"), "keep me\n");

    let out = run(&["serve", "--plain", "--listen", "unix:"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("names no socket path"), "{out:?}");
}

#[test]
fn bench_loads_a_server_on_a_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_at(&unix(&dir.path().join("bench.sock")), &[]);
    let out = run(&[
        "bench",
        "--addr",
        &server.addr,
        "--server-key",
        server.key(),
        "--json",
        "--duration",
        "0.3",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert!(
        report["completed"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    assert_eq!(report["errors"], 0, "{report}");
}
