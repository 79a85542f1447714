//! Clients that survive their server: the reconnect policy over real
//! loopback sockets, the server restarted on the same port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mtgnet::{
    AuthError, AuthorizedKeys, CallError, Client, ClientConfig, ClientState, ConfigError,
    Encryption, Error, IdentitySecret, Reconnect, ServerConfig, blocking, codes,
};
use tokio::sync::watch;

use crate::util::{BOUND, TestServer, bounded};

/// Quick retries, so that a restart is noticed and healed in milliseconds.
fn quick() -> Reconnect {
    Reconnect::new()
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(100))
}

fn server_config(identity: Option<&Arc<IdentitySecret>>) -> ServerConfig {
    match identity {
        None => ServerConfig::plain(),
        Some(identity) => ServerConfig::encrypted(Encryption::new(Arc::clone(identity))),
    }
}

/// A server on 127.0.0.1:0, plain or encrypted with `identity`.
async fn server(identity: Option<&Arc<IdentitySecret>>) -> TestServer {
    TestServer::start(
        server_config(identity),
        identity.cloned(),
        crate::util::registry(),
    )
    .await
}

/// Waits until the client's state satisfies `reached`.
async fn state_reaches(client: &Client, reached: impl FnMut(&ClientState) -> bool) -> ClientState {
    let mut states = client.state_changes();
    bounded(states.wait_for(reached))
        .await
        .expect("the driver publishes its state until it ends")
        .clone()
}

fn is_connection_error(err: &CallError) -> bool {
    matches!(err, CallError::Connection(_))
}

/// What the calls made during a restart came to.
#[derive(Default, Debug)]
struct Outcomes {
    before: usize,
    after: usize,
    failures: Vec<CallError>,
}

/// Restarts the server under a client that calls `Test.add` every 10 ms
/// (each call on its own task), and checks that the same handle works
/// again afterwards with nothing done by the caller, that the only
/// failures are connection errors (and, on a graceful shutdown, the
/// server's own `shutting-down` refusals of calls it did not run), and
/// that no call hangs.
async fn restart_under_calls(encrypted: bool, graceful: bool) {
    let identity = encrypted.then(|| Arc::new(IdentitySecret::generate()));
    let mut first = server(identity.as_ref()).await;
    let addr = first.addr;
    let config = first.client_config().reconnect(quick());
    let client = bounded(Client::connect(addr, config))
        .await
        .expect("connects");
    let pinned = client.peer_identity().copied();
    assert_eq!(pinned, identity.as_ref().map(|i| i.public_key()));

    let (restarted, restarted_rx) = watch::channel(false);
    let calling = tokio::spawn({
        let client = client.clone();
        async move {
            let mut outcomes = Outcomes::default();
            let mut calls = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut n = 0i64;
            // Until 20 calls made after the restart have succeeded.
            while outcomes.after < 20 {
                tick.tick().await;
                n += 1;
                let client = client.clone();
                let after = *restarted_rx.borrow();
                calls.spawn(async move {
                    // A hang fails the test here, not by blocking CI.
                    let outcome =
                        tokio::time::timeout(BOUND, client.call::<_, i64>("Test", "add", (n, 1)))
                            .await
                            .expect("no call hangs");
                    (n, after, outcome)
                });
                while let Some(done) = calls.try_join_next() {
                    let (n, after, outcome) = done.expect("call task");
                    match outcome {
                        Ok(sum) => {
                            assert_eq!(sum, n + 1);
                            if after {
                                outcomes.after += 1;
                            } else {
                                outcomes.before += 1;
                            }
                        }
                        Err(e) => outcomes.failures.push(e),
                    }
                }
            }
            while let Some(done) = calls.join_next().await {
                if let (_, _, Err(e)) = done.expect("call task") {
                    outcomes.failures.push(e);
                }
            }
            outcomes
        }
    });

    tokio::time::sleep(Duration::from_millis(100)).await;
    if graceful {
        first.shutdown().await;
    } else {
        first.kill().await;
    }
    let reconnecting = state_reaches(&client, |s| !matches!(s, ClientState::Connected)).await;
    assert!(
        matches!(reconnecting, ClientState::Reconnecting { .. }),
        "the client saw the drop and reconnects: {reconnecting:?}"
    );
    // Down for a while: calls made now wait for the next connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second =
        TestServer::start_on(addr, server_config(identity.as_ref()), identity.clone()).await;
    restarted.send_replace(true);

    let outcomes = bounded(calling).await.expect("calling task");
    assert!(outcomes.before > 0, "{outcomes:?}");
    assert!(outcomes.after >= 20, "{outcomes:?}");
    for failure in &outcomes.failures {
        let refused_at_shutdown = graceful
            && failure
                .remote()
                .is_some_and(|c| c.code == codes::SHUTTING_DOWN);
        assert!(
            is_connection_error(failure) || refused_at_shutdown,
            "a failure during the outage is a connection error, not {failure:?}"
        );
    }
    assert!(matches!(client.state(), ClientState::Connected));
    assert_eq!(client.peer_identity().copied(), pinned);
    // The restarted server answers the same handle with no help.
    let sum: i64 = bounded(client.call("Test", "add", (40, 2)))
        .await
        .expect("add");
    assert_eq!(sum, 42);
    client.close().await;
    drop(second);
}

#[tokio::test]
async fn plain_client_works_again_after_the_server_crashes_and_restarts() {
    restart_under_calls(false, false).await;
}

#[tokio::test]
async fn plain_client_works_again_after_the_server_shuts_down_and_restarts() {
    restart_under_calls(false, true).await;
}

#[tokio::test]
async fn v2_pinned_client_works_again_after_the_server_crashes_and_restarts() {
    restart_under_calls(true, false).await;
}

#[tokio::test]
async fn v2_pinned_client_works_again_after_the_server_shuts_down_and_restarts() {
    restart_under_calls(true, true).await;
}

#[tokio::test]
async fn v1_client_works_again_after_the_server_restarts() {
    let identity = Arc::new(IdentitySecret::generate());
    let mut first = server(Some(&identity)).await;
    let addr = first.addr;
    let config = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .authorized(AuthorizedKeys::only([identity.public_key()]))
            .version(mtgnet::EncryptionVersion::V1),
    )
    .reconnect(quick());
    let client = bounded(Client::connect(addr, config))
        .await
        .expect("connects");
    first.kill().await;
    state_reaches(&client, |s| matches!(s, ClientState::Reconnecting { .. })).await;
    let _second = TestServer::start_on(addr, server_config(Some(&identity)), Some(identity)).await;
    let sum: i64 = bounded(client.call("Test", "add", (1, 2)))
        .await
        .expect("the waiting call goes out on the new connection");
    assert_eq!(sum, 3);
}

#[tokio::test]
async fn a_changed_server_key_on_reconnect_is_refused_and_the_client_fails() {
    let original = Arc::new(IdentitySecret::generate());
    let impostor = Arc::new(IdentitySecret::generate());
    // Pinned to the original key, or accepting any key on the first
    // connection: either way a reconnect must meet the key seen first.
    let me = Arc::new(IdentitySecret::generate());
    for encryption in [
        Encryption::new(Arc::clone(&me)).authorized(AuthorizedKeys::only([original.public_key()])),
        Encryption::new(Arc::clone(&me)).dangerous_accept_any_key(),
    ] {
        let mut first = server(Some(&original)).await;
        let addr = first.addr;
        let config = ClientConfig::encrypted(encryption)
            .reconnect(quick())
            .call_timeout(Duration::from_secs(60));
        let client = bounded(Client::connect(addr, config))
            .await
            .expect("connects");
        first.kill().await;
        let waiting = tokio::spawn({
            let client = client.clone();
            async move { client.call::<_, i64>("Test", "add", (1, 1)).await }
        });
        let _replaced = TestServer::start_on(
            addr,
            server_config(Some(&impostor)),
            Some(Arc::clone(&impostor)),
        )
        .await;

        let refused = |e: &Error| matches!(e, Error::Auth(AuthError::NotAuthorized(key)) if *key == impostor.public_key());
        let state = state_reaches(&client, ClientState::is_final).await;
        assert!(
            matches!(&state, ClientState::Failed(e) if refused(e)),
            "the pin holds: {state:?}"
        );
        // The waiting call fails with the refusal, long before its 60 s.
        let err = bounded(waiting).await.expect("task").expect_err("refused");
        assert!(
            matches!(&err, CallError::Connection(e) if refused(e)),
            "{err:?}"
        );
        let later = bounded(client.call::<_, i64>("Test", "add", (1, 1)))
            .await
            .expect_err("failed for good");
        assert!(
            matches!(&later, CallError::Connection(e) if refused(e)),
            "{later:?}"
        );
        assert!(client.is_closed());
        assert_eq!(client.peer_identity(), Some(&original.public_key()));
    }
}

#[tokio::test]
async fn giving_up_after_n_attempts_fails_waiting_calls_with_the_reason() {
    let mut gone = TestServer::plain().await;
    let addr = gone.addr;
    let config = ClientConfig::plain()
        .reconnect(quick().give_up_after(3))
        .call_timeout(Duration::from_secs(60));
    let client = bounded(Client::connect(addr, config))
        .await
        .expect("connects");
    gone.kill().await;
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, i64>("Test", "add", (1, 1)).await }
    });

    let gave_up = |e: &Error| {
        matches!(e, Error::GaveUp { attempts: 3, last }
            if matches!(&**last, Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused))
    };
    let state = state_reaches(&client, ClientState::is_final).await;
    assert!(
        matches!(&state, ClientState::Failed(e) if gave_up(e)),
        "{state:?}"
    );
    // The error kind shows it: the call failed with the policy's end, not
    // with its 60 s timeout.
    let err = bounded(waiting)
        .await
        .expect("task")
        .expect_err("no server");
    assert!(
        matches!(&err, CallError::Connection(e) if gave_up(e)),
        "{err:?}"
    );
    let later = bounded(client.call::<_, i64>("Test", "add", (1, 1)))
        .await
        .expect_err("failed for good");
    assert!(
        matches!(&later, CallError::Connection(e) if gave_up(e)),
        "{later:?}"
    );
    assert!(client.is_closed());
}

#[tokio::test]
async fn during_an_outage_calls_time_out_and_calls_in_flight_fail_with_the_connection() {
    let mut first = TestServer::plain().await;
    let addr = first.addr;
    // One client whose call is in flight when the server dies, one whose
    // calls made during the outage run out of time.
    let patient = bounded(Client::connect(
        addr,
        ClientConfig::plain().reconnect(quick()),
    ))
    .await
    .expect("connects");
    let hurried = ClientConfig::plain()
        .reconnect(quick())
        .call_timeout(Duration::from_millis(300));
    let hurried = bounded(Client::connect(addr, hurried))
        .await
        .expect("connects");
    let in_flight = tokio::spawn({
        let patient = patient.clone();
        async move { patient.call::<_, u64>("Test", "sleep", (5000,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.kill().await;
    let err = bounded(in_flight)
        .await
        .expect("task")
        .expect_err("server gone");
    assert!(
        is_connection_error(&err),
        "in flight when the server died: {err:?}"
    );

    // No server: a new call waits for a connection, then runs out of time.
    state_reaches(&hurried, |s| matches!(s, ClientState::Reconnecting { .. })).await;
    let err = bounded(hurried.call::<_, i64>("Test", "add", (1, 1)))
        .await
        .expect_err("no server");
    assert!(matches!(err, CallError::Timeout), "{err:?}");
    assert!(matches!(hurried.state(), ClientState::Reconnecting { attempt } if attempt >= 1));
    assert!(!hurried.is_closed());

    let _second = TestServer::start_on(addr, ServerConfig::plain(), None).await;
    for client in [&patient, &hurried] {
        state_reaches(client, |s| matches!(s, ClientState::Connected)).await;
        let sum: i64 = bounded(client.call("Test", "add", (1, 1)))
            .await
            .expect("add");
        assert_eq!(sum, 2);
    }
}

#[tokio::test]
async fn close_stops_reconnecting_and_fails_waiting_calls_with_closed() {
    let mut gone = TestServer::plain().await;
    let config = ClientConfig::plain().reconnect(quick()).call_timeout(None);
    let client = bounded(Client::connect(gone.addr, config))
        .await
        .expect("connects");
    gone.kill().await;
    // No timeout and a policy that never gives up: only close ends this wait.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, i64>("Test", "add", (1, 1)).await }
    });
    state_reaches(
        &client,
        |s| matches!(s, ClientState::Reconnecting { attempt } if *attempt >= 2),
    )
    .await;
    bounded(client.close()).await;
    assert!(matches!(client.state(), ClientState::Closed));
    let err = bounded(waiting).await.expect("task").expect_err("closed");
    assert!(
        matches!(&err, CallError::Connection(e) if matches!(**e, Error::Closed)),
        "{err:?}"
    );
    assert!(client.is_closed());
}

#[tokio::test]
async fn dropping_every_handle_ends_the_reconnect_loop() {
    let mut gone = TestServer::plain().await;
    let addr: SocketAddr = gone.addr;
    let dials = Arc::new(AtomicU32::new(0));
    let connector = {
        let dials = Arc::clone(&dials);
        move || {
            dials.fetch_add(1, Ordering::Relaxed);
            tokio::net::TcpStream::connect(addr)
        }
    };
    let (client, driver) = bounded(Client::with_connector(
        connector,
        ClientConfig::plain().reconnect(quick()),
    ))
    .await
    .expect("connects");
    let driver = tokio::spawn(driver);
    let mut states = client.state_changes();
    gone.kill().await;
    bounded(
        states.wait_for(|s| matches!(s, ClientState::Reconnecting { attempt } if *attempt >= 2)),
    )
    .await
    .expect("reconnecting");
    drop(client);
    bounded(driver)
        .await
        .expect("the driver ends once no handle is left");
    assert!(matches!(*states.borrow(), ClientState::Closed));
    // Nothing dials any more.
    let dialled = dials.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(dials.load(Ordering::Relaxed), dialled);
}

#[tokio::test]
async fn a_client_over_one_stream_refuses_a_reconnect_policy() {
    let (client_io, _server_io) = tokio::io::duplex(1024);
    let err = Client::new(client_io, ClientConfig::plain().reconnect(Reconnect::new()))
        .await
        .expect_err("cannot reconnect");
    assert!(
        matches!(
            err,
            Error::Config(ConfigError::NotApplicable {
                setting: "reconnect",
                ..
            })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn reconnect_policies_that_cannot_work_are_refused_before_connecting() {
    let server = TestServer::plain().await;
    let inverted = Reconnect::new()
        .initial_delay(Duration::from_secs(2))
        .max_delay(Duration::from_secs(1));
    let err = Client::connect(server.addr, ClientConfig::plain().reconnect(inverted))
        .await
        .expect_err("max below initial");
    assert!(
        matches!(
            err,
            Error::Config(ConfigError::OutOfRange {
                setting: "max_delay",
                ..
            })
        ),
        "{err}"
    );
}

/// A listener whose accept queue is full drops new connection requests
/// (Linux), so connecting to it hangs: the connect timeout must end it.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn connecting_to_a_server_that_never_accepts_times_out() {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let addr = listener.local_addr().expect("addr");
    // Fill the accept queue; the connections that do not fit hang.
    let mut queued = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            queued.push(stream);
        }
    }
    let config = ClientConfig::plain().connect_timeout(Duration::from_millis(300));
    let err = bounded(Client::connect(addr, config))
        .await
        .expect_err("never accepted");
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "{err}"
    );
    drop((queued, listener));
}

#[test]
fn blocking_client_reconnects_in_the_background_after_a_restart() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let identity = Arc::new(IdentitySecret::generate());
    let mut first = runtime.block_on(server(Some(&identity)));
    let addr = first.addr;
    let config = first.client_config().reconnect(quick());
    std::thread::scope(|s| {
        s.spawn(|| {
            let client = blocking::Client::connect(addr, config).expect("connects");
            let sum: i64 = client.call("Test", "add", (1, 2)).expect("add");
            assert_eq!(sum, 3);

            runtime.block_on(first.kill());
            wait_until(|| matches!(client.state(), ClientState::Reconnecting { .. }));
            let second = runtime.block_on(TestServer::start_on(
                addr,
                server_config(Some(&identity)),
                Some(Arc::clone(&identity)),
            ));
            // Reconnected between calls, by its background thread.
            wait_until(|| matches!(client.state(), ClientState::Connected));
            let sum: i64 = client
                .call("Test", "add", (2, 2))
                .expect("add after the restart");
            assert_eq!(sum, 4);
            assert_eq!(client.peer_identity(), Some(&identity.public_key()));

            // Calls every 10 ms through a second restart, 100 ms after the
            // crash: each succeeds or fails with a connection error (none
            // hangs: they wait within their call timeout), and they
            // succeed again after the restart.
            let mut second = Some(second);
            let mut third = None;
            let mut after = 0;
            for n in 0..1000 {
                if n == 5 {
                    let mut stopping = second.take().expect("running");
                    runtime.block_on(stopping.kill());
                    let identity = Arc::clone(&identity);
                    third = Some(runtime.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        TestServer::start_on(addr, server_config(Some(&identity)), Some(identity))
                            .await
                    }));
                }
                match client.call::<_, i64>("Test", "add", (n, 1)) {
                    Ok(sum) => {
                        assert_eq!(sum, n + 1);
                        after += usize::from(n > 5);
                    }
                    Err(e) => assert!(is_connection_error(&e), "{e:?}"),
                }
                if after == 10 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(after, 10, "calls succeed again after the restart");
            let third = runtime
                .block_on(third.expect("restarted"))
                .expect("restart task");
            drop(third);
        });
    });
}

/// Polls `reached` every 10 ms, failing the test after [`BOUND`].
fn wait_until(mut reached: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + BOUND;
    while !reached() {
        assert!(
            std::time::Instant::now() < deadline,
            "not reached within the bound"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
