//! The encryption extension end to end: every core feature over an
//! encrypted connection, authorization in both roles, mismatched modes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mtgnet::encryption::Handshake;
use mtgnet::{
    AuthError, AuthorizedKeys, Batch, CallError, Client, ClientConfig, Encryption,
    EncryptionVersion, Error, HandshakeFailure, IdentitySecret, Limits, PeerError, RawJson,
};
use serde_json::Value;

use crate::util::{TestServer, assert_answers_as_each_completes, bounded, scripted_server};

#[tokio::test]
async fn encrypted_calls_batches_notifications_and_errors_work() {
    let server = TestServer::encrypted().await;
    let client = server.client().await;
    let sum: i64 = bounded(client.call("Test", "add", (40, 2)))
        .await
        .expect("add");
    assert_eq!(sum, 42);
    let mut batch = Batch::new();
    batch.call(
        "Test",
        "echo",
        RawJson::from_serialize(&("a",)).expect("json"),
    );
    batch.notify(
        "Test",
        "echo",
        RawJson::from_serialize(&("n",)).expect("json"),
    );
    batch.call("Test", "fail", RawJson::empty_array());
    let results = bounded(client.batch(batch)).await.expect("batch");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].outcome.as_ref().expect("echo").as_str(), "\"a\"");
    assert_eq!(
        results[1].outcome.as_ref().expect_err("fail").message,
        "boom"
    );
    bounded(client.notify("Test", "echo", ("n",)))
        .await
        .expect("notify");
    let reply = bounded(client.call_reply("Test", "warn", (1,)))
        .await
        .expect("warn");
    assert_eq!(reply.warnings.len(), 1);
}

#[tokio::test]
async fn encrypted_pipeline_completes_out_of_order() {
    let server = TestServer::encrypted().await;
    assert_answers_as_each_completes(&server.client().await, 100).await;
}

#[tokio::test]
async fn both_sides_learn_the_peer_identity() {
    let server = TestServer::encrypted().await;
    let identity = Arc::new(IdentitySecret::generate());
    let config =
        ClientConfig::encrypted(Encryption::new(Arc::clone(&identity)).dangerous_accept_any_key());
    let client = bounded(Client::connect(server.addr, config))
        .await
        .expect("connect");
    let server_key = server.identity.as_ref().expect("encrypted").public_key();
    assert_eq!(client.peer_identity(), Some(&server_key));
    let seen: Option<String> = bounded(client.call("Who", "identity", ()))
        .await
        .expect("who");
    assert_eq!(seen, Some(identity.public_key().to_base64()));
}

#[tokio::test]
async fn plain_connections_show_no_identity() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let seen: Option<String> = bounded(client.call("Who", "identity", ()))
        .await
        .expect("who");
    assert_eq!(seen, None);
    assert!(client.peer_identity().is_none());
}

#[tokio::test]
async fn server_admits_only_authorized_clients() {
    let allowed = Arc::new(IdentitySecret::generate());
    let server = TestServer::encrypted_with(
        AuthorizedKeys::only([allowed.public_key()]),
        Limits::default(),
    )
    .await;
    let ok =
        ClientConfig::encrypted(Encryption::new(Arc::clone(&allowed)).dangerous_accept_any_key());
    let client = bounded(Client::connect(server.addr, ok))
        .await
        .expect("authorized client connects");
    let x: i64 = bounded(client.call("Test", "add", (1, 2)))
        .await
        .expect("call");
    assert_eq!(x, 3);

    // The rejected client completes its own side of the handshake (the
    // server's frame is valid), then sees the connection close.
    let stranger = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate())).dangerous_accept_any_key(),
    );
    let outcome = match bounded(Client::connect(server.addr, stranger)).await {
        Err(e) => Err(CallError::Connection(Arc::new(e))),
        Ok(client) => bounded(client.call::<_, i64>("Test", "add", (1, 2))).await,
    };
    let err = outcome.expect_err("an unauthorized client gets nothing");
    assert!(matches!(err, CallError::Connection(_)), "{err}");
    // ... and the server keeps serving others.
    let again = bounded(Client::connect(
        server.addr,
        ClientConfig::encrypted(Encryption::new(allowed).dangerous_accept_any_key()),
    ))
    .await;
    assert!(again.is_ok());
}

#[tokio::test]
async fn client_pinning_rejects_a_different_server_key() {
    let server = TestServer::encrypted().await;
    let pinned = IdentitySecret::generate().public_key();
    let config = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .authorized(AuthorizedKeys::only([pinned])),
    );
    let err = bounded(Client::connect(server.addr, config))
        .await
        .expect_err("pin mismatch");
    let actual = server.identity.as_ref().expect("encrypted").public_key();
    assert!(
        matches!(&err, Error::Auth(AuthError::NotAuthorized(key)) if *key == actual),
        "{err}"
    );
}

#[tokio::test]
async fn plain_client_against_encrypted_server_fails_fast() {
    let server = TestServer::encrypted().await;
    let client = bounded(Client::connect(server.addr, ClientConfig::plain()))
        .await
        .expect("TCP connects");
    let err = bounded(client.call::<_, Value>("Test", "echo", (1,)))
        .await
        .expect_err("fails");
    assert!(matches!(err, CallError::Connection(_)), "{err}");
}

#[tokio::test]
async fn encrypted_client_against_plain_server_fails_fast() {
    let server = TestServer::plain().await;
    let config = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate())).dangerous_accept_any_key(),
    );
    let err = bounded(Client::connect(server.addr, config))
        .await
        .expect_err("no handshake");
    assert!(
        matches!(
            err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::Closed))
        ),
        "{err}"
    );
}

#[tokio::test]
async fn handshake_times_out_against_a_silent_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _silent = tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let config = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .dangerous_accept_any_key()
            .handshake_timeout(Duration::from_millis(300)),
    );
    let start = Instant::now();
    let err = bounded(Client::connect(addr, config))
        .await
        .expect_err("times out");
    assert!(
        matches!(
            err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::Timeout))
        ),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn many_encrypted_clients_pipeline_concurrently() {
    let server = TestServer::encrypted().await;
    let mut tasks = Vec::new();
    for c in 0..20 {
        let client = server.client().await;
        tasks.push(tokio::spawn(async move {
            let calls = (0..20).map(|i| {
                let client = client.clone();
                async move {
                    let sum: i64 = client.call("Test", "add", (c, i)).await.expect("add");
                    assert_eq!(sum, c + i);
                }
            });
            futures::future::join_all(calls).await;
        }));
    }
    for task in tasks {
        bounded(task).await.expect("client task");
    }
}

#[tokio::test]
async fn large_payloads_cross_encrypted_connections_intact() {
    let server = TestServer::encrypted().await;
    let client = server.client().await;
    let big = "x".repeat(1 << 20);
    let echoed: String = bounded(client.call("Test", "echo", (&big,)))
        .await
        .expect("1 MiB echo");
    assert_eq!(echoed.len(), big.len());
    assert!(echoed == big);
}

#[tokio::test]
async fn encrypted_graceful_shutdown_answers_calls_in_flight() {
    let mut server = TestServer::encrypted().await;
    let client = server.client().await;
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, u64>("Test", "sleep", (200,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown().await;
    assert_eq!(bounded(slow).await.expect("task").expect("answered"), 200);
}

#[tokio::test]
async fn encrypted_cancellation_timeout_and_close_behave_as_plain() {
    let server = TestServer::encrypted().await;
    // Cancellation: the late response to a dropped call is accepted and dropped.
    let client = server.client().await;
    let slow = client.call::<_, u64>("Test", "sleep", (300,));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), slow)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let x: i64 = bounded(client.call("Test", "add", (2, 2)))
        .await
        .expect("still usable");
    assert_eq!(x, 4);
    // Per-call timeout: the call fails, the connection stays.
    let timed = bounded(Client::connect(
        server.addr,
        server
            .client_config()
            .call_timeout(Duration::from_millis(100)),
    ))
    .await
    .expect("connect");
    let err = bounded(timed.call::<_, u64>("Test", "sleep", (500,)))
        .await
        .expect_err("times out");
    assert!(matches!(err, CallError::Timeout), "{err}");
    let y: i64 = bounded(timed.call("Test", "add", (1, 1)))
        .await
        .expect("still usable");
    assert_eq!(y, 2);
    // Close: waiting calls fail promptly.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, u64>("Test", "sleep", (5000,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    bounded(client.close()).await;
    assert!(matches!(
        bounded(waiting).await.expect("task"),
        Err(CallError::Connection(_))
    ));
}

/// What a client sees from a server whose handshake or first frame is bad.
async fn client_error_against(reply: Vec<u8>) -> Arc<Error> {
    client_error_with(reply, EncryptionVersion::V1).await
}

async fn client_error_with(reply: Vec<u8>, version: EncryptionVersion) -> Arc<Error> {
    let addr = scripted_server(reply, Duration::from_secs(5)).await;
    let config = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .dangerous_accept_any_key()
            .version(version),
    );
    match bounded(Client::connect(addr, config)).await {
        Err(e) => Arc::new(e),
        Ok(client) => match bounded(client.call::<_, Value>("Test", "echo", (1,))).await {
            Err(CallError::Connection(e)) => e,
            other => panic!("expected a connection error, got {other:?}"),
        },
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

#[tokio::test]
async fn client_tells_apart_every_way_a_server_handshake_can_fail() {
    let identity = IdentitySecret::generate();
    let valid = Handshake::new(&identity, AuthorizedKeys::any())
        .payload()
        .to_vec();

    let mut bad_signature = valid.clone();
    bad_signature[40] ^= 1;
    let err = client_error_against(frame(&bad_signature)).await;
    assert!(
        matches!(*err, Error::Auth(AuthError::InvalidSignature)),
        "{err}"
    );

    let err = client_error_against(b"81:".to_vec()).await;
    assert!(
        matches!(
            *err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::Frame(_)))
        ),
        "{err}"
    );

    let err = client_error_against(frame(&[7; 127])).await;
    assert!(
        matches!(
            *err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::Size { len: 127 }))
        ),
        "{err}"
    );

    // A validly signed ephemeral key of small order: the exchange must fail.
    let mut small_order = identity.public_key().as_bytes().to_vec();
    small_order.extend(identity.sign(&[0; 32]));
    let err = client_error_against(frame(&small_order)).await;
    assert!(
        matches!(
            *err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::KeyExchange))
        ),
        "{err}"
    );

    // A v2 client (the default) meeting a v1-only server, which sends its
    // 128-byte frame at once: a clear error, no fallback.
    let err = client_error_with(frame(&valid), EncryptionVersion::V2).await;
    assert!(
        matches!(
            *err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::OnlyV1))
        ),
        "{err}"
    );

    // A good handshake, then a frame that does not open.
    let mut garbage_after = frame(&valid);
    garbage_after.extend(frame(&[9; 60]));
    let err = client_error_against(garbage_after).await;
    assert!(matches!(*err, Error::Peer(PeerError::Decrypt(_))), "{err}");
}

#[tokio::test]
async fn a_client_that_pins_no_key_and_chose_no_risk_is_refused_before_any_byte() {
    let (client_io, mut server_io) = tokio::io::duplex(64 * 1024);
    let unpinned = ClientConfig::encrypted(Encryption::new(Arc::new(IdentitySecret::generate())));
    let err = bounded(Client::new(client_io, unpinned))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, Error::Config(mtgnet::ConfigError::Unpinned)),
        "{err}"
    );
    // The stream was dropped without a byte: the other end reads EOF.
    let mut sent = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut server_io, &mut sent)
        .await
        .expect("read");
    assert_eq!(sent, b"");

    // Also through `connect`, before connecting (nothing listens on port 9).
    let err = bounded(Client::connect(
        "127.0.0.1:9",
        ClientConfig::encrypted(Encryption::new(Arc::new(IdentitySecret::generate()))),
    ))
    .await
    .expect_err("refused");
    assert!(
        matches!(err, Error::Config(mtgnet::ConfigError::Unpinned)),
        "{err}"
    );
    // `authorized` after the risky choice takes it back.
    let server = TestServer::encrypted().await;
    let retracted = Encryption::new(Arc::new(IdentitySecret::generate()))
        .dangerous_accept_any_key()
        .authorized(AuthorizedKeys::only([
            IdentitySecret::generate().public_key()
        ]));
    let err = bounded(Client::connect(
        server.addr,
        ClientConfig::encrypted(retracted),
    ))
    .await
    .expect_err("pinned to another key");
    assert!(
        matches!(err, Error::Auth(AuthError::NotAuthorized(_))),
        "{err}"
    );
}
