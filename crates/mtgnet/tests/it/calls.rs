//! Core client and server behaviour over plain loopback TCP.

use std::time::Duration;

use mtgnet::{Batch, CallError, Client, ClientConfig, Error, PeerError, RawJson};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{TestServer, assert_answers_as_each_completes, bounded, scripted_server};

#[tokio::test]
async fn typed_calls_round_trip() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let sum: i64 = bounded(client.call("Test", "add", (2, 3)))
        .await
        .expect("add");
    assert_eq!(sum, 5);
    let echoed: String = bounded(client.call("test", "ECHO", ("hello",)))
        .await
        .expect("echo, names case-insensitive");
    assert_eq!(echoed, "hello");
    let version: Value = bounded(client.call("System", "rpcVersion", ()))
        .await
        .expect("rpcVersion");
    assert_eq!(
        version,
        json!({"major": 1, "minor": 0, "type": "draft", "revision": 1})
    );
}

#[tokio::test]
async fn system_introspection_lists_services_and_methods() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let services: Vec<String> = bounded(client.call("System", "services", ()))
        .await
        .expect("services");
    assert_eq!(services, ["System", "Test", "Who"]);
    let methods: Vec<String> = bounded(client.call("Test", "methods", ()))
        .await
        .expect("methods");
    for name in [
        "echo",
        "add",
        "fail",
        "sleep",
        "warn",
        "methods",
        "describeMethod",
        "version",
    ] {
        assert!(
            methods.iter().any(|m| m == name),
            "{name} missing from {methods:?}"
        );
    }
    let system_methods: Vec<String> = bounded(client.call("System", "methods", ()))
        .await
        .expect("methods");
    for name in [
        "services",
        "describeService",
        "rpcVersion",
        "methods",
        "describeMethod",
        "version",
    ] {
        assert!(
            system_methods.iter().any(|m| m == name),
            "{name} missing from {system_methods:?}"
        );
    }
    let described: Value = bounded(client.call("System", "describeService", ("Test",)))
        .await
        .expect("describe");
    assert!(
        described["product"].is_string()
            && described["authors"].is_array()
            && described["description"].is_string()
    );
    let method: Value = bounded(client.call("Test", "describeMethod", ("echo",)))
        .await
        .expect("describeMethod");
    assert!(
        method["Doc"].as_str().is_some_and(|d| d.contains("echo")),
        "{method}"
    );
    assert!(
        method.get("returnTypespec").is_some_and(Value::is_null),
        "{method}"
    );
    let version: Value = bounded(client.call("Test", "version", ()))
        .await
        .expect("version");
    assert!(
        version["code"].is_i64() && version["name"].is_string(),
        "{version}"
    );
    let err = bounded(client.call::<_, Value>("System", "describeService", ("Nope",)))
        .await
        .expect_err("unknown");
    assert_eq!(err.remote().expect("remote error").code, "unknown-service");
    let err = bounded(client.call::<_, Value>("Test", "describeMethod", ("nope",)))
        .await
        .expect_err("unknown");
    assert_eq!(err.remote().expect("remote error").code, "unknown-method");
}

#[tokio::test]
async fn remote_errors_carry_code_message_and_keep_the_connection() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let cases: [(&str, &str, Value, &str); 4] = [
        ("Test", "fail", json!([]), "42"),
        ("Nope", "x", json!([]), "unknown-service"),
        ("Test", "nope", json!([]), "unknown-method"),
        ("Test", "add", json!([1]), "invalid-arguments"),
    ];
    for (service, method, args, code) in cases {
        let err = bounded(client.call::<_, Value>(service, method, args))
            .await
            .expect_err("fails");
        let condition = err
            .remote()
            .unwrap_or_else(|| panic!("{service}.{method}: not remote: {err}"));
        assert_eq!(condition.code_text(), code, "{service}.{method}");
    }
    let err = bounded(client.call::<_, Value>("Test", "fail", ()))
        .await
        .expect_err("fails");
    assert_eq!(err.remote().map(|c| c.message.as_str()), Some("boom"));
    let still: i64 = bounded(client.call("Test", "add", (1, 1)))
        .await
        .expect("connection still open");
    assert_eq!(still, 2);
}

#[tokio::test]
async fn warnings_reach_the_caller() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let reply = bounded(client.call_reply("Test", "warn", ("x",)))
        .await
        .expect("warn");
    assert_eq!(reply.deserialize::<String>().expect("string"), "x");
    assert_eq!(reply.warnings.len(), 1);
    assert_eq!(
        (
            reply.warnings[0].code.clone(),
            reply.warnings[0].message.as_str()
        ),
        (json!(7), "careful")
    );
}

#[tokio::test]
async fn pipelined_calls_complete_out_of_order() {
    let server = TestServer::plain().await;
    assert_answers_as_each_completes(&server.client().await, 200).await;
}

#[tokio::test]
async fn batch_mixes_calls_and_notifications_and_keeps_call_order() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let mut batch = Batch::new();
    batch.call(
        "Test",
        "sleep",
        RawJson::from_serialize(&(150,)).expect("json"),
    );
    batch.notify(
        "Test",
        "echo",
        RawJson::from_serialize(&("ignored",)).expect("json"),
    );
    batch.call(
        "Test",
        "echo",
        RawJson::from_serialize(&("b",)).expect("json"),
    );
    batch.call("Test", "fail", RawJson::empty_array());
    let results = bounded(client.batch(batch)).await.expect("batch");
    assert_eq!(
        results.len(),
        3,
        "one result per call, none for the notification"
    );
    assert_eq!(results[0].outcome.as_ref().expect("sleep").as_str(), "150");
    assert_eq!(results[1].outcome.as_ref().expect("echo").as_str(), "\"b\"");
    assert_eq!(results[2].outcome.as_ref().expect_err("fail").code, 42);
}

#[tokio::test]
async fn notification_only_request_gets_no_response() {
    let server = TestServer::plain().await;
    let mut raw = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let request = br#"[{"service":"Test","method":"echo","args":[1]}]"#;
    raw.write_all(format!("{:X}:", request.len()).as_bytes())
        .await
        .expect("write");
    raw.write_all(request).await.expect("write");
    raw.write_all(b"\n").await.expect("write");
    let call = br#"[{"service":"Test","method":"echo","args":[2],"id":9}]"#;
    raw.write_all(format!("{:X}:", call.len()).as_bytes())
        .await
        .expect("write");
    raw.write_all(call).await.expect("write");
    raw.write_all(b"\n").await.expect("write");
    let mut buf = vec![0; 256];
    let n = bounded(raw.read(&mut buf)).await.expect("read");
    assert_eq!(
        &buf[..n],
        b"13:[{\"id\":9,\"data\":2}]\n",
        "only the call's response arrives"
    );
}

#[tokio::test]
async fn empty_batch_sends_nothing_and_notify_returns() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    assert!(
        bounded(client.batch(Batch::new()))
            .await
            .expect("empty")
            .is_empty()
    );
    bounded(client.notify("Test", "echo", ("n",)))
        .await
        .expect("notify");
    let x: i64 = bounded(client.call("Test", "add", (1, 2)))
        .await
        .expect("still works");
    assert_eq!(x, 3);
}

#[tokio::test]
async fn dropped_call_leaves_the_connection_usable() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let slow = client.call::<_, u64>("Test", "sleep", (300,));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), slow)
            .await
            .is_err(),
        "cancelled"
    );
    // The late response to the cancelled call must not be a protocol error.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let x: i64 = bounded(client.call("Test", "add", (2, 2)))
        .await
        .expect("connection still usable");
    assert_eq!(x, 4);
    assert!(!client.is_closed());
}

#[tokio::test]
async fn call_timeout_fails_the_call_not_the_connection() {
    let server = TestServer::plain().await;
    let config = ClientConfig::plain().call_timeout(Duration::from_millis(100));
    let client = bounded(Client::connect(server.addr, config))
        .await
        .expect("connect");
    let err = bounded(client.call::<_, u64>("Test", "sleep", (500,)))
        .await
        .expect_err("times out");
    assert!(matches!(err, CallError::Timeout), "{err}");
    let x: i64 = bounded(client.call("Test", "add", (1, 1)))
        .await
        .expect("still usable");
    assert_eq!(x, 2);
}

#[tokio::test]
async fn calls_in_flight_fail_promptly_when_the_server_dies() {
    let addr = scripted_server(b"", Duration::from_millis(0)).await;
    let client = bounded(Client::connect(addr, ClientConfig::plain()))
        .await
        .expect("connect");
    let err = bounded(client.call::<_, u64>("Test", "sleep", (10,)))
        .await
        .expect_err("fails");
    assert!(
        matches!(&err, CallError::Connection(e) if matches!(**e, Error::Closed)),
        "{err}"
    );
    let again = bounded(client.call::<_, u64>("Test", "sleep", (10,)))
        .await
        .expect_err("closed");
    assert!(matches!(again, CallError::Connection(_)), "{again}");
    assert!(client.is_closed());
}

#[tokio::test]
async fn broken_server_answers_fail_calls_with_the_right_error() {
    type Check = fn(&Error) -> bool;
    let cases: [(&'static [u8], Check); 4] = [
        // Dies in the middle of a response (the scripted server closes
        // right after writing).
        (b"40:[{\"id\":1,\"da", |e| {
            matches!(e, Error::Peer(PeerError::Framing(_)))
        }),
        // Answers an id that was never sent.
        (b"15:[{\"id\":777,\"data\":1}]\n", |e| {
            matches!(e, Error::Peer(PeerError::Protocol(_)))
        }),
        // Answers with an empty response array.
        (b"2:[]\n", |e| {
            matches!(
                e,
                Error::Peer(PeerError::Message(_) | PeerError::Protocol(_))
            )
        }),
        // Sends an empty frame (not JSON).
        (b"0:\n", |e| {
            matches!(
                e,
                Error::Peer(PeerError::Message(_) | PeerError::Protocol(_))
            )
        }),
    ];
    for (reply, expected) in cases {
        let addr = scripted_server(reply, Duration::ZERO).await;
        let client = bounded(Client::connect(addr, ClientConfig::plain()))
            .await
            .expect("connect");
        let err = bounded(client.call::<_, Value>("Test", "echo", (1,)))
            .await
            .expect_err("fails");
        assert!(
            matches!(&err, CallError::Connection(e) if expected(e)),
            "{:?}: {err}",
            String::from_utf8_lossy(reply)
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_calls_in_flight_then_refuses_connections() {
    let mut server = TestServer::plain().await;
    let client = server.client().await;
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, u64>("Test", "sleep", (300,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown().await;
    assert_eq!(
        bounded(slow)
            .await
            .expect("task")
            .expect("answered during shutdown"),
        300
    );
    let refused = bounded(Client::connect(server.addr, ClientConfig::plain())).await;
    assert!(refused.is_err(), "no longer accepting");
}

#[tokio::test]
async fn many_clients_and_calls_all_get_their_own_results() {
    let server = TestServer::plain().await;
    let mut tasks = Vec::new();
    for c in 0..20 {
        let client = server.client().await;
        tasks.push(tokio::spawn(async move {
            let calls = (0..50).map(|i| {
                let client = client.clone();
                async move {
                    let tag = format!("{c}-{i}");
                    let echoed: String = client.call("Test", "echo", (&tag,)).await.expect("echo");
                    assert_eq!(echoed, tag);
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
async fn big_integers_are_echoed_exactly() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let args = RawJson::from_string("[18446744073709551617]".to_owned()).expect("json");
    let mut batch = Batch::new();
    batch.call("Test", "echo", args);
    let results = bounded(client.batch(batch)).await.expect("batch");
    assert_eq!(
        results[0].outcome.as_ref().expect("echo").as_str(),
        "18446744073709551617"
    );
}

#[tokio::test]
async fn close_fails_waiting_calls_and_closes_the_socket() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, u64>("Test", "sleep", (2000,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    bounded(client.close()).await;
    let err = bounded(waiting).await.expect("task").expect_err("closed");
    assert!(
        matches!(&err, CallError::Connection(e) if matches!(**e, Error::Closed)),
        "{err}"
    );
    assert!(client.is_closed());
    let again = bounded(client.call::<_, i64>("Test", "add", (1, 1)))
        .await
        .expect_err("closed");
    assert!(matches!(again, CallError::Connection(_)), "{again}");
}

#[derive(serde::Deserialize)]
struct PlainTranscript {
    client_to_server_hex: String,
    server_to_client_hex: String,
}

#[derive(serde::Deserialize)]
struct Transcript {
    plain: PlainTranscript,
}

/// `transcript.json`'s plain exchange, replayed against our server: the
/// response must match the vector byte for byte.
#[tokio::test]
async fn server_answers_the_transcript_request_byte_for_byte() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/transcript.json"
    );
    let transcript: Transcript =
        serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("parses");
    let request = hex::decode(&transcript.plain.client_to_server_hex).expect("hex");
    let expected = hex::decode(&transcript.plain.server_to_client_hex).expect("hex");
    let server = TestServer::plain().await;
    let mut raw = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    raw.write_all(&request).await.expect("write");
    let mut received = vec![0u8; expected.len()];
    bounded(raw.read_exact(&mut received))
        .await
        .expect("read the response");
    assert_eq!(
        hex::encode(&received),
        hex::encode(&expected),
        "expected vs actual response frame"
    );
}

#[tokio::test]
async fn serve_connection_keeps_serving_when_a_shutdown_handle_is_dropped() {
    let server = mtgnet::Server::new(crate::util::registry(), mtgnet::ServerConfig::plain())
        .expect("valid limits");
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let shutdown = mtgnet::Shutdown::new();
    let observed = shutdown.clone();
    drop(shutdown);
    tokio::spawn(async move { server.serve_connection(server_io, None, observed).await });
    let (client, driver) = Client::new(client_io, ClientConfig::plain())
        .await
        .expect("client");
    tokio::spawn(driver);
    let x: i64 = bounded(client.call("Test", "add", (1, 2)))
        .await
        .expect("served");
    assert_eq!(x, 3);
}

#[tokio::test]
async fn a_failed_call_keeps_its_warnings_in_call_result() {
    let server = TestServer::plain().await;
    let client = server.client().await;
    let result = bounded(client.call_result("Who", "grumble", ()))
        .await
        .expect("answered");
    assert_eq!(result.outcome.expect_err("failed").code, "refused");
    assert_eq!(result.warnings.len(), 1);
    assert_eq!(result.warnings[0].message, "grumpy");
    let err = bounded(client.call_reply("Who", "grumble", ()))
        .await
        .expect_err("remote");
    assert_eq!(err.remote().map(|c| c.message.as_str()), Some("not today"));
}
