//! `#[mtgnet::service]` end to end: the issue's `Math` example served and
//! called over loopback TCP, introspection from the doc comments, and a
//! Lisp-style raw request answered by the macro-generated service.

use std::sync::Arc;

use mtgnet::{
    AuthorizedKeys, Batch, CallError, Client, ClientConfig, Condition, Context, Encryption,
    IdentitySecret, Registry, ServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{TestServer, bounded};

/// Integer arithmetic.
#[mtgnet::service(name = "Math", version = "1.0")]
pub trait Math {
    /// Adds two integers.
    async fn add(&self, a: i64, b: i64) -> Result<i64, Condition>;
    /// The caller's identity key, base64, if the connection is encrypted.
    async fn who_am_i(&self, ctx: &Context) -> Result<Option<String>, Condition>;
    /// Divides, failing with an application error.
    #[method(name = "quotient")]
    async fn divide(&self, a: i64, b: i64) -> Result<i64, MathError>;
}

/// An application error, turned into a condition by the adapter.
#[derive(Debug)]
pub struct MathError(&'static str);

impl From<MathError> for Condition {
    fn from(e: MathError) -> Condition {
        Condition::new("math", e.0)
    }
}

#[derive(Clone)]
struct Calc {
    offset: i64,
}

impl Math for Calc {
    async fn add(&self, a: i64, b: i64) -> Result<i64, Condition> {
        Ok(a + b + self.offset)
    }

    async fn who_am_i(&self, ctx: &Context) -> Result<Option<String>, Condition> {
        Ok(ctx.peer().identity.as_ref().map(|k| k.to_base64()))
    }

    async fn divide(&self, a: i64, b: i64) -> Result<i64, MathError> {
        let checked = a.checked_div(b).ok_or(MathError("division by zero"))?;
        Ok(checked)
    }
}

fn math_registry() -> Registry {
    Registry::new().with(MathServer::new(Calc { offset: 0 }))
}

async fn encrypted_math() -> (TestServer, Arc<IdentitySecret>) {
    let identity = Arc::new(IdentitySecret::generate());
    let config = ServerConfig::encrypted(Encryption::new(Arc::clone(&identity)));
    let server = TestServer::start(config, Some(identity), math_registry()).await;
    let client_identity = Arc::new(IdentitySecret::generate());
    (server, client_identity)
}

async fn connect(server: &TestServer, identity: Arc<IdentitySecret>) -> Client {
    let server_key = server.identity.as_ref().expect("encrypted").public_key();
    let config = ClientConfig::encrypted(
        Encryption::new(identity).authorized(AuthorizedKeys::only([server_key])),
    );
    bounded(Client::connect(server.addr, config))
        .await
        .expect("connects")
}

#[tokio::test]
async fn typed_calls_over_an_encrypted_connection_return_typed_results() {
    let (server, identity) = encrypted_math().await;
    let client = connect(&server, Arc::clone(&identity)).await;
    let math = MathClient::new(client.clone());

    assert_eq!(bounded(math.add(2, 3)).await.expect("adds"), 5);
    let me = bounded(math.who_am_i()).await.expect("who");
    assert_eq!(me, Some(identity.public_key().to_base64()));
    assert_eq!(bounded(math.divide(7, 2)).await.expect("divides"), 3);
}

#[tokio::test]
async fn application_errors_arrive_as_their_conditions() {
    let (server, identity) = encrypted_math().await;
    let math = MathClient::new(connect(&server, identity).await);
    match bounded(math.divide(1, 0)).await {
        Err(CallError::Remote(condition)) => {
            assert_eq!(condition, Condition::new("math", "division by zero"));
        }
        other => panic!("expected the remote condition, got {other:?}"),
    }
    // Wrong argument types from an untyped caller never reach the handler.
    let untyped: Result<i64, _> = bounded(math.client().call("Math", "add", ("two", 3))).await;
    assert_eq!(
        untyped
            .expect_err("refused")
            .remote()
            .map(Condition::code_text),
        Some("invalid-arguments".to_owned())
    );
}

#[tokio::test]
async fn introspection_comes_from_the_doc_comments_and_attributes() {
    let server = TestServer::start(ServerConfig::plain(), None, math_registry()).await;
    let client = server.client().await;
    let add: serde_json::Value = bounded(client.call("Math", "describeMethod", ("add",)))
        .await
        .expect("described");
    assert_eq!(
        add,
        serde_json::json!({"Doc": "Adds two integers.", "returnTypespec": null,
                           "argTypespec": null, "conditionCodes": null})
    );
    let service: serde_json::Value = bounded(client.call("System", "describeService", ("Math",)))
        .await
        .expect("described");
    assert_eq!(
        service,
        serde_json::json!({"product": "Math", "authors": [], "description": "Integer arithmetic."})
    );
    let version: serde_json::Value = bounded(client.call("Math", "version", ()))
        .await
        .expect("version");
    assert_eq!(version, serde_json::json!({"code": 1, "name": "1.0"}));
    let methods: Vec<String> = bounded(client.call("Math", "methods", ()))
        .await
        .expect("methods");
    assert_eq!(
        methods,
        [
            "add",
            "whoAmI",
            "quotient",
            "methods",
            "describeMethod",
            "version"
        ]
    );
}

#[tokio::test]
async fn typed_batches_and_notifications_go_through_the_client() {
    let server = TestServer::start(ServerConfig::plain(), None, math_registry()).await;
    let client = server.client().await;
    let math = MathClient::new(client.clone());

    let mut batch = Batch::new();
    let (sum, who, quotient) = {
        let mut calls = MathClient::batch(&mut batch);
        (
            calls.add(40, 2).expect("serializes"),
            calls.who_am_i().expect("serializes"),
            calls.divide(1, 0).expect("serializes"),
        )
    };
    batch.notify(
        "Math",
        "add",
        mtgnet::RawJson::from_serialize(&(1, 1)).expect("json"),
    );
    let results = bounded(client.batch(batch)).await.expect("answered");
    assert_eq!(results.len(), 3);
    assert_eq!(sum.result(&results).expect("sum"), 42);
    assert_eq!(who.result(&results).expect("who"), None);
    assert_eq!(
        quotient.result(&results).expect_err("failed").remote(),
        Some(&Condition::new("math", "division by zero"))
    );

    bounded(math.notify().add(1, 2)).await.expect("queued");
    // The connection still answers after the notification.
    assert_eq!(bounded(math.add(1, 2)).await.expect("adds"), 3);
}

#[tokio::test]
async fn a_lisp_style_raw_request_is_answered() {
    let server = TestServer::start(ServerConfig::plain(), None, math_registry()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connects");
    let payload = br#"[{"Service":"Math","Method":"whoAmI","Id":1,"Args":[]},{"Service":"MATH","Method":"ADD","Id":2,"Args":[2,3]}]"#;
    let mut frame = format!("{:X}:", payload.len()).into_bytes();
    frame.extend_from_slice(payload);
    frame.push(b'\n');
    stream.write_all(&frame).await.expect("writes");

    // A null result is written without `data`, as the deployed peers write it.
    let expected = br#"[{"id":1},{"id":2,"data":5}]"#;
    let mut want = format!("{:X}:", expected.len()).into_bytes();
    want.extend_from_slice(expected);
    want.push(b'\n');
    let mut got = vec![0u8; want.len()];
    bounded(stream.read_exact(&mut got)).await.expect("reads");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn generated_futures_are_send() {
    fn assert_send<F: std::future::Future + Send>(_: F) {}
    let calc = Calc { offset: 1 };
    assert_send(calc.add(1, 2));
    fn stub(math: &MathClient) {
        assert_send(math.add(1, 2));
        assert_send(math.who_am_i());
        assert_send(math.notify().add(1, 2));
    }
    let _ = stub;
}
