//! The client runtime against a scripted in-memory server: the driver's
//! drop guard, the cap on calls in flight, timeouts and the write-stall
//! limit, out-of-order matching.
//!
//! Most tests run on a paused clock (`start_paused`): tokio then moves time
//! forward only when every task is idle, so "nothing arrives within 1 s"
//! means "nothing arrives once everything has settled", deterministically,
//! and a 60 s timeout takes no wall-clock time.

use std::time::Duration;

use bytes::BytesMut;
use mtgnet::proto::framing::{FrameDecoder, encode_frame};
use mtgnet::proto::wire;
use mtgnet::{Batch, CallError, Client, ClientConfig, ConfigError, Error, Id, RawJson};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::util::bounded;

/// Well below every call timeout and write-stall limit these tests set.
const PROMPTLY: Duration = Duration::from_secs(1);

/// The server end of an in-memory connection, driven step by step by the
/// test: it reads requests and writes whatever responses the test chooses.
struct ScriptedServer {
    io: DuplexStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

/// A call as the scripted server received it.
#[derive(Clone, Debug)]
struct Received {
    id: Id,
    /// The call's first argument, which the scripted server echoes back.
    first_arg: serde_json::Value,
}

impl ScriptedServer {
    /// The calls of the next request (notifications left out).
    async fn request(&mut self) -> Vec<Received> {
        loop {
            if let Some(payload) = self.decoder.decode(&mut self.buf).expect("valid frame") {
                let calls = wire::parse_request(&payload).expect("valid request");
                return calls
                    .into_iter()
                    .filter_map(|call| {
                        let call = call.expect("valid call");
                        let args: Vec<serde_json::Value> =
                            call.args.deserialize().expect("an array");
                        Some(Received {
                            id: call.id?,
                            first_arg: args.into_iter().next().unwrap_or_default(),
                        })
                    })
                    .collect();
            }
            let n = self.io.read_buf(&mut self.buf).await.expect("read");
            assert!(n > 0, "the client closed the connection");
        }
    }

    /// Whether no further request arrives within `PROMPTLY`.
    async fn sends_nothing_more(&mut self) -> bool {
        tokio::time::timeout(PROMPTLY, self.request())
            .await
            .is_err()
    }

    /// Answers `calls` with one response, results in the order given, each
    /// echoing its call's first argument.
    async fn answer(&mut self, calls: &[Received]) {
        let results: Vec<String> = calls
            .iter()
            .map(|call| {
                format!(
                    r#"{{"id":{},"data":{}}}"#,
                    call.id.to_json(),
                    call.first_arg
                )
            })
            .collect();
        let mut frame = BytesMut::new();
        encode_frame(format!("[{}]", results.join(",")).as_bytes(), &mut frame);
        self.io.write_all(&frame).await.expect("write");
    }
}

/// A client over an in-memory stream, its driver's task, and the server end.
async fn pair(config: ClientConfig) -> (Client, JoinHandle<()>, ScriptedServer) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (client, driver) = Client::new(client_io, config).await.expect("client");
    let server = ScriptedServer {
        io: server_io,
        buf: BytesMut::new(),
        decoder: FrameDecoder::default(),
    };
    (client, tokio::spawn(driver), server)
}

/// Starts `Test.echo(n)` on its own task; the data it gets back is the call's id.
fn start_call(client: &Client, n: i64) -> JoinHandle<Result<i64, CallError>> {
    let client = client.clone();
    tokio::spawn(async move { client.call("Test", "echo", (n,)).await })
}

fn is_closed_with(err: &CallError, expected: fn(&Error) -> bool) -> bool {
    matches!(err, CallError::Connection(e) if expected(e))
}

#[tokio::test]
async fn client_calls_fail_promptly_with_closed_when_the_driver_is_aborted() {
    let (client, driver, mut server) =
        pair(ClientConfig::plain().call_timeout(Duration::from_secs(60))).await;
    let waiting = start_call(&client, 1);
    bounded(server.request()).await;
    driver.abort();
    let err = tokio::time::timeout(PROMPTLY, waiting)
        .await
        .expect("the waiting call fails promptly")
        .expect("task")
        .expect_err("no answer can come");
    assert!(
        is_closed_with(&err, |e| matches!(e, Error::Closed)),
        "{err}"
    );
    let later = tokio::time::timeout(PROMPTLY, client.call::<_, i64>("Test", "echo", (2,)))
        .await
        .expect("a later call fails at once")
        .expect_err("closed");
    assert!(
        is_closed_with(&later, |e| matches!(e, Error::Closed)),
        "{later}"
    );
    assert!(client.is_closed());
}

#[tokio::test]
async fn client_calls_fail_promptly_when_the_drivers_runtime_shuts_down() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (client, driver) = Client::new(
        client_io,
        ClientConfig::plain().call_timeout(Duration::from_secs(60)),
    )
    .await
    .expect("client");
    let (shut_down, shutting_down) = std::sync::mpsc::channel::<()>();
    let driver_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.spawn(driver);
        // Run the driver until told to stop, then drop the runtime and its tasks.
        runtime.block_on(async {
            tokio::task::spawn_blocking(move || shutting_down.recv())
                .await
                .ok()
        });
        drop(runtime);
    });
    let mut server = ScriptedServer {
        io: server_io,
        buf: BytesMut::new(),
        decoder: FrameDecoder::default(),
    };
    let waiting = start_call(&client, 1);
    bounded(server.request()).await;
    shut_down.send(()).expect("driver thread alive");
    let err = tokio::time::timeout(PROMPTLY, waiting)
        .await
        .expect("the waiting call fails promptly")
        .expect("task")
        .expect_err("no answer can come");
    assert!(
        is_closed_with(&err, |e| matches!(e, Error::Closed)),
        "{err}"
    );
    driver_thread.join().expect("driver thread");
}

#[tokio::test(start_paused = true)]
async fn client_calls_beyond_max_in_flight_wait_for_a_free_slot() {
    let (client, _driver, mut server) = pair(ClientConfig::plain().max_in_flight(2)).await;
    let calls: Vec<_> = (0..3).map(|n| start_call(&client, n)).collect();
    let first = bounded(server.request()).await;
    let second = bounded(server.request()).await;
    assert!(
        server.sends_nothing_more().await,
        "a third call is sent while two are in flight"
    );
    server.answer(&first).await;
    let third = bounded(server.request()).await;
    server.answer(&third).await;
    server.answer(&second).await;
    for call in calls {
        bounded(call).await.expect("task").expect("answered");
    }
}

#[tokio::test(start_paused = true)]
async fn client_batch_larger_than_max_in_flight_runs_alone() {
    let (client, _driver, mut server) = pair(ClientConfig::plain().max_in_flight(2)).await;
    let mut batch = Batch::new();
    for n in 0..3 {
        batch.call(
            "Test",
            "echo",
            RawJson::from_serialize(&(n,)).expect("json"),
        );
    }
    let big = tokio::spawn({
        let client = client.clone();
        async move { client.batch(batch).await }
    });
    let members = bounded(server.request()).await;
    assert_eq!(members.len(), 3, "the batch is sent whole, not deadlocked");
    let single = start_call(&client, 9);
    assert!(
        server.sends_nothing_more().await,
        "a call is sent while a batch holds every slot"
    );
    server.answer(&members).await;
    let alone = bounded(server.request()).await;
    server.answer(&alone).await;
    assert_eq!(bounded(big).await.expect("task").expect("batch").len(), 3);
    bounded(single).await.expect("task").expect("answered");
}

#[tokio::test(start_paused = true)]
async fn client_call_waiting_for_a_slot_times_out_or_is_cancelled_unsent() {
    let config = ClientConfig::plain()
        .max_in_flight(2)
        .call_timeout(Duration::from_secs(5));
    let (client, _driver, mut server) = pair(config).await;
    let two_calls = || {
        let mut batch = Batch::new();
        for n in 0..2 {
            batch.call(
                "Test",
                "echo",
                RawJson::from_serialize(&(n,)).expect("json"),
            );
        }
        batch
    };
    let holder = start_call(&client, 0);
    let held = bounded(server.request()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Needs both slots; the holder keeps one, live until t = 5 s, then
    // abandoned (which does not free it).
    let started = Instant::now();
    let err = bounded(client.batch(two_calls()))
        .await
        .expect_err("no slots within the call timeout");
    assert!(matches!(err, CallError::Timeout), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let err = bounded(holder).await.expect("task").expect_err("timeout");
    assert!(matches!(err, CallError::Timeout), "{err}");
    let cancelled =
        tokio::time::timeout(Duration::from_millis(100), client.batch(two_calls())).await;
    assert!(cancelled.is_err(), "still waiting for slots: {cancelled:?}");
    server.answer(&held).await;
    assert!(
        server.sends_nothing_more().await,
        "a call given up while waiting for a slot was sent later"
    );
    let live = start_call(&client, 7);
    let live_ids = bounded(server.request()).await;
    server.answer(&live_ids).await;
    assert_eq!(bounded(live).await.expect("task").expect("answered"), 7);
}

#[tokio::test(start_paused = true)]
async fn client_abandoned_call_keeps_its_slot_until_its_answer_arrives() {
    let config = ClientConfig::plain()
        .max_in_flight(2)
        .call_timeout(Duration::from_secs(5));
    let (client, _driver, mut server) = pair(config).await;
    let abandoned = start_call(&client, 0);
    let late = bounded(server.request()).await;
    let err = bounded(abandoned)
        .await
        .expect("task")
        .expect_err("timeout");
    assert!(matches!(err, CallError::Timeout), "{err}");
    let live = start_call(&client, 1);
    let live_ids = bounded(server.request()).await;
    let waiting = start_call(&client, 2);
    assert!(
        server.sends_nothing_more().await,
        "the abandoned call's slot was given away before its answer"
    );
    server.answer(&late).await;
    let waiting_ids = bounded(server.request()).await;
    server.answer(&waiting_ids).await;
    server.answer(&live_ids).await;
    bounded(live).await.expect("task").expect("answered");
    bounded(waiting).await.expect("task").expect("answered");
    assert!(!client.is_closed());
}

#[tokio::test(start_paused = true)]
async fn client_closes_a_connection_whose_slots_are_all_abandoned() {
    let config = ClientConfig::plain()
        .max_in_flight(2)
        .call_timeout(Duration::from_secs(5));
    let (client, _driver, mut server) = pair(config).await;
    for n in 0..2 {
        let err = bounded(client.call::<_, i64>("Test", "echo", (n,)))
            .await
            .expect_err("never answered");
        assert!(matches!(err, CallError::Timeout), "{err}");
        bounded(server.request()).await;
    }
    let started = Instant::now();
    let err = bounded(client.call::<_, i64>("Test", "echo", (3,)))
        .await
        .expect_err("closed");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    assert!(
        is_closed_with(&err, |e| matches!(
            e,
            Error::TooManyAbandoned { max_in_flight: 2 }
        )),
        "{err}"
    );
    assert!(client.is_closed());
}

#[tokio::test]
async fn client_max_in_flight_zero_is_a_configuration_error() {
    let (client_io, _server_io) = tokio::io::duplex(1024);
    let err = Client::new(client_io, ClientConfig::plain().max_in_flight(0))
        .await
        .expect_err("0 calls in flight cannot work");
    assert!(
        matches!(
            err,
            Error::Config(ConfigError::OutOfRange {
                setting: "max_in_flight",
                ..
            })
        ),
        "{err}"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = Client::connect(
        listener.local_addr().expect("addr"),
        ClientConfig::plain().max_in_flight(0),
    )
    .await
    .expect_err("0 calls in flight cannot work");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn client_calls_time_out_after_60_s_by_default_and_never_with_none() {
    let (client, _driver, mut server) = pair(ClientConfig::plain()).await;
    let started = Instant::now();
    let call = start_call(&client, 1);
    bounded(server.request()).await;
    let err = tokio::time::timeout(Duration::from_secs(120), call)
        .await
        .expect("the default call timeout fires")
        .expect("task")
        .expect_err("never answered");
    assert!(matches!(err, CallError::Timeout), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
        "{waited:?}"
    );

    let (client, _driver, mut server) = pair(ClientConfig::plain().call_timeout(None)).await;
    let call = start_call(&client, 1);
    bounded(server.request()).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(3600), call)
            .await
            .is_err(),
        "a call without a timeout still waits after an hour"
    );
}

#[tokio::test(start_paused = true)]
async fn client_write_to_a_peer_that_never_reads_fails_after_the_write_stall() {
    // A 1 KiB pipe whose far end is never read: the client's write stalls.
    let (client_io, _never_read) = tokio::io::duplex(1024);
    let (client, driver) = Client::new(client_io, ClientConfig::plain())
        .await
        .expect("client");
    let driver = tokio::spawn(driver);
    let started = Instant::now();
    let big = "x".repeat(256 * 1024);
    let err = tokio::time::timeout(
        Duration::from_secs(120),
        client.call::<_, String>("Test", "echo", (big,)),
    )
    .await
    .expect("the write stall ends the call")
    .expect_err("the request cannot be written");
    assert!(
        is_closed_with(&err, |e| matches!(
            e,
            Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut
        )),
        "{err}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "the default write stall is 30 s, below the 60 s call timeout: {waited:?}"
    );
    bounded(driver).await.expect("the driver finishes");
}

#[tokio::test(start_paused = true)]
async fn client_matches_responses_answered_in_reverse_order() {
    let (client, _driver, mut server) = pair(ClientConfig::plain()).await;
    let calls: Vec<_> = (0..3).map(|n| start_call(&client, n)).collect();
    let mut batch = Batch::new();
    for n in 10..13 {
        batch.call(
            "Test",
            "echo",
            RawJson::from_serialize(&(n,)).expect("json"),
        );
    }
    let batched = tokio::spawn({
        let client = client.clone();
        async move { client.batch(batch).await }
    });
    let mut requests = Vec::new();
    for _ in 0..4 {
        requests.push(bounded(server.request()).await);
    }
    // Last request first, and the batch's results reversed too.
    for request in requests.iter().rev() {
        let mut reversed = request.clone();
        reversed.reverse();
        server.answer(&reversed).await;
    }
    for (n, call) in calls.into_iter().enumerate() {
        let got = bounded(call).await.expect("task").expect("answered");
        assert_eq!(
            got,
            i64::try_from(n).expect("small"),
            "call {n} got another call's result"
        );
    }
    let results = bounded(batched).await.expect("task").expect("answered");
    let got: Vec<i64> = results
        .iter()
        .map(|r| {
            r.outcome
                .as_ref()
                .expect("data")
                .deserialize()
                .expect("an integer")
        })
        .collect();
    assert_eq!(
        got,
        [10, 11, 12],
        "batch results in the order the calls were added"
    );
}
