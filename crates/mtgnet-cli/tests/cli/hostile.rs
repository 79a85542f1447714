//! `mtgnet serve` under hostile bytes. Bad input must close its connection
//! *promptly*: those servers run with 10 s idle and handshake timeouts, so
//! a server ignoring the input until a timeout fails the 2 s bound. Slow
//! and silent peers are closed neither before `--idle-timeout 2` /
//! `--handshake-timeout 2` nor long after. A fresh `mtgnet call` is served
//! after each attack.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mtgnet_encryption::{AuthorizedKeys, Handshake, IdentitySecret, PublicKey};

use crate::util::{Server, run};

/// Timeouts long enough that only a rejection closes a connection within [`PROMPT`].
const PATIENT: [&str; 4] = ["--handshake-timeout", "10", "--idle-timeout", "10"];

/// How soon bad input must close its connection.
const PROMPT: Duration = Duration::from_secs(2);

/// The timeout in tests about a timeout itself (`--...-timeout 2`).
const TIMEOUT: Duration = Duration::from_secs(2);

/// How late after its timeout a connection may be seen closing.
const LATE: Duration = Duration::from_millis(1500);

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Reads until the server closes the connection (end of stream or reset)
/// and returns what it sent; fails the test if it is still open `limit`
/// after `since`.
fn read_until_closed(
    stream: &mut TcpStream,
    since: Instant,
    limit: Duration,
    what: &str,
) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = (since + limit).saturating_duration_since(Instant::now());
        let still_open = |received: &[u8]| -> ! {
            panic!(
                "{what}: the connection is still open {limit:?} later; received {} bytes",
                received.len()
            )
        };
        if left.is_zero() {
            still_open(&received);
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                still_open(&received)
            }
            Err(e) => panic!("{what}: reading failed: {e}"),
        }
    }
}

/// Sends `bytes` and returns what the server sent before closing the
/// connection, which it must do within [`PROMPT`] of the last byte.
fn attack(server: &Server, bytes: &[u8], what: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    // The server may close (and reset) before taking every byte.
    let _ = stream.write_all(bytes);
    let sent = Instant::now();
    read_until_closed(&mut stream, sent, PROMPT, what)
}

/// Reads until the server closes `stream`, and asserts that was no sooner
/// than `timeout` after `since` (the server's clock starts after that) and
/// no later than [`LATE`] after.
fn closed_at_its_timeout(
    mut stream: TcpStream,
    since: Instant,
    timeout: Duration,
    what: &str,
) -> Vec<u8> {
    let received = read_until_closed(&mut stream, since, timeout + LATE, what);
    let waited = since.elapsed();
    assert!(
        waited >= timeout,
        "{what}: closed after {waited:?}, before its {timeout:?} timeout"
    );
    received
}

/// Asserts `received` is exactly the server's own handshake frame: 132
/// bytes, a valid handshake signed by the server's key, nothing after it.
fn assert_only_the_server_handshake(server: &Server, received: &[u8], what: &str) {
    assert_eq!(
        received.len(),
        132,
        "{what}: the server's handshake frame and nothing after it, got {:?}",
        String::from_utf8_lossy(received.get(132..).unwrap_or_default())
    );
    assert_eq!(&received[..3], b"80:", "{what}: handshake frame header");
    assert_eq!(received[131], b'\n', "{what}: handshake frame terminator");
    let key: PublicKey = server.key().parse().expect("the server's key");
    let check = Handshake::new(&IdentitySecret::generate(), AuthorizedKeys::only([key]));
    assert!(
        check.finish(&received[3..131]).is_ok(),
        "{what}: the 128 bytes are the server's own valid handshake"
    );
}

#[test]
fn plain_serve_closes_promptly_on_bad_frames_and_bad_messages() {
    let server = Server::start(&["--plain", "--idle-timeout", "10"]);
    let attacks: [&[u8]; 10] = [
        b"FFFFFFFFFFFF",
        b"FFFFFFFFFFFF:",
        b"zz:",
        b"01:a\n",
        b"3:abcX",
        b"0:\n",
        b"5:hello\n",
        b"2:{}\n",
        b"5:[1,2]\n",
        b"4:\xff\xfe[]\n",
    ];
    for bytes in attacks {
        let what = format!("{:?}", String::from_utf8_lossy(bytes));
        let received = attack(&server, bytes, &what);
        assert!(received.is_empty(), "{what} was answered: {received:?}");
        server.assert_serves();
    }
}

#[test]
fn plain_serve_closes_idle_and_slow_peers_at_the_idle_timeout() {
    let server = Server::start(&["--plain", "--idle-timeout", "2"]);
    let start = Instant::now();
    let idle = TcpStream::connect(&server.addr).expect("connect");
    let mut slow = TcpStream::connect(&server.addr).expect("connect");
    // A header digit, then nothing: a frame that never completes.
    slow.write_all(b"1").expect("write");
    let (idle_received, slow_received) = std::thread::scope(|s| {
        let idle = s.spawn(|| closed_at_its_timeout(idle, start, TIMEOUT, "an idle peer"));
        let slow = s.spawn(|| closed_at_its_timeout(slow, start, TIMEOUT, "a half-sent header"));
        (idle.join().expect("idle"), slow.join().expect("slow"))
    });
    assert!(idle_received.is_empty(), "{idle_received:?}");
    assert!(slow_received.is_empty(), "{slow_received:?}");
    server.assert_serves();
}

#[test]
fn plain_serve_answers_trickled_and_coalesced_frames() {
    let server = Server::start(&["--plain", "--idle-timeout", "2"]);
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    for byte in frame(br#"[{"service":"Test","method":"echo","args":[1],"id":1}]"#) {
        stream.write_all(&[byte]).expect("write");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut coalesced = frame(br#"[{"service":"Test","method":"echo","args":[2],"id":2}]"#);
    coalesced.extend(frame(
        br#"[{"service":"Test","method":"echo","args":[3],"id":3}]"#,
    ));
    stream.write_all(&coalesced).expect("write");
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while received.iter().filter(|&&b| b == b'\n').count() < 3 {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed early");
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(received).expect("UTF-8");
    for id in 1..=3 {
        assert!(
            text.contains(&format!(r#"{{"id":{id},"data":{id}}}"#)),
            "{text}"
        );
    }
}

#[test]
fn encrypted_serve_closes_promptly_on_bad_handshakes() {
    let mut v1_only = PATIENT.to_vec();
    v1_only.extend(["--encryption", "v1"]);
    let v1 = Server::start(&v1_only);
    let any = Server::start(&PATIENT);
    let identity = IdentitySecret::generate();
    let mut bad_signature = Handshake::new(&identity, AuthorizedKeys::any())
        .payload()
        .to_vec();
    bad_signature[40] ^= 1;
    let attacks = [
        ("a 127-byte handshake", frame(&[7u8; 127])),
        ("a 129-byte handshake", frame(&[7u8; 129])),
        ("a bad signature", frame(&bad_signature)),
        (
            "a plaintext request",
            frame(br#"[{"service":"Test","method":"echo","args":[1],"id":1}]"#),
        ),
        ("an empty frame", b"0:\n".to_vec()),
    ];
    for (what, bytes) in &attacks {
        let received = attack(&v1, bytes, what);
        assert_only_the_server_handshake(&v1, &received, what);
        v1.assert_serves();
        // A server accepting v2 too answers only a 128-byte (v1) first
        // frame with its own handshake frame, and nothing else at all.
        let received = attack(&any, bytes, what);
        if bytes.len() == 132 {
            assert_only_the_server_handshake(&any, &received, what);
        } else {
            assert!(received.is_empty(), "{what}: got {received:?}");
        }
        any.assert_serves();
    }
}

#[test]
fn encrypted_serve_closes_silent_peers_at_the_handshake_timeout() {
    // A long idle timeout: only the handshake timeout may close the peer.
    for version in ["v1", "any"] {
        let server = Server::start(&[
            "--handshake-timeout",
            "2",
            "--idle-timeout",
            "10",
            "--encryption",
            version,
        ]);
        let start = Instant::now();
        let silent = TcpStream::connect(&server.addr).expect("connect");
        let what = format!("a peer that never sends its handshake (--encryption {version})");
        let received = closed_at_its_timeout(silent, start, TIMEOUT, &what);
        if server.v1_only {
            assert_only_the_server_handshake(&server, &received, &what);
        } else {
            // A server accepting v2 waits for the client's first frame.
            assert!(received.is_empty(), "{what}: got {received:?}");
        }
        server.assert_serves();
    }
}

#[test]
fn serve_answers_a_flood_of_200_connections_with_20_calls_each() {
    // The default idle timeout: the bench opens its 200 connections one
    // after another before calling, which can take longer than 2 s on a
    // loaded machine, and an idle close is not what this test is about.
    let server = Server::start(&["--handshake-timeout", "2"]);
    let out = run(&[
        "bench",
        "--addr",
        &server.addr,
        "--server-key",
        server.key(),
        "--connections",
        "200",
        "--in-flight",
        "20",
        "--duration",
        "1",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(report["errors"], 0, "{report}");
    // No throughput floor (that is the bench's job): every connection
    // answered without error, and calls completed on them.
    assert!(
        report["completed"].as_u64().is_some_and(|n| n >= 200),
        "{report}"
    );
    server.assert_serves();
}
