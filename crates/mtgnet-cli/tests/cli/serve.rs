//! `mtgnet serve`: startup lines, identities, shutdown.

use std::time::Duration;

use crate::util::{Server, keygen_into, run};

#[test]
fn serve_with_a_secret_file_announces_its_public_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (secret, public) = keygen_into(dir.path(), "server.secret");
    let server = Server::start(&["--secret-file", &secret]);
    assert_eq!(server.key(), public);
    assert!(server.addr.starts_with("127.0.0.1:"));
}

#[test]
fn sigterm_stops_the_server_with_exit_0() {
    let mut server = Server::encrypted();
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("exits promptly");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn plain_server_prints_no_public_key_and_stops_on_sigterm() {
    let mut server = Server::plain();
    assert!(server.public_key.is_none());
    let out = run(&["call", "--plain", &server.addr, "Test", "echo", "1"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("exits promptly");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn serve_bad_usage_exits_2() {
    let out = run(&["serve", "--plain", "--secret-file", "x"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--secret-file",
        "/nonexistent/secret",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.starts_with("error: cannot read secret file"),
        "{out:?}"
    );
    let out = run(&["serve", "--listen", "not an address"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("error: cannot listen on not an address"),
        "{out:?}"
    );
    let out = run(&["serve", "--max-connections", "many"]);
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn serve_refuses_limits_that_cannot_work_with_exit_2() {
    for (flag, message) in [
        (
            "--max-in-flight",
            "error: invalid --max-in-flight: max_in_flight is 0; it must be from 1 to 4294967295",
        ),
        (
            "--max-connections",
            "error: invalid --max-connections: max_connections is 0; it must be from 1 to 4294967295",
        ),
        (
            "--max-connection-bytes",
            "error: invalid --max-connection-bytes: max_connection_bytes is 0; it must be at least 1",
        ),
        (
            "--write-stall",
            "error: invalid --write-stall: write_stall is 0s; it must be more than zero",
        ),
    ] {
        let out = run(&["serve", "--plain", "--listen", "127.0.0.1:0", flag, "0"]);
        assert_eq!(
            (out.code, out.stderr.trim_end(), out.stdout.as_str()),
            (Some(2), message, ""),
            "{flag} 0"
        );
    }
}

#[test]
fn serve_rejects_an_invalid_authorized_keys_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("authorized_keys");
    std::fs::write(&keys, "# ok\nnot-a-key\n").expect("write");
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--authorized-keys",
        keys.to_str().expect("UTF-8"),
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: invalid authorized keys file"),
        "{out:?}"
    );
}

#[test]
fn handshake_timeout_closes_a_silent_client() {
    use std::io::Read;
    // A v1-only server sends its handshake frame at once, like the
    // deployed peers; one accepting v2 waits for the client's.
    let server = Server::start(&["--handshake-timeout", "0.3", "--encryption", "v1"]);
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let started = std::time::Instant::now();
    let mut received = Vec::new();
    // The server's handshake frame (netstring+, hex length 0x80 = 128) arrives, then the connection closes.
    let read = stream.read_to_end(&mut received);
    assert!(read.is_ok(), "closed, not timed out: {read:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(received.starts_with(b"80:"), "{received:?}");
}

#[test]
fn max_frame_limit_applies_to_requests() {
    let server = Server::start(&["--plain", "--max-frame", "64"]);
    let small = run(&["call", "--plain", &server.addr, "Test", "echo", "x"]);
    assert_eq!(small.code, Some(0), "{small:?}");
    let long = "y".repeat(200);
    let out = run(&[
        "call",
        "--plain",
        "--timeout",
        "5",
        &server.addr,
        "Test",
        "echo",
        &long,
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
}

/// The names of the server process's threads called `mtgnet-serve`.
fn serve_threads(server: &Server) -> usize {
    let tasks = format!("/proc/{}/task", server.child.id());
    std::fs::read_dir(tasks)
        .expect("the server's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "mtgnet-serve")
        .count()
}

#[test]
fn threads_sets_the_runtime_and_zero_is_refused() {
    // Over TCP, N > 1 threads each serve their own listener on the port.
    for (threads, max_connections, expected) in [("1", "8", 0), ("3", "8", 3), ("3", "2", 2)] {
        let server = Server::start(&[
            "--plain",
            "--threads",
            threads,
            "--max-connections",
            max_connections,
        ]);
        for _ in 0..6 {
            server.assert_serves();
        }
        assert_eq!(serve_threads(&server), expected, "--threads {threads}");
    }
    let out = run(&["serve", "--plain", "--threads", "0"]);
    assert_eq!(
        (out.code, out.stderr.trim_end()),
        (
            Some(2),
            "error: invalid --threads: 0; it must be at least 1"
        )
    );
}

#[test]
fn busy_polling_longer_than_10_ms_is_refused_by_serve_and_bench() {
    for command in ["serve", "bench"] {
        let out = run(&[command, "--plain", "--busy-poll", "10001"]);
        assert_eq!(
            (out.code, out.stderr.trim_end(), out.stdout.as_str()),
            (
                Some(2),
                "error: invalid --busy-poll: 10001; it must be at most 10000 (microseconds)",
                ""
            ),
            "{command}"
        );
    }
}
