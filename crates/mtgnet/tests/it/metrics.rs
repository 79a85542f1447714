//! What a server reports through the `metrics` facade, read back from a
//! recorder installed for the test's thread: exact counts per series.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use mtgnet::metrics::{
    BYTES_TOTAL, CALL_DURATION_SECONDS, CALLS_TOTAL, CONNECTIONS_OPEN, CONNECTIONS_TOTAL,
    HANDSHAKES_TOTAL, LIMIT_HITS_TOTAL,
};
use mtgnet::proto::framing::encode_frame;
use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Encryption, EncryptionVersion, IdentitySecret, Limits,
    Server, ServerConfig, Shutdown,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::util::{bounded, registry};

/// The recorded series, keyed `name{label="value",...}` with the labels
/// sorted by name.
struct Recorded(HashMap<String, DebugValue>);

impl Recorded {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut labels = labels.to_vec();
        labels.sort_unstable();
        self.0.get(&series(name, labels.into_iter()))
    }

    /// A counter's value (0 when it was never registered).
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            Some(other) => panic!("{name} {labels:?} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str) -> f64 {
        match self.get(name, &[]) {
            Some(DebugValue::Gauge(value)) => value.0,
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    /// How many values a histogram recorded (0 when never registered).
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        match self.get(name, labels) {
            Some(DebugValue::Histogram(values)) => values.len(),
            None => 0,
            Some(other) => panic!("{name} {labels:?} is not a histogram: {other:?}"),
        }
    }

    /// Every series of `name` that is not zero, for failure messages.
    fn nonzero(&self, name: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .0
            .iter()
            .filter(|(key, value)| {
                key.starts_with(name) && !matches!(value, DebugValue::Counter(0))
            })
            .map(|(key, value)| format!("{key} {value:?}"))
            .collect();
        found.sort();
        found
    }
}

fn series<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let labels: Vec<String> = labels.map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// Runs `test` to completion on a current-thread runtime (so that every
/// task runs on this thread) with a recorder installed for this thread
/// only; returns what was recorded.
fn recorded<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    ::metrics::with_local_recorder(&recorder, || runtime.block_on(test()));
    drop(runtime);
    let map = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(&str, &str)> =
                key.labels().map(|l| (l.key(), l.value())).collect();
            labels.sort_unstable();
            (series(key.name(), labels.into_iter()), value)
        })
        .collect();
    Recorded(map)
}

/// Serves one connection over an in-memory stream; returns the client end
/// and the serving task.
fn serve_one(
    server: &Server,
    shutdown: &Shutdown,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<Result<(), mtgnet::Error>>,
) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = server.clone();
    let shutdown = shutdown.clone();
    let task =
        tokio::spawn(async move { server.serve_connection(server_io, None, shutdown).await });
    (client_io, task)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    encode_frame(payload, &mut frame);
    frame.to_vec()
}

#[test]
fn calls_are_counted_by_their_registered_names_and_unknown_ones_under_one_label() {
    let metrics = recorded(|| async {
        let server = Server::new(registry(), ServerConfig::plain()).expect("server");
        let shutdown = Shutdown::new();
        let (io, serving) = serve_one(&server, &shutdown);
        let (client, driver) = Client::new(io, ClientConfig::plain())
            .await
            .expect("client");
        tokio::spawn(driver);
        // Names match case-insensitively; the series use the registry's.
        let _: i64 = client.call("test", "ADD", (1, 2)).await.expect("add");
        let _: i64 = client.call("Test", "add", (3, 4)).await.expect("add");
        client
            .call::<_, ()>("Test", "fail", ())
            .await
            .expect_err("fails");
        client
            .call::<_, i64>("Test", "add", ("x",))
            .await
            .expect_err("invalid arguments");
        client
            .call::<_, ()>("Nope", "x", ())
            .await
            .expect_err("no such service");
        client
            .call::<_, ()>("Test", "nope", ())
            .await
            .expect_err("no such method");
        client.notify("Test", "echo", (1,)).await.expect("notify");
        // Written after the notification, on the same connection.
        let _: serde_json::Value = client
            .call("System", "rpcVersion", ())
            .await
            .expect("built-in");
        client.close().await;
        // The connection ends once every request it read has run.
        bounded(serving).await.expect("task").expect("clean end");
    });

    let calls = |service, method, outcome| {
        metrics.counter(
            CALLS_TOTAL,
            &[
                ("service", service),
                ("method", method),
                ("outcome", outcome),
            ],
        )
    };
    let seen = metrics.nonzero(CALLS_TOTAL);
    assert_eq!(calls("Test", "add", "ok"), 2, "{seen:#?}");
    assert_eq!(calls("Test", "add", "invalid"), 1, "{seen:#?}");
    assert_eq!(calls("Test", "fail", "error"), 1, "{seen:#?}");
    assert_eq!(calls("unknown", "unknown", "invalid"), 2, "{seen:#?}");
    assert_eq!(calls("System", "rpcVersion", "ok"), 1, "{seen:#?}");
    assert_eq!(
        calls("Test", "echo", "ok"),
        1,
        "the notification: {seen:#?}"
    );
    assert_eq!(seen.len(), 6, "nothing else: {seen:#?}");

    let timed = |service, method| {
        metrics.observations(
            CALL_DURATION_SECONDS,
            &[("service", service), ("method", method)],
        )
    };
    assert_eq!(timed("Test", "add"), 3);
    assert_eq!(timed("Test", "fail"), 1);
    assert_eq!(timed("unknown", "unknown"), 0, "unknown calls never run");

    assert_eq!(
        metrics.counter(CONNECTIONS_TOTAL, &[("encryption", "plain")]),
        1
    );
    assert_eq!(metrics.gauge(CONNECTIONS_OPEN), 0.0);
}

#[test]
fn bytes_are_counted_exactly_as_they_cross_the_socket() {
    let request = frame(br#"[{"service":"Test","method":"echo","args":["hi"],"id":1}]"#);
    let response = frame(br#"[{"id":1,"data":"hi"}]"#);
    let metrics = recorded(|| async {
        let server = Server::new(registry(), ServerConfig::plain()).expect("server");
        let (mut io, serving) = serve_one(&server, &Shutdown::new());
        io.write_all(&request).await.expect("write");
        let mut answer = vec![0; response.len()];
        bounded(io.read_exact(&mut answer)).await.expect("read");
        assert_eq!(answer, response);
        io.shutdown().await.expect("shutdown");
        bounded(serving).await.expect("task").expect("clean end");
    });
    let bytes = |direction| metrics.counter(BYTES_TOTAL, &[("direction", direction)]);
    assert_eq!(
        (bytes("in"), bytes("out")),
        (request.len() as u64, response.len() as u64)
    );
}

#[test]
fn handshakes_are_counted_by_version_and_outcome() {
    let metrics = recorded(|| async {
        let identity = Arc::new(IdentitySecret::generate());
        let client_identity = Arc::new(IdentitySecret::generate());
        let encryption = Encryption::new(Arc::clone(&identity))
            .authorized(AuthorizedKeys::only([client_identity.public_key()]))
            .handshake_timeout(Duration::from_millis(300));
        let server_key = identity.public_key();
        let server = Server::new(registry(), ServerConfig::encrypted(encryption)).expect("server");
        let shutdown = Shutdown::new();
        let client = |identity: &Arc<IdentitySecret>, version| {
            ClientConfig::encrypted(
                Encryption::new(Arc::clone(identity))
                    .authorized(AuthorizedKeys::only([server_key]))
                    .version(version),
            )
        };

        for version in [EncryptionVersion::V1, EncryptionVersion::V2] {
            let (io, serving) = serve_one(&server, &shutdown);
            let (client, driver) = Client::new(io, client(&client_identity, version))
                .await
                .expect("authorized");
            tokio::spawn(driver);
            let _: i64 = client.call("Test", "add", (1, 1)).await.expect("call");
            client.close().await;
            bounded(serving).await.expect("task").expect("clean end");
        }

        // A key the server does not authorize.
        let stranger = Arc::new(IdentitySecret::generate());
        let (io, serving) = serve_one(&server, &shutdown);
        let refused = Client::new(io, client(&stranger, EncryptionVersion::V2)).await;
        if let Ok((client, driver)) = refused {
            tokio::spawn(driver);
            client
                .call::<_, i64>("Test", "add", (1, 1))
                .await
                .expect_err("refused");
        }
        assert!(matches!(
            bounded(serving).await.expect("task"),
            Err(mtgnet::Error::Auth(mtgnet::AuthError::NotAuthorized(_)))
        ));

        // A v1 handshake whose signed ephemeral key was altered.
        let handshake = mtgnet::encryption::Handshake::new(&client_identity, AuthorizedKeys::any());
        let mut payload = *handshake.payload();
        payload[127] ^= 1;
        let (mut io, serving) = serve_one(&server, &shutdown);
        io.write_all(&frame(&payload)).await.expect("write");
        assert!(matches!(
            bounded(serving).await.expect("task"),
            Err(mtgnet::Error::Auth(mtgnet::AuthError::InvalidSignature))
        ));

        // Not a handshake at all.
        let (mut io, serving) = serve_one(&server, &shutdown);
        io.write_all(b"5:hello\n").await.expect("write");
        bounded(serving)
            .await
            .expect("task")
            .expect_err("malformed");

        // Gone before saying anything.
        let (io, serving) = serve_one(&server, &shutdown);
        drop(io);
        bounded(serving).await.expect("task").expect_err("closed");

        // Silent until the handshake timeout.
        let (io, serving) = serve_one(&server, &shutdown);
        bounded(serving)
            .await
            .expect("task")
            .expect_err("timed out");
        drop(io);
    });

    let handshakes = |version, outcome| {
        metrics.counter(
            HANDSHAKES_TOTAL,
            &[("version", version), ("outcome", outcome)],
        )
    };
    let seen = metrics.nonzero(HANDSHAKES_TOTAL);
    assert_eq!(handshakes("v1", "ok"), 1, "{seen:#?}");
    assert_eq!(handshakes("v2", "ok"), 1, "{seen:#?}");
    assert_eq!(handshakes("v2", "not_authorized"), 1, "{seen:#?}");
    assert_eq!(handshakes("v1", "bad_signature"), 1, "{seen:#?}");
    assert_eq!(handshakes("unknown", "malformed"), 1, "{seen:#?}");
    assert_eq!(handshakes("unknown", "closed"), 1, "{seen:#?}");
    assert_eq!(handshakes("unknown", "timeout"), 1, "{seen:#?}");
    assert_eq!(seen.len(), 7, "nothing else: {seen:#?}");

    let connections =
        |encryption| metrics.counter(CONNECTIONS_TOTAL, &[("encryption", encryption)]);
    assert_eq!(
        (connections("plain"), connections("v1"), connections("v2")),
        (0, 1, 1),
        "only completed handshakes are connections"
    );
    assert_eq!(
        metrics.counter(LIMIT_HITS_TOTAL, &[("limit", "handshake_timeout")]),
        1
    );
    assert_eq!(metrics.gauge(CONNECTIONS_OPEN), 0.0);
}

/// Sends `requests` on a fresh connection of `server`, reads `answers`
/// response frames, then closes and waits for the connection to end.
async fn exchange(server: &Server, requests: &[Vec<u8>], answers: usize) {
    let (mut io, serving) = serve_one(server, &Shutdown::new());
    for request in requests {
        io.write_all(request).await.expect("write");
    }
    let mut read = Vec::new();
    while read.iter().filter(|&&b| b == b'\n').count() < answers {
        let mut chunk = [0u8; 4096];
        let n = bounded(io.read(&mut chunk)).await.expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&chunk[..n]);
    }
    io.shutdown().await.expect("shutdown");
    let _ = bounded(serving).await.expect("task");
}

fn limit_hits(limits: Limits, run: impl AsyncFnOnce(Server)) -> HashMap<String, u64> {
    let metrics = recorded(|| async {
        let server = Server::new(registry(), ServerConfig::plain().limits(limits)).expect("server");
        run(server).await;
    });
    [
        "max_connections",
        "max_in_flight",
        "max_connection_bytes",
        "max_frame",
        "batch",
        "idle_timeout",
        "write_stall",
        "handshake_timeout",
        "shutdown_grace",
    ]
    .into_iter()
    .map(|limit| {
        let hits = metrics.counter(LIMIT_HITS_TOTAL, &[("limit", limit)]);
        (limit.to_owned(), hits)
    })
    .filter(|(_, hits)| *hits > 0)
    .collect()
}

fn only(limit: &str, hits: u64) -> HashMap<String, u64> {
    HashMap::from([(limit.to_owned(), hits)])
}

fn sleep_call(ms: u64, id: u32) -> Vec<u8> {
    frame(format!(r#"[{{"service":"Test","method":"sleep","args":[{ms}],"id":{id}}}]"#).as_bytes())
}

#[test]
fn a_full_set_of_call_slots_is_counted_once_each_time_reading_stops() {
    let hits = limit_hits(Limits::default().max_in_flight(1), async |server| {
        exchange(&server, &[sleep_call(100, 1)], 1).await;
    });
    assert_eq!(hits, only("max_in_flight", 1));
}

#[test]
fn a_spent_byte_budget_is_counted() {
    let hits = limit_hits(Limits::default().max_connection_bytes(10), async |server| {
        exchange(&server, &[sleep_call(100, 1)], 1).await;
    });
    assert_eq!(hits, only("max_connection_bytes", 1));
}

#[test]
fn a_request_over_the_batch_limit_is_counted() {
    let two = frame(
        br#"[{"service":"Test","method":"add","args":[1,1],"id":1},{"service":"Test","method":"add","args":[1,1],"id":2}]"#,
    );
    let hits = limit_hits(Limits::default().max_batch(1), async |server| {
        exchange(&server, &[two], 1).await;
    });
    assert_eq!(hits, only("batch", 1));
}

#[test]
fn a_frame_over_the_limit_is_counted() {
    let hits = limit_hits(Limits::default().max_frame(16), async |server| {
        let (mut io, serving) = serve_one(&server, &Shutdown::new());
        io.write_all(b"100:").await.expect("write");
        let err = bounded(serving).await.expect("task").expect_err("too long");
        assert!(
            matches!(
                err,
                mtgnet::Error::Peer(mtgnet::PeerError::Framing(
                    mtgnet::proto::framing::FrameError::TooLong { max: 16 }
                ))
            ),
            "{err:?}"
        );
    });
    assert_eq!(hits, only("max_frame", 1));
}

#[test]
fn an_idle_connection_closed_is_counted() {
    let hits = limit_hits(
        Limits::default().idle_timeout(Duration::from_millis(100)),
        async |server| {
            let (_io, serving) = serve_one(&server, &Shutdown::new());
            bounded(serving)
                .await
                .expect("task")
                .expect("closed when idle");
        },
    );
    assert_eq!(hits, only("idle_timeout", 1));
}

#[test]
fn a_client_that_stops_reading_is_counted_as_a_write_stall() {
    let big = frame(
        format!(
            r#"[{{"service":"Test","method":"echo","args":["{}"],"id":1}}]"#,
            "x".repeat(256 * 1024)
        )
        .as_bytes(),
    );
    let hits = limit_hits(
        Limits::default().write_stall(Duration::from_millis(100)),
        async |server| {
            let (mut client, server_io) = tokio::io::duplex(1024);
            let serving = tokio::spawn(async move {
                server
                    .serve_connection(server_io, None, Shutdown::new())
                    .await
            });
            // Writes the request while the server cannot answer into the
            // small pipe; then reads nothing.
            let writing = tokio::spawn(async move {
                let _ = client.write_all(&big).await;
                client
            });
            let err = bounded(serving).await.expect("task").expect_err("stalled");
            assert!(
                matches!(&err, mtgnet::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
                "{err:?}"
            );
            drop(bounded(writing).await);
        },
    );
    assert_eq!(hits, only("write_stall", 1));
}

#[test]
fn calls_dropped_after_the_shutdown_grace_are_counted() {
    let hits = limit_hits(
        Limits::default().shutdown_grace(Duration::from_millis(100)),
        async |server| {
            let shutdown = Shutdown::new();
            let (mut io, serving) = serve_one(&server, &shutdown);
            io.write_all(&sleep_call(5_000, 1)).await.expect("write");
            // Requests start in the order they are read: once the second
            // is answered, the first is running.
            io.write_all(&sleep_call(0, 2)).await.expect("write");
            let mut answer = [0u8; 64];
            let n = bounded(io.read(&mut answer)).await.expect("read");
            assert!(
                String::from_utf8_lossy(&answer[..n]).contains(r#""id":2"#),
                "{:?}",
                String::from_utf8_lossy(&answer[..n])
            );
            shutdown.trigger();
            let _ = bounded(serving).await.expect("task");
        },
    );
    assert_eq!(hits, only("shutdown_grace", 1));
}

#[test]
fn a_server_with_every_connection_slot_taken_is_counted() {
    let hits = limit_hits(Limits::default().max_connections(1), async |server| {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let serving = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { server.serve(listener, shutdown).await }
        });
        let client = bounded(Client::connect(addr, ClientConfig::plain()))
            .await
            .expect("connect");
        let _: i64 = bounded(client.call("Test", "add", (1, 1)))
            .await
            .expect("call");
        shutdown.trigger();
        client.close().await;
        bounded(serving).await.expect("task").expect("serve");
    });
    assert_eq!(hits, only("max_connections", 1));
}
