//! Hostile bytes over real sockets: each attack ends with the server closing
//! that one connection within a bound, and serving a fresh client after.

use std::time::{Duration, Instant};

use mtgnet::encryption::{AuthorizedKeys, Handshake, IdentitySecret, Session};
use mtgnet::{Limits, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{TestServer, bounded, registry};

fn short_limits() -> Limits {
    Limits::default().idle_timeout(Duration::from_secs(2))
}

async fn plain_server() -> TestServer {
    TestServer::start(
        ServerConfig::plain().limits(short_limits()),
        None,
        registry(),
    )
    .await
}

async fn encrypted_server() -> TestServer {
    TestServer::encrypted_with(AuthorizedKeys::any(), short_limits()).await
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match bounded(stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
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

/// Sends `bytes` on a fresh connection, reads until the server closes it,
/// checks a well-behaved client is still served, and returns what the
/// attacked connection received.
async fn attack(server: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let received = read_until_closed(&mut stream).await;
    still_serves(server).await;
    received
}

#[tokio::test]
async fn plain_server_closes_on_bad_framing_and_bad_messages() {
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
        let received = attack(&server, bytes).await;
        assert!(
            received.is_empty(),
            "{:?}: nothing is answered, got {received:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[tokio::test]
async fn huge_header_is_rejected_without_waiting_for_a_payload() {
    let server = plain_server().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(b"FFFFFFFFFFFF").await.expect("write");
    let start = Instant::now();
    read_until_closed(&mut stream).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "closed at once, not after a timeout"
    );
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

#[tokio::test]
async fn idle_and_slow_connections_close_while_others_are_served() {
    let server = plain_server().await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"4")
        .await
        .expect("a header digit, then nothing");
    still_serves(&server).await;
    let start = Instant::now();
    read_until_closed(&mut idle).await;
    read_until_closed(&mut slow).await;
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "closed after the 2 s idle timeout, took {waited:?}"
    );
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
    let limits = short_limits().max_batch(2);
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
    let limits = short_limits().max_frame(64);
    let server = TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let _ = stream.write_all(b"41:").await;
    assert!(read_until_closed(&mut stream).await.is_empty());
    still_serves(&server).await;
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
    let server = encrypted_server().await;
    for len in [0usize, 127, 129, 200] {
        let received = attack(&server, &frame(&vec![7u8; len])).await;
        // The server sends its own handshake frame first, then nothing more.
        assert!(
            received.len() <= 132,
            "{len}-byte handshake: got {} bytes",
            received.len()
        );
    }
}

#[tokio::test]
async fn encrypted_server_rejects_a_bad_signature() {
    let identity = IdentitySecret::generate();
    let handshake = Handshake::new(&identity, AuthorizedKeys::any());
    let mut payload = handshake.payload().to_vec();
    payload[40] ^= 1; // inside the signature
    let received = attack(&encrypted_server().await, &frame(&payload)).await;
    assert!(received.len() <= 132);
}

#[tokio::test]
async fn encrypted_server_closes_on_tampered_short_or_plain_frames() {
    let server = encrypted_server().await;
    let request = br#"[{"service":"Test","method":"echo","args":[1],"id":1}]"#;
    type Attack = fn(&Session, &[u8]) -> Vec<u8>;
    let attacks: [Attack; 4] = [
        |s, m| {
            let mut sealed = s.seal(m);
            let last = sealed.len() - 1;
            sealed[last] ^= 0x80;
            frame(&sealed)
        },
        |_, _| frame(&[0u8; 39]),
        |_, m| frame(m),
        |_, _| b"0:\n".to_vec(),
    ];
    for attack in attacks {
        let (mut stream, session) = handshaken(&server).await;
        let _ = stream.write_all(&attack(&session, request)).await;
        assert!(
            read_until_closed(&mut stream).await.is_empty(),
            "nothing is answered"
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
async fn connections_that_never_handshake_are_closed_after_the_timeout() {
    let server = encrypted_server().await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    still_serves(&server).await;
    let start = Instant::now();
    let received = read_until_closed(&mut silent).await;
    // A server that accepts v2 (the default) waits for the client's first
    // frame: nothing at all is sent to a silent client.
    assert_eq!(received.len(), 0, "nothing before the client's first frame");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "closed after the 2 s handshake timeout"
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_after_the_stall_limit() {
    let server = plain_server().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let big = "x".repeat(1 << 20);
    let request = format!(r#"[{{"service":"Test","method":"echo","args":["{big}"],"id":1}}]"#);
    let framed = frame(request.as_bytes());
    // Keep sending without reading until the server stops taking requests.
    let start = Instant::now();
    for _ in 0..64 {
        if tokio::time::timeout(Duration::from_secs(1), stream.write_all(&framed))
            .await
            .is_err()
        {
            break;
        }
    }
    still_serves(&server).await;
    // Now drain: the server must have given up on this connection.
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match bounded(stream.read(&mut sink)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn calls_beyond_max_in_flight_wait_for_a_free_slot() {
    let limits = short_limits().max_in_flight(1);
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
    let limits = short_limits().max_connections(1);
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
async fn calls_still_running_after_the_shutdown_grace_are_dropped() {
    let limits = short_limits().shutdown_grace(Duration::from_millis(200));
    let mut server =
        TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    let client = server.client().await;
    let slow = tokio::spawn(async move { client.call::<_, u64>("Test", "sleep", (5000,)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown().await;
    let err = bounded(slow)
        .await
        .expect("task")
        .expect_err("dropped at the end of the grace period");
    assert!(matches!(err, mtgnet::CallError::Connection(_)), "{err}");
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
        matches!(&err, mtgnet::CallError::Connection(e) if matches!(**e, mtgnet::Error::Framing(_))),
        "{err}"
    );
}
