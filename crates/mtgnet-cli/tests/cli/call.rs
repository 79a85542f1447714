//! `mtgnet call` against real servers.

use std::time::Duration;

use crate::util::{Server, keygen_into, run};

#[test]
fn echo_of_text_that_is_not_json_sends_a_string() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "echo",
        "hello",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "\"hello\"\n", "")
    );
}

#[test]
fn echo_of_json_prints_it_compactly() {
    let server = Server::plain();
    let out = run(&[
        "call",
        "--plain",
        &server.addr,
        "Test",
        "echo",
        r#"{"a": [1, "b c"]}"#,
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "{\"a\":[1,\"b c\"]}\n", "")
    );
}

#[test]
fn add_of_integers_including_negative_ones() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "add",
        "1",
        "2",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "3\n"));
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "add",
        "-5",
        "3",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "-2\n", "")
    );
}

#[test]
fn flags_after_negative_arguments_still_count() {
    let server = Server::plain();
    let out = run(&["call", &server.addr, "Test", "add", "-5", "-3", "--plain"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "-8\n", "")
    );
}

#[test]
fn add_of_big_integers_is_exact() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "add",
        "4611686018427387904",
        "4611686018427387905",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "9223372036854775809\n")
    );
}

#[test]
fn fail_exits_1_with_the_remote_condition() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "fail",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(1), "", "error 42: boom\n")
    );
}

#[test]
fn warn_prints_the_value_and_the_warning() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "warn",
        "x",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "\"x\"\n", "warning 7: careful\n")
    );
}

#[test]
fn system_rpc_version_is_1_0_draft_1() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "System",
        "rpcVersion",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let version: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        version,
        serde_json::json!({"major": 1, "minor": 0, "type": "draft", "revision": 1})
    );
    assert_eq!(out.stdout.lines().count(), 1);
}

#[test]
fn system_services_lists_test() {
    let server = Server::plain();
    let out = run(&["call", "--plain", &server.addr, "System", "services"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "[\"System\",\"Test\"]\n")
    );
}

#[test]
fn unknown_service_exits_1_with_unknown_service() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Nope",
        "x",
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.starts_with("error unknown-service: "), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn pinned_server_key_that_matches_is_accepted() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "echo",
        "1",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "1\n", "")
    );
}

#[test]
fn pinned_server_key_that_differs_exits_2_quickly() {
    let server = Server::encrypted();
    let other = Server::encrypted();
    let out = run(&[
        "call",
        &server.addr,
        "Test",
        "echo",
        "1",
        "--server-key",
        other.key(),
        "--timeout",
        "10",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(
        out.stderr.contains(server.key()),
        "names the server's key: {out:?}"
    );
    assert!(out.elapsed < Duration::from_secs(5), "{out:?}");
}

#[test]
fn server_accepts_an_authorized_client_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (secret, public) = keygen_into(dir.path(), "client.secret");
    let keys = dir.path().join("authorized_keys");
    std::fs::write(&keys, format!("# the test client\n{public} client\n")).expect("write keys");
    let server = Server::start(&["--authorized-keys", keys.to_str().expect("UTF-8")]);
    let out = run(&[
        "call",
        "--secret-file",
        &secret,
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "echo",
        "ok",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "\"ok\"\n", "")
    );
}

#[test]
fn server_rejects_a_client_key_it_does_not_authorize() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, public) = keygen_into(dir.path(), "client.secret");
    let keys = dir.path().join("authorized_keys");
    std::fs::write(&keys, format!("{public}\n")).expect("write keys");
    let server = Server::start(&["--authorized-keys", keys.to_str().expect("UTF-8")]);
    let out = run(&[
        "call",
        "--server-key",
        server.key(),
        &server.addr,
        "Test",
        "echo",
        "no",
        "--timeout",
        "10",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(out.stderr.contains("authorize"), "{out:?}");
    assert!(out.elapsed < Duration::from_secs(5), "{out:?}");
}

#[test]
fn plain_client_to_encrypted_server_exits_2_within_the_timeout() {
    let server = Server::encrypted();
    let out = run(&[
        "call",
        "--plain",
        "--timeout",
        "3",
        &server.addr,
        "Test",
        "echo",
        "x",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(
        out.stderr.contains("--plain"),
        "names the likely cause: {out:?}"
    );
    assert!(out.elapsed < Duration::from_secs(5), "{out:?}");
}

#[test]
fn encrypted_client_to_plain_server_exits_2() {
    let server = Server::plain();
    let out = run(&["call", "--timeout", "3", &server.addr, "Test", "echo", "x"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    let error = after_unpinned_warning(&out);
    assert!(error.starts_with("error: "), "{out:?}");
    assert!(error.contains("--plain"), "names the likely cause: {out:?}");
    assert!(out.elapsed < Duration::from_secs(5), "{out:?}");
}

/// The exact line `mtgnet call` prints when no `--server-key` pins the server.
const UNPINNED: &str = "warning: the server's key is not pinned (no --server-key): \
     whoever answers at this address is trusted, so anyone on the path can pose as the server";

/// Asserts that stderr starts with the one unpinned warning line, and
/// returns what follows it.
fn after_unpinned_warning(out: &crate::util::Output) -> &str {
    let rest = out
        .stderr
        .strip_prefix(UNPINNED)
        .and_then(|rest| rest.strip_prefix('\n'));
    rest.unwrap_or_else(|| panic!("stderr starts with the unpinned warning: {out:?}"))
}

#[test]
fn unpinned_call_warns_once_and_still_runs() {
    let server = Server::encrypted();
    let out = run(&["call", &server.addr, "Test", "echo", "hello"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "\"hello\"\n", format!("{UNPINNED}\n").as_str())
    );
    // A pinned call, and a plain one, say nothing.
    let plain = Server::plain();
    for args in [
        vec![
            "call",
            "--server-key",
            server.key(),
            &server.addr,
            "Test",
            "echo",
            "x",
        ],
        vec!["call", "--plain", &plain.addr, "Test", "echo", "x"],
    ] {
        let out = run(&args);
        assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out:?}");
    }
}

#[test]
fn connection_refused_exits_2() {
    // Bind and drop: the port is very likely free afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = run(&["call", &addr, "Test", "echo", "x"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(
        after_unpinned_warning(&out).starts_with(&format!("error: cannot connect to {addr}")),
        "{out:?}"
    );
}

#[test]
fn server_that_never_answers_times_out_with_exit_2() {
    // Accepts but never speaks: the handshake must time out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let out = run(&["call", "--timeout", "0.5", &addr, "Test", "echo", "x"]);
    drop(listener);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(
        after_unpinned_warning(&out).starts_with("error: "),
        "{out:?}"
    );
    assert!(out.elapsed < Duration::from_secs(3), "{out:?}");
}

#[test]
fn bad_usage_exits_2() {
    let out = run(&["call", "127.0.0.1:1"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = run(&[
        "call",
        "--plain",
        "--server-key",
        "AAAA",
        "127.0.0.1:1",
        "Test",
        "echo",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = run(&["call", "--timeout", "-1", "127.0.0.1:1", "Test", "echo"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = run(&["frobnicate"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = run(&[]);
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn help_and_version_exit_0() {
    let out = run(&["--help"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("serve"), "{out:?}");
    let out = run(&["--version"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "mtgnet 0.1.0\n"));
}

#[test]
fn client_identity_from_the_environment_is_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (secret, public) = keygen_into(dir.path(), "client.secret");
    let keys = dir.path().join("authorized_keys");
    std::fs::write(&keys, format!("{public}\n")).expect("write keys");
    let server = Server::start(&["--authorized-keys", keys.to_str().expect("UTF-8")]);
    let secret = std::fs::read_to_string(secret).expect("read secret");
    let out = crate::util::run_with(
        crate::util::mtgnet()
            .args(["call", "--server-key", server.key(), &server.addr])
            .args(["Test", "echo", "env"])
            .env("MTGNET_SECRET", secret.trim_end()),
        None,
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "\"env\"\n", "")
    );
}

#[test]
fn arguments_after_a_double_dash_may_start_with_a_dash() {
    let server = Server::plain();
    let out = run(&["call", "--plain", &server.addr, "Test", "echo", "--", "-x"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "\"-x\"\n"),
        "{out:?}"
    );
}
