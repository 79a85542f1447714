//! Middleware around every call: the shipped `Authorize` and `Trace`
//! layers over real connections, and `tower`'s own timeout and
//! concurrency-limit layers plugged in as they are.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtgnet::authorize::Authorize;
use mtgnet::trace::Trace;
use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Condition, Encryption, IdentitySecret, Registry,
    ServerConfig, codes, demo,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

use crate::util::{TestServer, bounded};

async fn encrypted_server(registry: Registry) -> TestServer {
    let identity = Arc::new(IdentitySecret::generate());
    let config = ServerConfig::encrypted(Encryption::new(Arc::clone(&identity)));
    TestServer::start(config, Some(identity), registry).await
}

async fn connect_as(server: &TestServer, identity: Arc<IdentitySecret>) -> Client {
    let server_key = server.identity.as_ref().expect("encrypted").public_key();
    let config = ClientConfig::encrypted(
        Encryption::new(identity).authorized(AuthorizedKeys::only([server_key])),
    );
    bounded(Client::connect(server.addr, config))
        .await
        .expect("connects")
}

fn code_of<T: std::fmt::Debug>(result: Result<T, mtgnet::CallError>) -> String {
    result
        .expect_err("refused")
        .remote()
        .map(Condition::code_text)
        .unwrap_or_default()
}

#[tokio::test]
async fn authorize_runs_calls_from_listed_keys_and_refuses_others_on_a_live_connection() {
    let alice = Arc::new(IdentitySecret::generate());
    let bob = Arc::new(IdentitySecret::generate());
    let policy = Authorize::new()
        .allow("Test", "add", [alice.public_key()])
        .allow_anyone("Test", "echo");
    let server = encrypted_server(Registry::new().with(demo::test_service()).layer(policy)).await;

    let as_alice = connect_as(&server, Arc::clone(&alice)).await;
    let sum: i64 = bounded(as_alice.call("test", "ADD", (2, 3)))
        .await
        .expect("alice may add");
    assert_eq!(sum, 5);

    let as_bob = connect_as(&server, bob).await;
    let refused = bounded(as_bob.call::<_, i64>("Test", "add", (2, 3))).await;
    match refused {
        Err(mtgnet::CallError::Remote(condition)) => assert_eq!(
            condition,
            Condition::new(codes::NOT_AUTHORIZED, "not authorized to call Test.add")
        ),
        other => panic!("expected not-authorized, got {other:?}"),
    }
    // Methods and services without a rule are refused to everyone.
    assert_eq!(
        code_of(bounded(as_alice.call::<_, ()>("Test", "fail", ())).await),
        "not-authorized"
    );
    assert_eq!(
        code_of(bounded(as_bob.call::<_, serde_json::Value>("System", "rpcVersion", ())).await),
        "not-authorized"
    );
    // The refusals left Bob's connection up: a method open to anyone answers.
    let echoed: String = bounded(as_bob.call("Test", "echo", ("still here",)))
        .await
        .expect("echo is open to anyone");
    assert_eq!(echoed, "still here");
    assert!(!as_bob.is_closed());
}

#[tokio::test]
async fn authorize_refuses_keyed_methods_on_a_plain_connection() {
    let alice = Arc::new(IdentitySecret::generate());
    let policy = Authorize::new()
        .allow("Test", "*", [alice.public_key()])
        .allow_anyone("System", "*");
    let registry = Registry::new().with(demo::test_service()).layer(policy);
    let server = TestServer::start(ServerConfig::plain(), None, registry).await;
    let client = server.client().await;
    assert_eq!(
        code_of(bounded(client.call::<_, String>("Test", "echo", ("x",))).await),
        "not-authorized"
    );
    let services: Vec<String> = bounded(client.call("System", "services", ()))
        .await
        .expect("System is open");
    assert_eq!(services, ["System", "Test"]);
}

/// Every span's fields, by span, as a subscriber saw them.
/// One recorded span: its id, its name and its fields.
type Recorded = (u64, String, BTreeMap<String, String>);

#[derive(Clone, Default)]
struct SpanFields(Arc<Mutex<Vec<Recorded>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanFields {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: LayerContext<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.0
            .lock()
            .expect("lock")
            .push((id.into_u64(), name, fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: LayerContext<'_, S>) {
        let mut spans = self.0.lock().expect("lock");
        if let Some((_, _, fields)) = spans.iter_mut().find(|(i, _, _)| *i == id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

#[tokio::test]
async fn trace_records_service_method_id_peer_duration_and_outcome_per_call() {
    let captured = SpanFields::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    // The test runtime has one thread: server and client run under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let registry = Registry::new()
        .with(demo::test_service())
        .layer(Trace::new());
    let server = encrypted_server(registry).await;
    let identity = Arc::new(IdentitySecret::generate());
    let client = connect_as(&server, Arc::clone(&identity)).await;
    let _: u64 = bounded(client.call("Test", "sleep", (20,)))
        .await
        .expect("sleeps");
    let _ = bounded(client.call::<_, ()>("Test", "fail", ())).await;

    let spans: Vec<BTreeMap<String, String>> = captured
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, name, _)| name == "mtgnet.call")
        .map(|(_, _, fields)| fields.clone())
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let key = identity.public_key().to_base64();
    let (sleep, fail) = (&spans[0], &spans[1]);
    assert_eq!(sleep["service"], "Test");
    assert_eq!(sleep["method"], "sleep");
    assert_eq!(sleep["peer"], key);
    assert_eq!(sleep["outcome"], "ok");
    let micros: u64 = sleep["duration_us"].parse().expect("a number");
    assert!(micros >= 20_000, "slept 20 ms, span says {micros} µs");
    assert_eq!(fail["method"], "fail");
    assert_eq!(fail["outcome"], "42");
    assert_ne!(sleep["id"], fail["id"]);
    assert!(sleep["id"].parse::<u64>().is_ok(), "{sleep:?}");
}

#[tokio::test]
async fn tower_timeout_answers_slow_calls_with_an_error_and_lets_fast_ones_through() {
    let registry =
        Registry::new()
            .with(demo::test_service())
            .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
                100,
            )));
    let server = TestServer::start(ServerConfig::plain(), None, registry).await;
    let client = server.client().await;
    let slow = bounded(client.call::<_, u64>("Test", "sleep", (5_000,))).await;
    match slow {
        Err(mtgnet::CallError::Remote(condition)) => {
            assert_eq!(
                condition,
                Condition::new(codes::INTERNAL_ERROR, "request timed out")
            );
        }
        other => panic!("expected a timeout condition, got {other:?}"),
    }
    let fast: u64 = bounded(client.call("Test", "sleep", (1,)))
        .await
        .expect("within the timeout");
    assert_eq!(fast, 1);
}

#[tokio::test]
async fn tower_concurrency_limit_runs_one_call_at_a_time() {
    let registry = Registry::new()
        .with(demo::test_service())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1));
    let server = TestServer::start(ServerConfig::plain(), None, registry).await;
    let client = server.client().await;
    let started = Instant::now();
    let (a, b) = tokio::join!(
        client.call::<_, u64>("Test", "sleep", (150,)),
        client.call::<_, u64>("Test", "sleep", (150,)),
    );
    assert_eq!((a.expect("first"), b.expect("second")), (150, 150));
    // Side by side they would take 150 ms; one after the other at least 300.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}
