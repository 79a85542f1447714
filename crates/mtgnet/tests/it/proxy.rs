//! `mtgnet::proxy`: v2 clients in front, a plain or v1 backend behind,
//! over loopback. Backends are `mtgnet` servers behind a listener that
//! counts connections, or raw sockets that record what reaches them.
//!
//! Every timeout of the proxy is [`PATIENT`] unless a test is about one,
//! and every wait of a test is bounded by `util::BOUND` (10 s): a close that
//! arrives within the bound came from the event under test, not a timeout.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use mtgnet::proto::framing::FrameDecoder;
use mtgnet::proxy::{Connector, Proxy, ProxyConfig, ProxyError, TcpConnector};
use mtgnet::{
    AuthError, AuthorizedKeys, Batch, CallError, Client, ClientConfig, Encryption,
    EncryptionVersion, Error, IdentitySecret, Limits, Listener, PeerError, RawJson, Registry,
    Server, ServerConfig, Service, Shutdown,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::util::{assert_answers_as_each_completes, bounded, registry};

/// Every timeout of the proxy that a test is not about: far beyond [`BOUND`].
const PATIENT: Duration = Duration::from_secs(3600);

/// Limits whose timeouts cannot fire during a test.
fn patient_limits() -> Limits {
    Limits::default().idle_timeout(PATIENT).write_stall(PATIENT)
}

/// A v2 front with a fresh identity, accepting `authorized` clients.
fn front(authorized: AuthorizedKeys) -> (Arc<IdentitySecret>, Encryption) {
    let identity = Arc::new(IdentitySecret::generate());
    let encryption = Encryption::new(Arc::clone(&identity))
        .version(EncryptionVersion::V2)
        .authorized(authorized)
        .handshake_timeout(PATIENT);
    (identity, encryption)
}

/// A client of the proxy whose identity is `identity`, pinning `proxy_key`.
fn client_config(
    identity: Arc<IdentitySecret>,
    proxy_key: mtgnet::PublicKey,
    version: EncryptionVersion,
) -> ClientConfig {
    ClientConfig::encrypted(
        Encryption::new(identity)
            .version(version)
            .authorized(AuthorizedKeys::only([proxy_key]))
            .handshake_timeout(PATIENT),
    )
    .call_timeout(PATIENT)
}

/// A TCP listener that counts the connections it accepts.
struct Counting {
    inner: TcpListener,
    accepted: Arc<AtomicUsize>,
}

impl Listener for Counting {
    type Io = TcpStream;

    async fn accept(&mut self) -> std::io::Result<(TcpStream, mtgnet::Peer)> {
        let (stream, address) = self.inner.accept().await?;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Ok((stream, mtgnet::Peer::from(address)))
    }
}

/// An `mtgnet` server as the backend, counting its connections.
struct Backend {
    addr: SocketAddr,
    key: Option<mtgnet::PublicKey>,
    accepted: Arc<AtomicUsize>,
    _stop: StopOnDrop,
}

/// Triggers a shutdown when dropped, so that no test leaves a server behind.
struct StopOnDrop(Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

impl Backend {
    async fn start(config: ServerConfig, registry: Registry) -> Backend {
        Backend::start_on(loopback().await, config, registry)
    }

    fn start_on(inner: TcpListener, config: ServerConfig, registry: Registry) -> Backend {
        let addr = inner.local_addr().expect("address");
        let key = config.encryption().map(Encryption::public_key);
        let accepted = Arc::new(AtomicUsize::new(0));
        let listener = Counting {
            inner,
            accepted: Arc::clone(&accepted),
        };
        let server = Server::new(registry, config).expect("valid limits");
        let stop = Shutdown::new();
        tokio::spawn({
            let stop = stop.clone();
            async move { server.serve(listener, stop).await }
        });
        Backend {
            addr,
            key,
            accepted,
            _stop: StopOnDrop(stop),
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback")
}

/// A proxy on loopback whose connections each run `serve_connection`, so
/// that a test can read how each one ended.
struct TestProxy {
    addr: SocketAddr,
    key: mtgnet::PublicKey,
    outcomes: mpsc::UnboundedReceiver<Result<(), ProxyError>>,
    _accepting: AbortOnDrop,
    _stop: StopOnDrop,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TestProxy {
    async fn start<C: Connector>(config: ProxyConfig, connector: C) -> TestProxy {
        TestProxy::start_on(loopback().await, config, connector)
    }

    fn start_on<C: Connector>(
        listener: TcpListener,
        config: ProxyConfig,
        connector: C,
    ) -> TestProxy {
        let addr = listener.local_addr().expect("address");
        let key = config.front().public_key();
        let proxy = Proxy::new(config, connector).expect("valid config");
        let stop = Shutdown::new();
        let (report, outcomes) = mpsc::unbounded_channel();
        let accepting = tokio::spawn({
            let stop = stop.clone();
            async move {
                while let Ok((io, address)) = listener.accept().await {
                    let proxy = proxy.clone();
                    let stop = stop.clone();
                    let report = report.clone();
                    tokio::spawn(async move {
                        let _ = report.send(proxy.serve_connection(io, Some(address), stop).await);
                    });
                }
            }
        });
        TestProxy {
            addr,
            key,
            outcomes,
            _accepting: AbortOnDrop(accepting),
            _stop: StopOnDrop(stop),
        }
    }

    /// How the next proxied connection ended.
    async fn next_outcome(&mut self) -> Result<(), ProxyError> {
        bounded(self.outcomes.recv())
            .await
            .expect("the proxy reports every connection")
    }

    /// A v2 client of the proxy with a fresh identity, pinning the proxy.
    async fn client(&self) -> Client {
        self.client_as(Arc::new(IdentitySecret::generate()), EncryptionVersion::V2)
            .await
    }

    async fn client_as(&self, identity: Arc<IdentitySecret>, version: EncryptionVersion) -> Client {
        bounded(Client::connect(
            self.addr,
            client_config(identity, self.key, version),
        ))
        .await
        .expect("the client's handshake with the proxy succeeds")
    }
}

/// The connection error a call failed with; anything else fails the test.
fn connection_error<T: std::fmt::Debug>(outcome: Result<T, CallError>) -> Arc<Error> {
    match outcome {
        Err(CallError::Connection(e)) => e,
        other => panic!("expected a connection error, got {other:?}"),
    }
}

/// A proxy with a plain backend hop and a v2 front accepting any client.
fn plain_proxy_config() -> ProxyConfig {
    let (_, front) = front(AuthorizedKeys::any());
    ProxyConfig::plain_backend(front)
        .limits(patient_limits())
        .connect_timeout(PATIENT)
}

#[tokio::test]
async fn v2_client_reaches_a_plain_backend_through_the_proxy() {
    let backend = Backend::start(ServerConfig::plain(), registry()).await;
    let proxy = TestProxy::start(
        plain_proxy_config(),
        TcpConnector::new(backend.addr.to_string()),
    )
    .await;
    let client = proxy.client().await;
    assert_eq!(
        client.peer_identity(),
        Some(&proxy.key),
        "the client's pin is the proxy's key"
    );

    let echoed: String = bounded(client.call("Test", "echo", ("through",)))
        .await
        .expect("echo");
    assert_eq!(echoed, "through");
    // The backend hop is plain: the backend sees no identity.
    let seen: Option<String> = bounded(client.call("Who", "identity", ()))
        .await
        .expect("who");
    assert_eq!(seen, None);
    assert_eq!(
        backend.connections(),
        1,
        "one backend connection per client"
    );
}

#[tokio::test]
async fn v1_backend_sees_the_proxy_identity_and_is_pinned() {
    let (identity, front) = front(AuthorizedKeys::any());
    let backend_identity = Arc::new(IdentitySecret::generate());
    // A v1-only backend that lets in nobody but the proxy.
    let backend = Backend::start(
        ServerConfig::encrypted(
            Encryption::new(Arc::clone(&backend_identity))
                .version(EncryptionVersion::V1)
                .authorized(AuthorizedKeys::only([identity.public_key()])),
        ),
        registry(),
    )
    .await;
    let to_backend = Encryption::new(Arc::clone(&identity))
        .version(EncryptionVersion::V1)
        .authorized(AuthorizedKeys::only([backend_identity.public_key()]));
    let config = ProxyConfig::encrypted_backend(front, to_backend).limits(patient_limits());
    let proxy = TestProxy::start(config, TcpConnector::new(backend.addr.to_string())).await;

    let client = proxy.client().await;
    let sum: i64 = bounded(client.call("Test", "add", (20, 22)))
        .await
        .expect("add");
    assert_eq!(sum, 42);
    let seen: Option<String> = bounded(client.call("Who", "identity", ()))
        .await
        .expect("who");
    assert_eq!(
        seen,
        Some(identity.public_key().to_base64()),
        "the backend's client is the proxy"
    );
}

#[tokio::test]
async fn backend_with_another_key_than_the_pinned_one_is_refused_and_the_client_closed() {
    let backend = Backend::start(
        ServerConfig::encrypted(
            Encryption::new(Arc::new(IdentitySecret::generate())).version(EncryptionVersion::V1),
        ),
        registry(),
    )
    .await;
    let (identity, front) = front(AuthorizedKeys::any());
    let pinned = IdentitySecret::generate().public_key();
    let to_backend = Encryption::new(identity)
        .version(EncryptionVersion::V1)
        .authorized(AuthorizedKeys::only([pinned]));
    let config = ProxyConfig::encrypted_backend(front, to_backend).limits(patient_limits());
    let mut proxy = TestProxy::start(config, TcpConnector::new(backend.addr.to_string())).await;

    let client = proxy.client().await;
    let err = connection_error(bounded(client.call::<_, i64>("Test", "add", (1, 2))).await);
    assert!(matches!(*err, Error::Closed), "a clean close, got {err}");
    let outcome = proxy.next_outcome().await;
    let actual = backend.key.expect("an encrypted backend");
    assert!(
        matches!(&outcome, Err(ProxyError::Backend(Error::Auth(AuthError::NotAuthorized(key)))) if *key == actual),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn unauthorized_client_is_refused_at_the_proxy_without_a_backend_connection() {
    let backend = Backend::start(ServerConfig::plain(), registry()).await;
    let allowed = Arc::new(IdentitySecret::generate());
    let (_, front) = front(AuthorizedKeys::only([allowed.public_key()]));
    let config = ProxyConfig::plain_backend(front).limits(patient_limits());
    let mut proxy = TestProxy::start(config, TcpConnector::new(backend.addr.to_string())).await;

    let stranger = Arc::new(IdentitySecret::generate());
    let refused = proxy
        .client_as(Arc::clone(&stranger), EncryptionVersion::V2)
        .await;
    let err = connection_error(bounded(refused.call::<_, i64>("Test", "add", (1, 2))).await);
    // What a v2 server does to a key it does not authorize: the end of the
    // stream before any record.
    assert!(
        matches!(*err, Error::Auth(AuthError::EndedAfterHandshake)),
        "{err}"
    );
    let outcome = proxy.next_outcome().await;
    assert!(
        matches!(&outcome, Err(ProxyError::Client(Error::Auth(AuthError::NotAuthorized(key)))) if *key == stranger.public_key()),
        "{outcome:?}"
    );
    assert_eq!(
        backend.connections(),
        0,
        "no backend connection for a refused client"
    );

    let client = proxy.client_as(allowed, EncryptionVersion::V2).await;
    let sum: i64 = bounded(client.call("Test", "add", (1, 2)))
        .await
        .expect("add");
    assert_eq!((sum, backend.connections()), (3, 1));
}

#[tokio::test]
async fn front_accepting_any_version_serves_and_refuses_v1_clients_by_key() {
    let backend = Backend::start(ServerConfig::plain(), registry()).await;
    let allowed = Arc::new(IdentitySecret::generate());
    let (_, front) = front(AuthorizedKeys::only([allowed.public_key()]));
    let config = ProxyConfig::plain_backend(front.any_version()).limits(patient_limits());
    let mut proxy = TestProxy::start(config, TcpConnector::new(backend.addr.to_string())).await;

    let v1 = proxy
        .client_as(Arc::clone(&allowed), EncryptionVersion::V1)
        .await;
    let sum: i64 = bounded(v1.call("Test", "add", (2, 3)))
        .await
        .expect("v1 add");
    let v2 = proxy.client_as(allowed, EncryptionVersion::V2).await;
    let echoed: String = bounded(v2.call("Test", "echo", ("v2",)))
        .await
        .expect("v2 echo");
    assert_eq!((sum, echoed.as_str(), backend.connections()), (5, "v2", 2));

    let refused = proxy
        .client_as(Arc::new(IdentitySecret::generate()), EncryptionVersion::V1)
        .await;
    let err = connection_error(bounded(refused.call::<_, i64>("Test", "add", (1, 2))).await);
    // What a v1 server does to a key it does not authorize: it closes.
    assert!(matches!(*err, Error::Closed), "{err}");
    let outcome = proxy.next_outcome().await;
    assert!(
        matches!(
            &outcome,
            Err(ProxyError::Client(Error::Auth(AuthError::NotAuthorized(_))))
        ),
        "{outcome:?}"
    );
    assert_eq!(
        backend.connections(),
        2,
        "no backend connection for the refused client"
    );
}

#[tokio::test]
async fn backend_down_closes_the_client_cleanly_before_any_timeout() {
    // Bound, then dropped: nothing listens there.
    let down = loopback().await.local_addr().expect("address");
    let mut proxy =
        TestProxy::start(plain_proxy_config(), TcpConnector::new(down.to_string())).await;

    let client = proxy.client().await;
    let err = connection_error(bounded(client.call::<_, i64>("Test", "add", (1, 2))).await);
    // The proxy's close record: a clean end, neither a cut stream
    // (`Truncated`) nor a refused key (`EndedAfterHandshake`).
    assert!(matches!(*err, Error::Closed), "{err}");
    let outcome = proxy.next_outcome().await;
    assert!(
        matches!(&outcome, Err(ProxyError::Backend(Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{outcome:?}"
    );
}

/// A raw plain backend for one connection: reads the first request, hands
/// its payload over, then does what `then` says with the stream.
async fn raw_backend(
    then: impl FnOnce(TcpStream) -> futures::future::BoxFuture<'static, ()> + Send + 'static,
) -> (SocketAddr, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let listener = loopback().await;
    let addr = listener.local_addr().expect("address");
    let (first, received) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = bytes::BytesMut::new();
        loop {
            if let Ok(Some(frame)) = decoder.decode(&mut buf) {
                let _ = first.send(frame.to_vec());
                break;
            }
            if stream.read_buf(&mut buf).await.expect("read") == 0 {
                return;
            }
        }
        then(stream).await;
    });
    (addr, received)
}

/// Reads from `stream` until its end; returns the bytes.
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    bounded(stream.read_to_end(&mut rest))
        .await
        .expect("read to the end");
    rest
}

#[tokio::test]
async fn client_close_record_closes_the_backend_connection() {
    let (ended, backend_saw_end) = tokio::sync::oneshot::channel();
    let (addr, backend) = raw_backend(move |mut stream| {
        Box::pin(async move {
            // The proxy passes the client's end on: the stream ends.
            let rest = read_to_end(&mut stream).await;
            let _ = ended.send(rest);
        })
    })
    .await;
    let mut proxy =
        TestProxy::start(plain_proxy_config(), TcpConnector::new(addr.to_string())).await;

    let client = proxy.client().await;
    bounded(client.notify("Test", "echo", ("relayed",)))
        .await
        .expect("notify");
    let first = bounded(backend).await.expect("backend");
    let request = mtgnet::proto::wire::parse_request(&first).expect("a request");
    assert_eq!(request.len(), 1);
    let call = request[0].as_ref().expect("a call");
    assert_eq!(
        (call.method.as_str(), call.args.as_str(), call.id.is_none()),
        ("echo", "[\"relayed\"]", true)
    );

    bounded(client.close()).await;
    let rest = bounded(backend_saw_end)
        .await
        .expect("the backend's stream ended");
    assert_eq!(rest, b"", "nothing after the notification, then the end");
    assert!(
        proxy.next_outcome().await.is_ok(),
        "a clean close on both sides"
    );
}

#[tokio::test]
async fn client_cut_without_a_close_record_drops_the_backend_connection() {
    let (ended, backend_saw_end) = tokio::sync::oneshot::channel();
    let (addr, backend) = raw_backend(move |mut stream| {
        Box::pin(async move {
            let _ = ended.send(read_to_end(&mut stream).await);
        })
    })
    .await;
    let mut proxy =
        TestProxy::start(plain_proxy_config(), TcpConnector::new(addr.to_string())).await;

    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let config = client_config(
        Arc::new(IdentitySecret::generate()),
        proxy.key,
        EncryptionVersion::V2,
    );
    let (client, driver) = bounded(Client::new(stream, config))
        .await
        .expect("handshake");
    let driving = tokio::spawn(driver);
    bounded(client.notify("Test", "echo", (1,)))
        .await
        .expect("notify");
    bounded(backend)
        .await
        .expect("the notification reached the backend");
    // The driver goes away with its socket: no close record.
    driving.abort();
    let rest = bounded(backend_saw_end)
        .await
        .expect("the backend's stream ended");
    assert_eq!(rest, b"");
    let outcome = proxy.next_outcome().await;
    assert!(
        matches!(
            &outcome,
            Err(ProxyError::Client(Error::Peer(PeerError::Truncated)))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn backend_close_reaches_a_v2_client_as_a_clean_close() {
    // The backend reads the request and closes without answering.
    let (addr, backend) = raw_backend(|stream| Box::pin(async move { drop(stream) })).await;
    let mut proxy =
        TestProxy::start(plain_proxy_config(), TcpConnector::new(addr.to_string())).await;

    let client = proxy.client().await;
    let err = connection_error(bounded(client.call::<_, i64>("Test", "add", (1, 2))).await);
    assert!(
        matches!(*err, Error::Closed),
        "the proxy's close record, not a cut: {err}"
    );
    assert!(
        !bounded(backend)
            .await
            .expect("the request reached the backend")
            .is_empty()
    );
    let outcome = proxy.next_outcome().await;
    assert!(
        outcome.is_ok(),
        "the backend ended between frames: {outcome:?}"
    );
}

#[tokio::test]
async fn backend_cut_mid_frame_still_closes_the_client_cleanly() {
    let (addr, _backend) = raw_backend(|mut stream| {
        Box::pin(async move {
            let _ = stream.write_all(b"10:[{\"id\"").await;
        })
    })
    .await;
    let mut proxy =
        TestProxy::start(plain_proxy_config(), TcpConnector::new(addr.to_string())).await;

    let client = proxy.client().await;
    let err = connection_error(bounded(client.call::<_, i64>("Test", "add", (1, 2))).await);
    assert!(matches!(*err, Error::Closed), "{err}");
    let outcome = proxy.next_outcome().await;
    assert!(
        matches!(
            &outcome,
            Err(ProxyError::Backend(Error::Peer(PeerError::Framing(_))))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn idle_connection_is_closed_on_both_sides() {
    let (ended, backend_saw_end) = tokio::sync::oneshot::channel();
    let (addr, _backend) = raw_backend(move |mut stream| {
        Box::pin(async move {
            let _ = ended.send(read_to_end(&mut stream).await);
        })
    })
    .await;
    let config =
        plain_proxy_config().limits(patient_limits().idle_timeout(Duration::from_millis(300)));
    let mut proxy = TestProxy::start(config, TcpConnector::new(addr.to_string())).await;

    let client = proxy.client().await;
    bounded(client.notify("Test", "echo", (1,)))
        .await
        .expect("notify");
    let rest = bounded(backend_saw_end)
        .await
        .expect("the backend's stream ended");
    assert_eq!(rest, b"");
    assert!(proxy.next_outcome().await.is_ok());
    let err = connection_error(bounded(client.call::<_, i64>("Test", "add", (1, 2))).await);
    assert!(matches!(*err, Error::Closed), "{err}");
}

#[tokio::test]
async fn batches_notifications_warnings_and_out_of_order_answers_pass_unchanged() {
    let bumps = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&bumps);
    let registry = registry().with(Service::new("Count").method(
        "bump",
        "Counts calls and notifications; returns the count.",
        move |(): ()| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(n) }
        },
    ));
    let backend = Backend::start(ServerConfig::plain(), registry).await;
    let proxy = TestProxy::start(
        plain_proxy_config(),
        TcpConnector::new(backend.addr.to_string()),
    )
    .await;
    let client = proxy.client().await;

    // Three sleeps at once complete shortest first: answers cross the
    // proxy in the order the backend writes them.
    assert_answers_as_each_completes(&client, 200).await;

    let mut batch = Batch::new();
    batch.call(
        "Test",
        "echo",
        RawJson::from_serialize(&("a",)).expect("json"),
    );
    batch.notify("Count", "bump", RawJson::empty_array());
    batch.call("Test", "fail", RawJson::empty_array());
    batch.call(
        "Test",
        "add",
        RawJson::from_serialize(&(1, 2)).expect("json"),
    );
    let results = bounded(client.batch(batch)).await.expect("batch");
    assert_eq!(
        results.len(),
        3,
        "one result per call, none for the notification"
    );
    assert_eq!(results[0].outcome.as_ref().expect("echo").as_str(), "\"a\"");
    assert_eq!(results[1].outcome.as_ref().expect_err("fail").code, 42);
    assert_eq!(results[2].outcome.as_ref().expect("add").as_str(), "3");

    bounded(client.notify("Count", "bump", ()))
        .await
        .expect("notify");
    let count: usize = bounded(client.call("Count", "bump", ()))
        .await
        .expect("bump");
    assert_eq!(count, 3, "both notifications ran before this call");

    let warned = bounded(client.call_result("Test", "warn", ("x",)))
        .await
        .expect("warn");
    assert_eq!(warned.warnings.len(), 1);
    assert_eq!(warned.warnings[0].code, 7);
}

#[tokio::test]
async fn shutdown_lets_the_backend_answer_calls_in_flight_then_closes() {
    let backend = Backend::start(ServerConfig::plain(), registry()).await;
    let (_, front) = front(AuthorizedKeys::any());
    let key = front.public_key();
    let proxy = Proxy::new(
        ProxyConfig::plain_backend(front).limits(patient_limits()),
        TcpConnector::new(backend.addr.to_string()),
    )
    .expect("valid config");
    let listener = loopback().await;
    let addr = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    let serving = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { proxy.serve(listener, shutdown).await }
    });
    let client = bounded(Client::connect(
        addr,
        client_config(
            Arc::new(IdentitySecret::generate()),
            key,
            EncryptionVersion::V2,
        ),
    ))
    .await
    .expect("connect");
    let echoed: u64 = bounded(client.call("Test", "echo", (1,)))
        .await
        .expect("echo");
    assert_eq!(echoed, 1);

    let sleeping = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, u64>("Test", "sleep", (500,)).await }
    });
    // The sleep has reached the backend once a later call has been answered.
    let echoed: u64 = bounded(client.call("Test", "echo", (2,)))
        .await
        .expect("echo");
    assert_eq!(echoed, 2);
    shutdown.trigger();
    let slept = bounded(sleeping).await.expect("task");
    assert_eq!(slept.expect("answered within the grace"), 500);
    bounded(serving)
        .await
        .expect("task")
        .expect("serve returns Ok");
    let err = connection_error(bounded(client.call::<_, u64>("Test", "echo", (3,))).await);
    assert!(matches!(*err, Error::Closed), "{err}");
}

/// Small kernel buffers, so that what the sockets hold is small next to
/// the proxy's byte budget.
const SOCKET_BUFFER: u32 = 32 * 1024;

fn small_socket() -> TcpSocket {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_send_buffer_size(SOCKET_BUFFER)
        .expect("SO_SNDBUF");
    socket
        .set_recv_buffer_size(SOCKET_BUFFER)
        .expect("SO_RCVBUF");
    socket
}

/// A loopback listener whose accepted sockets have small buffers.
fn small_listener() -> TcpListener {
    let socket = small_socket();
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    socket.listen(16).expect("listen")
}

/// Backend connections with small buffers.
struct SmallTcp(SocketAddr);

impl Connector for SmallTcp {
    type Io = TcpStream;

    async fn connect(&self) -> std::io::Result<TcpStream> {
        small_socket().connect(self.0).await
    }
}

/// A stream whose reads wait while its gate is shut: a client that stops
/// reading without the test's control over its sends.
struct Gated {
    io: TcpStream,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    shut: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    fn open(&self) {
        self.shut.store(false, Ordering::SeqCst);
        self.waker.wake();
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.gate.shut.load(Ordering::SeqCst) {
            self.gate.waker.register(cx.waker());
            if self.gate.shut.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn proxy_stops_reading_the_backend_while_its_client_reads_nothing() {
    const ANSWER: usize = 128 * 1024;
    const CALLS: usize = 64;
    const BUDGET: usize = 512 * 1024;
    // Where answers can be once the backend has handled them, when nothing
    // reads at the client: four socket buffers (the kernel doubles what is
    // asked), the proxy's direction budget (half of BUDGET) plus the answer
    // that crossed it, the answer it is reading, and the backend's answer
    // being written. Twice that, in answers, is the most the backend may
    // handle; a proxy that kept reading would let it handle all CALLS.
    let path = 4 * 2 * SOCKET_BUFFER as usize + BUDGET / 2 + 3 * ANSWER;
    let most = 2 * path / ANSWER;
    assert!(most < CALLS / 2, "the test must be able to tell: {most}");

    let handled = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handled);
    let registry = Registry::new().with(Service::new("Big").method(
        "blob",
        "A string of n bytes.",
        move |(n,): (usize,)| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok("b".repeat(n)) }
        },
    ));
    // One call at a time: the backend reads the next request only once the
    // last answer is written, so what it handles follows what the proxy reads.
    let backend = Backend::start_on(
        small_listener(),
        ServerConfig::plain().limits(patient_limits().max_in_flight(1)),
        registry,
    );
    let config = plain_proxy_config().limits(patient_limits().max_connection_bytes(BUDGET));
    let proxy = TestProxy::start_on(small_listener(), config, SmallTcp(backend.addr));

    let gate = Arc::new(Gate::default());
    let stream = small_socket().connect(proxy.addr).await.expect("connect");
    let gated = Gated {
        io: stream,
        gate: Arc::clone(&gate),
    };
    let config = client_config(
        Arc::new(IdentitySecret::generate()),
        proxy.key,
        EncryptionVersion::V2,
    );
    let (client, driver) = bounded(Client::new(gated, config))
        .await
        .expect("handshake");
    tokio::spawn(driver);
    gate.shut.store(true, Ordering::SeqCst);

    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call::<_, String>("Big", "blob", (ANSWER,)).await })
        })
        .collect();
    // Until the backend has handled every call (the bug), or has handled
    // none more for a second (the proxy stopped reading it).
    let stalled = bounded(async {
        let mut last = (usize::MAX, 0);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = handled.load(Ordering::SeqCst);
            last = if now == last.0 {
                (now, last.1 + 1)
            } else {
                (now, 0)
            };
            if now == CALLS || (now > 0 && last.1 >= 10) {
                return now;
            }
        }
    })
    .await;
    assert!(
        stalled <= most,
        "the backend handled {stalled} of {CALLS} calls of {ANSWER} bytes while the client read nothing; \
         at most {most} fit the path with a budget of {BUDGET} bytes"
    );

    gate.open();
    for call in calls {
        let answer = bounded(call)
            .await
            .expect("task")
            .expect("answered once the client reads");
        assert_eq!(answer.len(), ANSWER);
    }
    assert_eq!(handled.load(Ordering::SeqCst), CALLS);
}
