//! The async client: a cheap, cloneable [`Client`] handle, whose
//! [`ClientDriver`] (in `driver.rs`) runs the connection and reconnects.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use mtgnet_encryption::PublicKey;
use mtgnet_proto::client::Batch;
use mtgnet_proto::wire::CallResult;
use mtgnet_proto::{Condition, RawJson};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::ToSocketAddrs;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::config::ClientConfig;
use crate::connection::{Connection, Refused, Sent};
use crate::driver::{self, ClientDriver, Dial, Route, Shared};
use crate::error::{CallError, ConfigError, Error};
use crate::reconnect::ClientState;
use crate::tcp;

/// A successful call's data, with the warnings that came with it.
///
/// ```
/// # use mtgnet::{demo, Client, ClientConfig, Registry, Server, ServerConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = Server::new(Registry::new().with(demo::test_service()), ServerConfig::plain())?;
/// # let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// # let shutdown = mtgnet::Shutdown::new();
/// # tokio::spawn(async move { server.serve_connection(server_io, None, shutdown).await });
/// # let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
/// # tokio::spawn(driver);
/// // `client` is connected to a server hosting `mtgnet::demo::test_service()`.
/// let reply = client.call_reply("Test", "warn", ("x",)).await?;
/// for warning in &reply.warnings {
///     eprintln!("warning {}: {}", warning.code, warning.message);
/// }
/// assert_eq!(reply.warnings[0].message, "careful");
/// let value: String = reply.deserialize()?;
/// assert_eq!(value, "x");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Reply {
    /// The returned data, unparsed.
    pub data: RawJson,
    /// Conditions that did not stop the call.
    pub warnings: Vec<Condition>,
}

impl Reply {
    /// Parses the data into `T`.
    ///
    /// # Errors
    ///
    /// [`CallError::Decode`] when the data does not fit `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        self.data
            .deserialize()
            .map_err(|e| CallError::Decode(Arc::new(e)))
    }
}

/// A connection to an MTGNet server: cheap to clone, usable from many tasks
/// at once; calls made concurrently are pipelined on the one connection.
///
/// With a [reconnect policy](ClientConfig::reconnect) it survives the
/// server: when the connection drops it connects again, and the same
/// handle works again without the caller doing anything; see
/// [`Client::state`] to observe it.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use mtgnet::{Client, ClientConfig, Reconnect};
///
/// let client = Client::connect("127.0.0.1:7707", ClientConfig::plain()).await?;
/// let sum: i64 = client.call("Test", "add", (2, 3)).await?;
/// let version: serde_json::Value = client.call("System", "rpcVersion", ()).await?;
/// client.notify("Test", "echo", ("fire and forget",)).await?;
///
/// // One that reconnects when the server restarts.
/// let lasting = Client::connect("127.0.0.1:7707", ClientConfig::plain().reconnect(Reconnect::new())).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    /// Where calls go now. The driver sees when every handle is gone by
    /// these receivers: hold none anywhere else.
    route: watch::Receiver<Route>,
    state: watch::Receiver<ClientState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let in_flight = match &*self.route.borrow() {
            Route::Up(connection) => connection.in_flight(),
            Route::Down | Route::Ended(_) => 0,
        };
        f.debug_struct("Client")
            .field("state", &*self.state.borrow())
            .field("peer_identity", &self.peer_identity())
            .field("in_flight", &in_flight)
            .finish()
    }
}

impl Client {
    /// Connects over TCP within the
    /// [connect timeout](ClientConfig::connect_timeout) (with
    /// `TCP_NODELAY` and [keepalive](ClientConfig::tcp_keepalive)), runs
    /// the handshake when the config is encrypted, and spawns the driver
    /// on the current tokio runtime.
    ///
    /// With a [reconnect policy](ClientConfig::reconnect), the driver
    /// reconnects to the addresses `addr` resolved to now; to resolve a
    /// name again on every attempt, use [`Client::with_connector`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for settings that cannot work (checked before
    /// connecting); resolving or connecting fails or times out, or the
    /// handshake does (size, timeout, closed, invalid signature, server
    /// not authorized). The first connection is not retried.
    pub async fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, Error> {
        config.validate()?;
        let addrs: Arc<[SocketAddr]> =
            within_connect_timeout(&config, tokio::net::lookup_host(addr))
                .await?
                .collect();
        let keepalive = config.keepalive_idle();
        let connector = move || tcp::connect(Arc::clone(&addrs), keepalive);
        let (client, driver) = Client::with_connector(connector, config).await?;
        tokio::spawn(driver);
        Ok(client)
    }

    /// Connects to a server on a Unix-domain socket at `path` (again on
    /// every reconnect, with a [reconnect policy](ClientConfig::reconnect)),
    /// runs the handshake when the config is encrypted, and spawns the
    /// driver on the current tokio runtime. The server sees this process's
    /// user, group and process ids.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    #[cfg(unix)]
    pub async fn connect_unix(
        path: impl AsRef<std::path::Path>,
        config: ClientConfig,
    ) -> Result<Client, Error> {
        config.validate()?;
        let path: Arc<std::path::Path> = path.as_ref().into();
        let connector = move || tokio::net::UnixStream::connect(Arc::clone(&path));
        let (client, driver) = Client::with_connector(connector, config).await?;
        tokio::spawn(driver);
        Ok(client)
    }

    /// Sets up a client over streams that `connector` opens: once now,
    /// and (with a [reconnect policy](ClientConfig::reconnect)) again
    /// whenever the connection drops. The caller runs the driver. Each
    /// call of `connector` is bounded by the
    /// [connect timeout](ClientConfig::connect_timeout); the handshake runs
    /// over every stream it opens.
    ///
    /// Any byte stream will do: a Unix-domain socket, a TCP stream with
    /// options of your own, a name resolved again on every attempt.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use mtgnet::{Client, ClientConfig, Reconnect};
    ///
    /// let config = ClientConfig::plain().reconnect(Reconnect::new());
    /// let (client, driver) = Client::with_connector(
    ///     || tokio::net::TcpStream::connect("rpc.example.com:7707"),
    ///     config,
    /// )
    /// .await?;
    /// tokio::spawn(driver);
    /// let sum: i64 = client.call("Test", "add", (2, 3)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Client::connect`], for the settings, the first connection and
    /// its handshake.
    pub async fn with_connector<C, F, S>(
        mut connector: C,
        config: ClientConfig,
    ) -> Result<(Client, ClientDriver), Error>
    where
        C: FnMut() -> F + Send + 'static,
        F: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        config.validate()?;
        let max_in_flight = config.in_flight_cap()?;
        let io = within_connect_timeout(&config, connector()).await?;
        let first = Connection::open(io, &config, max_in_flight).await?;
        let dial = config.reconnect_policy().map(|_| {
            // Every reconnect must reach the server the client first met.
            let config = Arc::new(config.pinned_to(first.0.peer_identity()));
            Box::new(move || {
                let connecting = connector();
                let config = Arc::clone(&config);
                Box::pin(async move {
                    let io = within_connect_timeout(&config, connecting).await?;
                    Connection::open(io, &config, max_in_flight).await
                }) as BoxFuture<'static, _>
            }) as Dial
        });
        Ok(Client::start(first, dial, config, max_in_flight))
    }

    /// Sets up a client over any byte stream; the caller runs the driver.
    /// It cannot reconnect (it has no way to open another stream), so a
    /// [reconnect policy](ClientConfig::reconnect) is refused: see
    /// [`Client::with_connector`].
    ///
    /// # Errors
    ///
    /// As [`Client::connect`], for the settings and the handshake;
    /// [`ConfigError::NotApplicable`] for a reconnect policy.
    pub async fn new<S>(io: S, config: ClientConfig) -> Result<(Client, ClientDriver), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        config.validate()?;
        let max_in_flight = config.in_flight_cap()?;
        if config.reconnect_policy().is_some() {
            return Err(ConfigError::NotApplicable {
                setting: "reconnect",
                reason: "Client::new has one stream and no way to open another; use Client::with_connector or Client::connect",
            }
            .into());
        }
        let first = Connection::open(io, &config, max_in_flight).await?;
        Ok(Client::start(first, None, config, max_in_flight))
    }

    fn start(
        first: (Connection, crate::connection::Driving),
        dial: Option<Dial>,
        config: ClientConfig,
        max_in_flight: std::num::NonZeroUsize,
    ) -> (Client, ClientDriver) {
        let shared = Arc::new(Shared {
            config,
            max_in_flight,
            slots: Arc::new(Semaphore::new(max_in_flight.get())),
            close: CancellationToken::new(),
            peer_identity: first.0.peer_identity(),
        });
        let (route, state, driver) = driver::start(first, dial, &shared);
        (
            Client {
                shared,
                route,
                state,
            },
            driver,
        )
    }

    /// The server's identity key, on an encrypted connection (the seed's
    /// `remote-key`). It is the same for the client's whole life: a
    /// reconnect must reach a server that proves this same key.
    pub fn peer_identity(&self) -> Option<&PublicKey> {
        self.shared.peer_identity.as_ref()
    }

    /// Where the client stands now: connected, reconnecting (which
    /// attempt), or ended (failed, with the reason, or closed).
    ///
    /// ```
    /// # use mtgnet::{demo, Client, ClientConfig, ClientState, Registry, Server, ServerConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = Server::new(Registry::new().with(demo::test_service()), ServerConfig::plain())?;
    /// # let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    /// # tokio::spawn(async move { server.serve_connection(server_io, None, mtgnet::Shutdown::new()).await });
    /// let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
    /// tokio::spawn(driver);
    /// assert!(matches!(client.state(), ClientState::Connected));
    /// client.close().await;
    /// assert!(matches!(client.state(), ClientState::Closed));
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> ClientState {
        self.state.borrow().clone()
    }

    /// Every change of [`Client::state`], as a `watch` receiver: its
    /// [`changed`](watch::Receiver::changed) resolves at the next change
    /// (and fails once the state is final and the driver has finished).
    /// Holding it does not keep the client alive.
    ///
    /// ```no_run
    /// # async fn example(client: mtgnet::Client) {
    /// use mtgnet::ClientState;
    ///
    /// let mut states = client.state_changes();
    /// while states.changed().await.is_ok() {
    ///     match &*states.borrow() {
    ///         ClientState::Reconnecting { attempt } => eprintln!("reconnecting, attempt {attempt}"),
    ///         ClientState::Failed(reason) => eprintln!("gave up: {reason}"),
    ///         other => eprintln!("{other:?}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn state_changes(&self) -> watch::Receiver<ClientState> {
        let mut states = self.state.clone();
        states.mark_unchanged();
        states
    }

    /// Whether the client has ended: every call now fails. A client that
    /// is reconnecting has not ended.
    pub fn is_closed(&self) -> bool {
        match &*self.route.borrow() {
            Route::Ended(_) => true,
            Route::Up(connection) => {
                connection.is_ended() && self.shared.config.reconnect_policy().is_none()
            }
            Route::Down => false,
        }
    }

    /// Closes the client: stops reconnecting, closes the connection (what
    /// is queued is written first), and waits until the driver has stopped
    /// and the socket is closed. Calls still waiting fail with
    /// [`Error::Closed`], and so does every later call, on every clone of
    /// this client. The state becomes [`ClientState::Closed`] (unless the
    /// client had ended already).
    pub async fn close(&self) {
        self.shared.close.cancel();
        let mut state = self.state.clone();
        // An error means the driver is gone: the socket is gone as well.
        let _ = state.wait_for(ClientState::is_final).await;
    }

    /// Calls `service.method(args...)` and reads the result into `R`.
    ///
    /// `args` is anything that serializes to a JSON array: a tuple (`(a, b)`,
    /// `(x,)`, `()` for none), an array or a `Vec`.
    ///
    /// Waits for a free slot first when
    /// [`ClientConfig::max_in_flight`] calls are in flight already, and
    /// for the next connection while the client
    /// [reconnects](ClientConfig::reconnect).
    ///
    /// # Errors
    ///
    /// [`CallError::Remote`] when the server answers with an error,
    /// [`CallError::Timeout`] (see [`ClientConfig::call_timeout`]),
    /// [`CallError::Connection`] when the connection fails while the call
    /// is in flight (it may have run), or the client has ended
    /// ([`Error::GaveUp`], [`Error::Closed`], ...),
    /// [`CallError::Arguments`]/[`CallError::Decode`] for JSON that does not fit.
    pub async fn call<A, R>(&self, service: &str, method: &str, args: A) -> Result<R, CallError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        self.call_reply(service, method, args).await?.deserialize()
    }

    /// Like [`Client::call`], returning the raw data and the warnings.
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn call_reply<A: Serialize>(
        &self,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<Reply, CallError> {
        let result = self.call_result(service, method, args).await?;
        match result.outcome {
            Ok(data) => Ok(Reply {
                data,
                warnings: result.warnings,
            }),
            Err(condition) => Err(CallError::Remote(condition)),
        }
    }

    /// Makes one call and returns its whole result object: the data or the
    /// error condition, and the warnings in either case (a failed call can
    /// carry warnings too).
    ///
    /// # Errors
    ///
    /// As [`Client::call`], except that a remote error is not an `Err`
    /// here but the result's `outcome`.
    pub async fn call_result<A: Serialize>(
        &self,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<CallResult, CallError> {
        let mut batch = Batch::new();
        batch.call(service, method, args_json(&args)?);
        let mut results = self.batch(batch).await?;
        // One call in, one result out: `ClientCore` completes a request
        // only with exactly its calls' results.
        results
            .pop()
            .ok_or_else(|| CallError::Connection(Arc::new(Error::Closed)))
    }

    /// Sends a notification: the server runs it and sends nothing back.
    ///
    /// Returns once the request is queued for writing.
    ///
    /// # Errors
    ///
    /// [`CallError::Arguments`], [`CallError::Timeout`] when the queue
    /// stays full (or, while the client reconnects, no connection comes)
    /// for the call timeout, or [`CallError::Connection`] when the client
    /// has ended.
    pub async fn notify<A: Serialize>(
        &self,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<(), CallError> {
        let mut batch = Batch::new();
        batch.notify(service, method, args_json(&args)?);
        self.batch(batch).await.map(drop)
    }

    /// Sends a notification and returns once the socket has accepted all
    /// of its frame, so that it is not lost if the client (or its runtime)
    /// goes away right after.
    #[cfg(feature = "blocking")]
    pub(crate) async fn notify_written<A: Serialize>(
        &self,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<(), CallError> {
        let mut batch = Batch::new();
        batch.notify(service, method, args_json(&args)?);
        self.within_call_timeout(async {
            let (connection, sent) = self.send(&batch).await?;
            connection.written_past(sent.end).await
        })
        .await
    }

    /// Sends many calls and notifications as one request and waits for the
    /// one response; results come in the order the calls were added (each
    /// with its own outcome: one call failing does not fail the others).
    ///
    /// The batch takes one slot per call (every slot, if it has more calls
    /// than [`ClientConfig::max_in_flight`]), waiting for them first.
    /// An empty batch sends nothing; a batch of only notifications takes no
    /// slot and returns an empty vector once queued.
    ///
    /// # Errors
    ///
    /// [`CallError::Timeout`] or [`CallError::Connection`] for the request as a whole.
    pub async fn batch(&self, batch: Batch) -> Result<Vec<CallResult>, CallError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.within_call_timeout(self.exchange(&batch)).await
    }

    async fn within_call_timeout<T>(
        &self,
        work: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        match self.shared.config.timeout() {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or(Err(CallError::Timeout)),
            None => work.await,
        }
    }

    /// Sends the batch and waits for its response.
    async fn exchange(&self, batch: &Batch) -> Result<Vec<CallResult>, CallError> {
        let (connection, sent) = self.send(batch).await?;
        match sent.answer {
            Some(answer) => connection.answer(answer).await,
            None => Ok(Vec::new()),
        }
    }

    /// Waits for the batch's slots, then for a connection (while the
    /// client reconnects), and sends the batch on it.
    async fn send(&self, batch: &Batch) -> Result<(Connection, Sent), CallError> {
        let needed = batch.calls().min(self.shared.max_in_flight.get());
        let mut slots = if needed == 0 {
            None
        } else {
            // `needed` is at most the checked cap, which fits a u32.
            let count = u32::try_from(needed).unwrap_or(u32::MAX);
            let acquired = Arc::clone(&self.shared.slots)
                .acquire_many_owned(count)
                .await;
            Some(acquired.map_err(|_| self.ended_error())?)
        };
        loop {
            let route = self.route.borrow().clone();
            match route {
                Route::Up(connection) => match connection.send(batch, slots).await {
                    Ok(sent) => return Ok((connection, sent)),
                    Err(Refused::Failed(e)) => return Err(e),
                    Err(Refused::Ended(returned)) => {
                        // It never left: it goes to the next connection.
                        slots = returned;
                        self.route_leaves(|route| !route.is_up(&connection)).await?;
                    }
                },
                Route::Down => {
                    self.route_leaves(|route| !matches!(route, Route::Down))
                        .await?;
                }
                Route::Ended(reason) => return Err(CallError::Connection(reason)),
            }
        }
    }

    /// Waits until the route satisfies `moved`.
    async fn route_leaves(&self, moved: impl FnMut(&Route) -> bool) -> Result<(), CallError> {
        let mut route = self.route.clone();
        // The driver publishes its end before it goes: an error here
        // means it has ended.
        match route.wait_for(moved).await {
            Ok(_) => Ok(()),
            Err(_) => Err(self.ended_error()),
        }
    }

    /// The error of a call made after the client ended.
    fn ended_error(&self) -> CallError {
        match &*self.route.borrow() {
            Route::Ended(reason) => CallError::Connection(Arc::clone(reason)),
            Route::Up(_) | Route::Down => CallError::Connection(Arc::new(Error::Closed)),
        }
    }
}

/// Bounds connecting by the connect timeout.
async fn within_connect_timeout<T>(
    config: &ClientConfig,
    connecting: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let limit = config.connect_time_limit();
    tokio::time::timeout(limit, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting timed out after {limit:?}"),
            ))
        })
}

/// Serializes call arguments: a JSON array, or `()` (JSON `null`) for none.
pub(crate) fn args_json<A: Serialize>(args: &A) -> Result<RawJson, CallError> {
    let json = RawJson::from_serialize(args).map_err(|e| CallError::Arguments(Arc::new(e)))?;
    if json.is_null() {
        return Ok(RawJson::empty_array());
    }
    if !json.as_str().starts_with('[') {
        let e = serde::ser::Error::custom("arguments must serialize to a JSON array, e.g. a tuple");
        return Err(CallError::Arguments(Arc::new(e)));
    }
    Ok(json)
}
