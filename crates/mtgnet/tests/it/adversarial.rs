//! Hostile bytes over real sockets. Each attack has one specific outcome:
//! bad input closes that connection *promptly* (well under the idle and
//! handshake timeouts, which are long in those tests so that a timeout
//! cannot pass for a rejection), with nothing sent but what the protocol
//! allows; a peer that is merely slow or silent is closed neither before
//! nor long after its timeout. A fresh client is served after each attack.

use std::time::{Duration, Instant};

use mtgnet::encryption::{AuthorizedKeys, Handshake, IdentitySecret, Session};
use mtgnet::{EncryptionVersion, Limits, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::util::{BOUND, TestServer, bounded, registry};

/// The idle and handshake timeouts of servers attacked with bad input: long,
/// so that a server ignoring the input would keep the connection this long.
const PATIENT: Duration = Duration::from_secs(10);

/// How soon bad input must close its connection: well under [`PATIENT`].
const PROMPT: Duration = Duration::from_secs(2);

/// The timeouts of servers in tests about a timeout itself.
const SHORT: Duration = Duration::from_secs(2);

/// How late after its timeout a connection may be seen closing.
const LATE: Duration = Duration::from_millis(1500);

fn patient_limits() -> Limits {
    Limits::default().idle_timeout(PATIENT)
}

async fn plain_server() -> TestServer {
    TestServer::start(
        ServerConfig::plain().limits(patient_limits()),
        None,
        registry(),
    )
    .await
}

async fn encrypted_server() -> TestServer {
    TestServer::encrypted_with_timeout(AuthorizedKeys::any(), patient_limits(), PATIENT).await
}

/// A server speaking only v1, as the deployed peers do: it sends its
/// handshake frame at once, without waiting for the client's.
async fn v1_only_server(limits: Limits, handshake: Duration) -> TestServer {
    TestServer::encrypted_version(
        Some(EncryptionVersion::V1),
        AuthorizedKeys::any(),
        limits,
        handshake,
    )
    .await
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Reads until the server closes the connection (end of stream or reset)
/// and returns what it sent; fails the test if the connection is still
/// open `limit` after `since`.
async fn read_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    since: Instant,
    limit: Duration,
    what: &str,
) -> Vec<u8> {
    let deadline = tokio::time::Instant::from_std(since + limit);
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "{what}: the connection is still open {limit:?} later; \
                 received {} bytes",
                received.len()
            ),
            Ok(Ok(0)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Ok(Err(e)) => panic!("{what}: reading failed: {e}"),
        }
    }
}

/// Asserts the server still answers a well-behaved client.
async fn still_serves(server: &TestServer) {
    let client = server.client().await;
    let x: i64 = bounded(client.call("Test", "add", (20, 22)))
        .await
        .expect("fresh client served");
    assert_eq!(x, 42);
}

/// Sends `bytes` on a fresh connection, asserts the server closes it within
/// [`PROMPT`] of the last byte sent, checks a well-behaved client is still
/// served, and returns what the attacked connection received.
async fn attack(server: &TestServer, bytes: &[u8], what: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // The server may close (and reset) before taking every byte.
    let _ = stream.write_all(bytes).await;
    let sent = Instant::now();
    let received = read_until_closed(&mut stream, sent, PROMPT, what).await;
    still_serves(server).await;
    received
}

/// Asserts `received` is exactly the server's own handshake frame: 132
/// bytes, a valid handshake signed by the server's identity, and nothing
/// (no sealed frame) after it.
fn assert_only_the_server_handshake(server: &TestServer, received: &[u8], what: &str) {
    assert_eq!(
        received.len(),
        132,
        "{what}: the server's handshake frame and nothing after it, got {:?}",
        String::from_utf8_lossy(received.get(132..).unwrap_or_default())
    );
    assert_eq!(&received[..3], b"80:", "{what}: handshake frame header");
    assert_eq!(received[131], b'\n', "{what}: handshake frame terminator");
    let key = server.identity.as_ref().expect("encrypted").public_key();
    let check = Handshake::new(&IdentitySecret::generate(), AuthorizedKeys::only([key]));
    assert!(
        check.finish(&received[3..131]).is_ok(),
        "{what}: the 128 bytes are the server's own valid handshake"
    );
}

#[tokio::test]
async fn plain_server_closes_promptly_on_bad_framing_and_bad_messages() {
    let attacks: [&[u8]; 9] = [
        b"FFFFFFFFFFFF:",
        b"zz:",
        b"01:a\n",
        b"3:abcX",
        b"0:\n",
        b"5:hello\n",
        b"2:{}\n",
        b"5:[1,2]\n",
        b"3:\xEF\xBB\xBF\n",
    ];
    let server = plain_server().await;
    for bytes in attacks {
        let what = format!("{:?}", String::from_utf8_lossy(bytes));
        let received = attack(&server, bytes, &what).await;
        assert!(
            received.is_empty(),
            "{what}: nothing is answered, got {received:?}"
        );
    }
}

#[tokio::test]
async fn huge_header_is_rejected_without_waiting_for_a_payload() {
    let server = plain_server().await;
    // No colon: the header alone is already too large for any frame.
    let received = attack(&server, b"FFFFFFFFFFFF", "a 12-digit header").await;
    assert!(received.is_empty(), "{received:?}");
}

#[tokio::test]
async fn invalid_call_gets_an_error_result_and_the_connection_stays() {
    let server = plain_server().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(&frame(br#"[{"service":"Test","args":[],"id":7}]"#))
        .await
        .expect("write");
    let mut buf = vec![0; 512];
    let n = bounded(stream.read(&mut buf)).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        text.contains(r#""id":7"#) && text.contains("invalid-call"),
        "{text}"
    );
    stream
        .write_all(&frame(
            br#"[{"service":"Test","method":"echo","args":[1],"id":8}]"#,
        ))
        .await
        .expect("write");
    let n = bounded(stream.read(&mut buf)).await.expect("read");
    assert_eq!(&buf[..n], b"13:[{\"id\":8,\"data\":1}]\n");
}

#[tokio::test]
async fn trickled_bytes_and_coalesced_frames_are_both_answered() {
    let server = plain_server().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    for byte in frame(br#"[{"service":"Test","method":"echo","args":[1],"id":1}]"#) {
        stream.write_all(&[byte]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut buf = vec![0; 512];
    let n = bounded(stream.read(&mut buf)).await.expect("read");
    assert_eq!(&buf[..n], b"13:[{\"id\":1,\"data\":1}]\n");

    let mut coalesced = Vec::new();
    for id in 2..5 {
        coalesced.extend(frame(
            format!(r#"[{{"service":"Test","method":"echo","args":[{id}],"id":{id}}}]"#).as_bytes(),
        ));
    }
    stream.write_all(&coalesced).await.expect("write");
    let mut received = Vec::new();
    while received.iter().filter(|&&b| b == b'\n').count() < 3 {
        let n = bounded(stream.read(&mut buf)).await.expect("read");
        assert!(n > 0, "closed early");
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(received).expect("UTF-8");
    for id in 2..5 {
        assert!(
            text.contains(&format!(r#"{{"id":{id},"data":{id}}}"#)),
            "{text}"
        );
    }
}

/// Reads until the server closes `stream` and asserts it closed no sooner
/// than `timeout` after `since` (the server's clock starts after that) and
/// no later than [`LATE`] after.
async fn closed_at_its_timeout(
    mut stream: impl AsyncRead + Unpin,
    since: Instant,
    timeout: Duration,
    what: &str,
) -> Vec<u8> {
    let received = read_until_closed(&mut stream, since, timeout + LATE, what).await;
    let waited = since.elapsed();
    assert!(
        waited >= timeout,
        "{what}: closed after {waited:?}, before its {timeout:?} timeout"
    );
    received
}

#[tokio::test]
async fn idle_and_slow_connections_close_at_the_idle_timeout_while_others_are_served() {
    let limits = Limits::default().idle_timeout(SHORT);
    let server = TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let start = Instant::now();
    let idle = TcpStream::connect(server.addr).await.expect("connect");
    let slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.set_nodelay(true).expect("nodelay");
    let (slow_rd, mut slow_wr) = slow.into_split();
    // A slowloris: a header, then one payload byte every 100 ms, never a
    // whole frame. Trickling bytes does not reset the idle clock.
    let trickle = tokio::spawn(async move {
        let _ = slow_wr.write_all(b"400:").await;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow_wr.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    still_serves(&server).await;
    let (idle_received, slow_received) = tokio::join!(
        closed_at_its_timeout(idle, start, SHORT, "an idle connection"),
        closed_at_its_timeout(slow_rd, start, SHORT, "a slowloris"),
    );
    trickle.abort();
    assert!(idle_received.is_empty(), "{idle_received:?}");
    assert!(slow_received.is_empty(), "{slow_received:?}");
    still_serves(&server).await;
}

#[tokio::test]
async fn client_disconnecting_with_calls_in_flight_does_not_hurt_the_server() {
    let server = plain_server().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(&frame(
            br#"[{"service":"Test","method":"sleep","args":[200],"id":1}]"#,
        ))
        .await
        .expect("write");
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_serves(&server).await;
}

#[tokio::test]
async fn too_many_calls_in_one_request_get_batch_errors() {
    let limits = patient_limits().max_batch(2);
    let server = TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = br#"[{"service":"Test","method":"echo","args":[1],"id":1},{"service":"Test","method":"echo","args":[2],"id":2},{"service":"Test","method":"echo","args":[3],"id":3}]"#;
    stream.write_all(&frame(request)).await.expect("write");
    let mut buf = vec![0; 1024];
    let n = bounded(stream.read(&mut buf)).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(text.matches("batch-too-large").count(), 3, "{text}");
}

#[tokio::test]
async fn oversized_request_frame_closes_the_connection() {
    let limits = patient_limits().max_frame(64);
    let server = TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    // The header alone announces 65 bytes: closed without waiting for them.
    let received = attack(&server, b"41:", "a 65-byte frame over a 64-byte limit").await;
    assert!(received.is_empty(), "{received:?}");
}

/// Connects and completes a real handshake by hand.
async fn handshaken(server: &TestServer) -> (TcpStream, Session) {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let identity = IdentitySecret::generate();
    let handshake = Handshake::new(&identity, AuthorizedKeys::any());
    stream
        .write_all(&frame(handshake.payload()))
        .await
        .expect("write");
    let mut theirs = vec![0u8; 132];
    bounded(stream.read_exact(&mut theirs))
        .await
        .expect("server handshake frame");
    assert_eq!(&theirs[..3], b"80:");
    let session = handshake
        .finish(&theirs[3..131])
        .expect("valid server handshake");
    (stream, session)
}

#[tokio::test]
async fn encrypted_server_rejects_wrong_size_handshakes() {
    let v1 = v1_only_server(patient_limits(), PATIENT).await;
    let any = encrypted_server().await;
    for len in [0usize, 127, 129, 200] {
        let what = format!("a {len}-byte handshake to a v1-only server");
        let received = attack(&v1, &frame(&vec![7u8; len]), &what).await;
        assert_only_the_server_handshake(&v1, &received, &what);
        // A server accepting v2 answers nothing that is not a handshake.
        let what = format!("a {len}-byte first frame to a server accepting v1 and v2");
        let received = attack(&any, &frame(&vec![7u8; len]), &what).await;
        assert!(received.is_empty(), "{what}: got {received:?}");
    }
}

#[tokio::test]
async fn encrypted_server_rejects_a_bad_signature() {
    let server = encrypted_server().await;
    let identity = IdentitySecret::generate();
    let handshake = Handshake::new(&identity, AuthorizedKeys::any());
    let mut payload = handshake.payload().to_vec();
    payload[40] ^= 1; // inside the signature
    let what = "a handshake with a bad signature";
    let received = attack(&server, &frame(&payload), what).await;
    assert_only_the_server_handshake(&server, &received, what);
}

#[tokio::test]
async fn encrypted_server_closes_on_tampered_short_or_plain_frames() {
    let server = encrypted_server().await;
    let request = br#"[{"service":"Test","method":"echo","args":[1],"id":1}]"#;
    type Attack = fn(&Session, &[u8]) -> Vec<u8>;
    let attacks: [(&str, Attack); 4] = [
        ("a tampered sealed frame", |s, m| {
            let mut sealed = s.seal(m);
            let last = sealed.len() - 1;
            sealed[last] ^= 0x80;
            frame(&sealed)
        }),
        ("a frame shorter than the seal", |_, _| frame(&[0u8; 39])),
        ("a plaintext request", |_, m| frame(m)),
        ("an empty frame", |_, _| b"0:\n".to_vec()),
    ];
    for (what, attack) in attacks {
        let (mut stream, session) = handshaken(&server).await;
        let _ = stream.write_all(&attack(&session, request)).await;
        let sent = Instant::now();
        let received = read_until_closed(&mut stream, sent, PROMPT, what).await;
        assert!(
            received.is_empty(),
            "{what}: nothing is answered, got {received:?}"
        );
        still_serves(&server).await;
    }
    // The same request, sealed properly, is answered.
    let (mut stream, session) = handshaken(&server).await;
    stream
        .write_all(&frame(&session.seal(request)))
        .await
        .expect("write");
    let mut buf = vec![0u8; 256];
    let n = bounded(stream.read(&mut buf)).await.expect("read");
    let payload = &buf[3..n - 1];
    assert_eq!(
        session.open(payload).expect("opens"),
        br#"[{"id":1,"data":1}]"#
    );
}

#[tokio::test]
async fn connections_that_never_handshake_are_closed_at_the_handshake_timeout() {
    // A long idle timeout: only the handshake timeout may close the peer.
    let server =
        TestServer::encrypted_with_timeout(AuthorizedKeys::any(), patient_limits(), SHORT).await;
    let start = Instant::now();
    let silent = TcpStream::connect(server.addr).await.expect("connect");
    still_serves(&server).await;
    let what = "a peer that never sends its handshake";
    let received = closed_at_its_timeout(silent, start, SHORT, what).await;
    // A server accepting v2 waits for the client's first frame.
    assert!(received.is_empty(), "{what}: got {received:?}");
    still_serves(&server).await;

    let server = v1_only_server(patient_limits(), SHORT).await;
    let start = Instant::now();
    let silent = TcpStream::connect(server.addr).await.expect("connect");
    still_serves(&server).await;
    let what = "a peer that never sends its handshake to a v1-only server";
    let received = closed_at_its_timeout(silent, start, SHORT, what).await;
    assert_only_the_server_handshake(&server, &received, what);
    still_serves(&server).await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_at_the_write_stall_limit() {
    const STALL: Duration = Duration::from_secs(3);
    // A small byte budget, so the server stops reading soon; a long idle
    // timeout, so only the write stall limit may close the connection.
    let limits = patient_limits()
        .write_stall(STALL)
        .max_connection_bytes(4 << 20);
    let server = TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let start = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let big = "x".repeat(1 << 20);
    let request = format!(r#"[{{"service":"Test","method":"echo","args":["{big}"],"id":1}}]"#);
    let framed = frame(request.as_bytes());
    // Keep sending without reading until the server stops taking requests:
    // its replies fill the socket, then its byte budget, then it reads no more.
    let mut sent = 0;
    let blocked = loop {
        assert!(
            sent < 64,
            "the server took 64 MiB of requests without reading"
        );
        match tokio::time::timeout(Duration::from_secs(1), stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!(
                "closed {:?} after connecting, while we were still sending \
                 (before our writes blocked, so before its writes could stall for {STALL:?}): {e}",
                start.elapsed()
            ),
            Err(_) => break Instant::now(),
        }
        sent += 1;
    };
    still_serves(&server).await;
    // Wait for the close without reading (reading would be progress). The
    // server has unread bytes of ours when it gives up, so its close is a
    // reset, which arrives even though our receive window is full.
    let closed = tokio::time::timeout(BOUND, async {
        loop {
            let ready = stream.ready(Interest::READABLE).await.expect("ready");
            if ready.is_read_closed() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server gave up on the stalled connection");
    // Not before the server's writes stalled for STALL (they stalled at the
    // earliest when we connected) ...
    let after_start = closed - start;
    assert!(
        after_start >= STALL,
        "closed {after_start:?} after connecting, before the {STALL:?} stall limit"
    );
    // ... and not long after they stalled (at the latest when our own
    // writes blocked).
    let after_blocked = closed - blocked;
    assert!(
        after_blocked < STALL + LATE,
        "closed {after_blocked:?} after the server stopped reading"
    );
    // What was sent before the close can still be read, then the stream
    // ends: fewer replies than requests, the rest were dropped.
    let received = read_until_closed(&mut stream, Instant::now(), PROMPT, "the drain").await;
    let replies = received.iter().filter(|&&b| b == b'\n').count();
    assert!(replies < sent, "{replies} replies to {sent} requests");
    still_serves(&server).await;
}

#[tokio::test]
async fn calls_beyond_max_in_flight_wait_for_a_free_slot() {
    let limits = patient_limits().max_in_flight(1);
    let server = TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut both = frame(br#"[{"service":"Test","method":"sleep","args":[300],"id":1}]"#);
    both.extend(frame(
        br#"[{"service":"Test","method":"sleep","args":[1],"id":2}]"#,
    ));
    // A batch larger than the limit runs alone instead of waiting forever.
    both.extend(frame(
        br#"[{"service":"Test","method":"echo","args":[3],"id":3},{"service":"Test","method":"echo","args":[4],"id":4}]"#,
    ));
    stream.write_all(&both).await.expect("write");
    let mut received = Vec::new();
    let mut buf = [0u8; 512];
    while received.iter().filter(|&&b| b == b'\n').count() < 3 {
        let n = bounded(stream.read(&mut buf)).await.expect("read");
        assert!(n > 0, "closed early");
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(received).expect("UTF-8");
    let first = text.find(r#""id":1"#).expect("id 1 answered");
    let second = text.find(r#""id":2"#).expect("id 2 answered");
    assert!(
        first < second,
        "the quick call waited for the slow one's slot: {text}"
    );
    assert!(
        text.contains(r#"{"id":3,"data":3},{"id":4,"data":4}"#),
        "{text}"
    );
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let limits = patient_limits().max_connections(1);
    let server = TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let first = server.client().await;
    let _: i64 = bounded(first.call("Test", "add", (1, 1)))
        .await
        .expect("first served");
    // The second connection queues in the backlog: its call is not answered...
    let second = server.client().await;
    let waiting = tokio::spawn(async move { second.call::<_, i64>("Test", "add", (2, 2)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "served beyond max_connections");
    // ... until the first one leaves.
    bounded(first.close()).await;
    assert_eq!(
        bounded(waiting)
            .await
            .expect("task")
            .expect("served once a slot frees"),
        4
    );
}

#[tokio::test]
async fn shutdown_grace_lets_running_calls_finish_then_drops_the_rest() {
    const GRACE: Duration = Duration::from_secs(3);
    let limits = patient_limits().shutdown_grace(GRACE);
    let mut server =
        TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let client = server.client().await;
    let timed_call = |ms: u64| {
        let client = client.clone();
        tokio::spawn(async move {
            let result = client.call::<_, u64>("Test", "sleep", (ms,)).await;
            (result, Instant::now())
        })
    };
    // One call ends within the grace period, one long after it.
    let short = timed_call(500);
    let long = timed_call(8000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let triggered = Instant::now();
    server.shutdown().await;
    let (result, _) = bounded(short).await.expect("task");
    assert_eq!(
        result.expect("a call ending within the grace period is answered"),
        500
    );
    let (result, ended) = bounded(long).await.expect("task");
    let err = result.expect_err("dropped at the end of the grace period");
    assert!(matches!(err, mtgnet::CallError::Connection(_)), "{err}");
    let cut = ended - triggered;
    assert!(
        cut >= GRACE,
        "cut {cut:?} after shutdown, within the {GRACE:?} grace"
    );
    // Before `serve`'s own last-resort bound (1.5 x the grace).
    assert!(
        cut < GRACE + Duration::from_secs(1),
        "cut {cut:?} after shutdown, long after the {GRACE:?} grace"
    );
}

#[tokio::test]
async fn a_response_beyond_the_client_max_frame_closes_the_connection() {
    let server = plain_server().await;
    let config = mtgnet::ClientConfig::plain().max_frame(64);
    let client = bounded(mtgnet::Client::connect(server.addr, config))
        .await
        .expect("connect");
    let err = bounded(client.call::<_, String>("Test", "echo", ("x".repeat(100),)))
        .await
        .expect_err("response too large");
    assert!(
        matches!(&err, mtgnet::CallError::Connection(e) if matches!(**e, mtgnet::Error::Peer(mtgnet::PeerError::Framing(_)))),
        "{err}"
    );
}
