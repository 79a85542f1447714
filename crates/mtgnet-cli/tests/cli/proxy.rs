//! `mtgnet proxy` in front of `mtgnet serve --plain` and of a v1-only
//! `mtgnet serve`, driven by `mtgnet call`.

use std::time::Duration;

use crate::util::{Server, keygen_into, run};

/// A port nothing listens on (bound, then released).
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    addr.to_string()
}

#[test]
fn proxy_in_front_of_a_plain_server_carries_a_pinned_v2_call() {
    let backend = Server::plain();
    let proxy = Server::proxy(&["--to", &backend.addr, "--to-plain"]);
    let out = run(&[
        "call",
        &proxy.addr,
        "Test",
        "echo",
        "hello",
        "--server-key",
        proxy.key(),
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "\"hello\"\n", ""),
        "{out:?}"
    );
    proxy.assert_serves();
}

#[test]
fn proxy_in_front_of_a_v1_only_server_adds_v2_and_the_v1_clients_still_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (backend_secret, backend_key) = keygen_into(dir.path(), "backend.secret");
    let (proxy_secret, proxy_key) = keygen_into(dir.path(), "proxy.secret");
    let (legacy_secret, legacy_key) = keygen_into(dir.path(), "legacy.secret");
    // The backend lets in the proxy and its own v1 client, nobody else.
    let keys = dir.path().join("backend_authorized_keys");
    std::fs::write(&keys, format!("{proxy_key} proxy\n{legacy_key} legacy\n")).expect("write");
    let backend = Server::start(&[
        "--encryption",
        "v1",
        "--secret-file",
        &backend_secret,
        "--authorized-keys",
        keys.to_str().expect("UTF-8"),
    ]);
    let proxy = Server::proxy(&[
        "--to",
        &backend.addr,
        "--to-server-key",
        &backend_key,
        "--secret-file",
        &proxy_secret,
    ]);
    assert_eq!(proxy.key(), proxy_key);

    let through = run(&[
        "call",
        &proxy.addr,
        "Test",
        "echo",
        "via the proxy",
        "--server-key",
        &proxy_key,
    ]);
    assert_eq!(
        (
            through.code,
            through.stdout.as_str(),
            through.stderr.as_str()
        ),
        (Some(0), "\"via the proxy\"\n", ""),
        "{through:?}"
    );
    // The backend's own kind of client, straight to it.
    let legacy = run(&[
        "call",
        &backend.addr,
        "Test",
        "add",
        "20",
        "22",
        "--encryption",
        "v1",
        "--secret-file",
        &legacy_secret,
        "--server-key",
        &backend_key,
    ]);
    assert_eq!(
        (legacy.code, legacy.stdout.as_str(), legacy.stderr.as_str()),
        (Some(0), "42\n", ""),
        "{legacy:?}"
    );
    // What the proxy adds: the backend itself speaks no v2.
    let direct = run(&[
        "call",
        &backend.addr,
        "Test",
        "echo",
        "x",
        "--server-key",
        &backend_key,
    ]);
    assert_eq!(
        (direct.code, direct.stderr.as_str()),
        (
            Some(2),
            "error: the server speaks only encryption v1; `--encryption v1` accepts its weaker protection\n"
        ),
        "{direct:?}"
    );
}

#[test]
fn proxy_accepting_any_version_serves_a_v1_client() {
    let backend = Server::plain();
    let proxy = Server::proxy(&["--to", &backend.addr, "--to-plain", "--encryption", "any"]);
    let out = run(&[
        "call",
        &proxy.addr,
        "Test",
        "add",
        "1",
        "2",
        "--encryption",
        "v1",
        "--server-key",
        proxy.key(),
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "3\n", ""),
        "{out:?}"
    );
}

#[test]
fn proxy_refuses_an_unauthorized_client_key_before_opening_a_backend_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (allowed_secret, allowed_key) = keygen_into(dir.path(), "allowed.secret");
    let (stranger_secret, stranger_key) = keygen_into(dir.path(), "stranger.secret");
    let keys = dir.path().join("authorized_keys");
    std::fs::write(&keys, format!("{allowed_key}\n")).expect("write");
    // A backend that never answers: whether the proxy connected to it shows
    // in its backlog.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    backend.set_nonblocking(true).expect("non-blocking");
    let backend_addr = backend.local_addr().expect("address").to_string();
    let proxy = Server::proxy(&[
        "--to",
        &backend_addr,
        "--to-plain",
        "--authorized-keys",
        keys.to_str().expect("UTF-8"),
    ]);

    let refused = run(&[
        "call",
        &proxy.addr,
        "Test",
        "echo",
        "x",
        "--secret-file",
        &stranger_secret,
        "--server-key",
        proxy.key(),
    ]);
    assert_eq!(
        (
            refused.code,
            refused.stdout.as_str(),
            refused.stderr.as_str()
        ),
        (
            Some(2),
            "",
            format!(
                "error: the server closed the connection right after the handshake: \
                 does it authorize this client's key {stranger_key}?\n"
            )
            .as_str()
        ),
        "{refused:?}"
    );
    assert!(
        matches!(backend.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no backend connection for a refused client"
    );

    // The authorized client does get its backend connection (which never answers).
    let allowed = run(&[
        "call",
        &proxy.addr,
        "Test",
        "echo",
        "x",
        "--secret-file",
        &allowed_secret,
        "--server-key",
        proxy.key(),
        "--timeout",
        "1",
    ]);
    // Timed out, by the call's bound or the whole command's, whichever fired first.
    assert_eq!(allowed.code, Some(2), "{allowed:?}");
    assert!(
        allowed.stderr.starts_with("error: ") && allowed.stderr.contains("within 1 s"),
        "{allowed:?}"
    );
    assert!(
        backend.accept().is_ok(),
        "the allowed client's backend connection"
    );
}

#[test]
fn proxy_with_its_backend_down_ends_the_call_with_a_clean_close_not_a_timeout() {
    let down = free_port();
    let proxy = Server::proxy(&[
        "--to",
        &down,
        "--to-plain",
        "--idle-timeout",
        "3600",
        "--connect-timeout",
        "3600",
    ]);
    let out = run(&[
        "call",
        &proxy.addr,
        "Test",
        "echo",
        "x",
        "--server-key",
        proxy.key(),
        "--timeout",
        "3600",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            Some(2),
            "",
            "error: the server closed the connection without answering: \
             it is shutting down, or it is a proxy that cannot reach its backend\n"
        ),
        "{out:?}"
    );
}

#[test]
fn proxy_announces_its_key_and_stops_on_sigterm_with_exit_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (secret, public) = keygen_into(dir.path(), "proxy.secret");
    let backend = Server::plain();
    let mut proxy = Server::proxy(&[
        "--to",
        &backend.addr,
        "--to-plain",
        "--secret-file",
        &secret,
    ]);
    assert!(proxy.addr.starts_with("127.0.0.1:"), "{}", proxy.addr);
    assert_eq!(proxy.key(), public);
    let status = proxy
        .terminate(Duration::from_secs(5))
        .expect("exits promptly");
    assert_eq!(status.code(), Some(0));
}

/// Runs a proxy with `extra` until SIGTERM; returns its log.
fn proxy_log(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stderr");
    let file = std::fs::File::create(&path).expect("log file");
    let mut proxy = Server::proxy_logging(extra, file);
    let status = proxy
        .terminate(Duration::from_secs(5))
        .expect("exits promptly");
    assert_eq!(status.code(), Some(0));
    std::fs::read_to_string(&path).expect("read the log")
}

#[test]
fn proxy_warns_when_the_backend_hop_is_unpinned_or_plain() {
    let backend = free_port();
    let unpinned = proxy_log(&["--to", &backend]);
    assert!(
        unpinned.lines().any(|line| line.contains("WARN")
            && line.contains("the backend's key is not pinned (no --to-server-key)")),
        "{unpinned}"
    );
    let plain = proxy_log(&["--to", &backend, "--to-plain"]);
    assert!(
        plain
            .lines()
            .any(|line| line.contains("WARN")
                && line.contains("the backend hop is plain (--to-plain)")),
        "{plain}"
    );
    let key = mtgnet_encryption::IdentitySecret::generate()
        .public_key()
        .to_string();
    let pinned = proxy_log(&["--to", &backend, "--to-server-key", &key]);
    assert!(
        !pinned.contains("backend's key is not pinned") && !pinned.contains("hop is plain"),
        "{pinned}"
    );
}

#[test]
fn proxy_bad_usage_exits_2() {
    let key = mtgnet_encryption::IdentitySecret::generate()
        .public_key()
        .to_string();
    for args in [
        &["proxy", "--listen", "127.0.0.1:0"][..],
        &["proxy", "--to", "127.0.0.1:1"],
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:1",
            "--encryption",
            "v1",
        ],
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:1",
            "--to-plain",
            "--to-server-key",
            &key,
        ],
    ] {
        let out = run(args);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(2), ""),
            "{args:?}: {out:?}"
        );
    }
    for (flag, message) in [
        (
            "--max-connection-bytes",
            "error: invalid --max-connection-bytes: max_connection_bytes is 0; it must be at least 1",
        ),
        (
            "--connect-timeout",
            "error: invalid --connect-timeout: connect_timeout is 0s; it must be more than zero",
        ),
    ] {
        let out = run(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:1",
            "--to-plain",
            flag,
            "0",
        ]);
        assert_eq!(
            (out.code, out.stderr.trim_end(), out.stdout.as_str()),
            (Some(2), message, ""),
            "{flag} 0"
        );
    }
}
