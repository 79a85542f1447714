//! A server on 127.0.0.1:0 for one test, stopped when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Encryption, IdentitySecret, Limits, Registry, Server,
    ServerConfig, Service, Shutdown,
};
use tokio::task::JoinHandle;

/// Every wait in these tests is bounded by this.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) identity: Option<Arc<IdentitySecret>>,
    /// What its clients speak: v2, unless the server speaks only v1.
    pub(crate) client_version: mtgnet::EncryptionVersion,
    stop: Shutdown,
    pub(crate) task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub(crate) async fn plain() -> TestServer {
        TestServer::start(ServerConfig::plain(), None, registry()).await
    }

    /// An encrypted server accepting any client, with the default 10 s handshake bound.
    pub(crate) async fn encrypted() -> TestServer {
        TestServer::encrypted_with_timeout(
            AuthorizedKeys::any(),
            Limits::default(),
            Duration::from_secs(10),
        )
        .await
    }

    /// An encrypted server with a short (2 s) handshake bound, for attacks.
    pub(crate) async fn encrypted_with(authorized: AuthorizedKeys, limits: Limits) -> TestServer {
        TestServer::encrypted_with_timeout(authorized, limits, Duration::from_secs(2)).await
    }

    /// An encrypted server with the given handshake bound.
    pub(crate) async fn encrypted_with_timeout(
        authorized: AuthorizedKeys,
        limits: Limits,
        handshake: Duration,
    ) -> TestServer {
        TestServer::encrypted_version(None, authorized, limits, handshake).await
    }

    /// An encrypted server speaking only `version`, or (`None`) both.
    pub(crate) async fn encrypted_version(
        version: Option<mtgnet::EncryptionVersion>,
        authorized: AuthorizedKeys,
        limits: Limits,
        handshake: Duration,
    ) -> TestServer {
        let identity = Arc::new(IdentitySecret::generate());
        let mut encryption = Encryption::new(Arc::clone(&identity))
            .authorized(authorized)
            .handshake_timeout(handshake);
        if let Some(version) = version {
            encryption = encryption.version(version);
        }
        let config = ServerConfig::encrypted(encryption).limits(limits);
        let mut server = TestServer::start(config, Some(identity), registry()).await;
        server.client_version = version.unwrap_or(mtgnet::EncryptionVersion::V2);
        server
    }

    pub(crate) async fn start(
        config: ServerConfig,
        identity: Option<Arc<IdentitySecret>>,
        registry: Registry,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        TestServer::serve(listener, config, identity, registry)
    }

    /// A server on `addr`, the address of a server that was just stopped
    /// (a restart): tokio's listeners set `SO_REUSEADDR`, so the port is
    /// free again at once even with connections in `TIME_WAIT`.
    pub(crate) async fn start_on(
        addr: SocketAddr,
        config: ServerConfig,
        identity: Option<Arc<IdentitySecret>>,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("rebind the port of the stopped server");
        TestServer::serve(listener, config, identity, registry())
    }

    fn serve(
        listener: tokio::net::TcpListener,
        config: ServerConfig,
        identity: Option<Arc<IdentitySecret>>,
        registry: Registry,
    ) -> TestServer {
        let addr = listener.local_addr().expect("bound address");
        let server = Server::new(registry, config).expect("valid limits");
        let stop = Shutdown::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { server.serve(listener, stop).await }
        });
        TestServer {
            addr,
            identity,
            client_version: mtgnet::EncryptionVersion::V2,
            stop,
            task: Some(task),
        }
    }

    /// A client configured to match this server (encrypted or not).
    pub(crate) fn client_config(&self) -> ClientConfig {
        match &self.identity {
            None => ClientConfig::plain(),
            Some(identity) => ClientConfig::encrypted(
                Encryption::new(Arc::new(IdentitySecret::generate()))
                    .authorized(AuthorizedKeys::only([identity.public_key()]))
                    .version(self.client_version),
            ),
        }
    }

    pub(crate) async fn client(&self) -> Client {
        bounded(Client::connect(self.addr, self.client_config()))
            .await
            .expect("client connects")
    }

    /// Stops the server as a crash would: its task and every connection
    /// task are dropped mid-way. Returns once the listener is closed.
    pub(crate) async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let ended = bounded(task).await;
            assert!(
                ended.is_err_and(|e| e.is_cancelled()),
                "the server was running"
            );
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    pub(crate) async fn shutdown(&mut self) {
        self.stop.trigger();
        if let Some(task) = self.task.take() {
            bounded(task)
                .await
                .expect("serve task")
                .expect("serve returns Ok");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The services every test server hosts: `Test`, plus `Who` (peer identity).
pub(crate) fn registry() -> Registry {
    Registry::new().with(mtgnet::demo::test_service()).with(
        Service::new("Who")
            .method_with_context(
                "identity",
                "The caller's identity key, base64, or null on a plain connection.",
                |ctx: mtgnet::Context, (): ()| async move {
                    Ok(ctx.peer().identity.map(|key| key.to_base64()))
                },
            )
            .method_with_context(
                "grumble",
                "Fails, with a warning on the way.",
                |ctx: mtgnet::Context, (): ()| async move {
                    ctx.warn(mtgnet::Condition::new("mood", "grumpy"));
                    Err::<(), _>(mtgnet::Condition::new("refused", "not today"))
                },
            ),
    )
}

/// Awaits `future`, failing the test if it takes longer than [`BOUND`].
pub(crate) async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(BOUND, future)
        .await
        .expect("finished within the bound")
}

/// A fake server that reads one request, writes `reply` (raw bytes), then
/// closes the connection after `linger`. For testing what a client does
/// with broken or dying servers.
pub(crate) async fn scripted_server(
    reply: impl Into<Vec<u8>>,
    linger: Duration,
) -> std::net::SocketAddr {
    let reply = reply.into();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 256];
        let _ = socket.read(&mut buf).await;
        let _ = socket.write_all(&reply).await;
        tokio::time::sleep(linger).await;
    });
    addr
}

/// Sends sleeps of 3, 1 and 2 units (in that order) at once on one
/// connection and checks they complete shortest first: a server answering
/// in request order, or one call at a time, would finish them 3, 1, 2.
pub(crate) async fn assert_answers_as_each_completes(client: &Client, unit_ms: u64) {
    let finished = std::sync::Mutex::new(Vec::new());
    let sleep = |ms: u64| {
        let finished = &finished;
        async move {
            let got: u64 = client.call("Test", "sleep", (ms,)).await.expect("sleep");
            finished.lock().expect("lock").push(got);
        }
    };
    bounded(async { futures::join!(sleep(3 * unit_ms), sleep(unit_ms), sleep(2 * unit_ms)) }).await;
    assert_eq!(
        *finished.lock().expect("lock"),
        [unit_ms, 2 * unit_ms, 3 * unit_ms],
        "answered as each completed"
    );
}
