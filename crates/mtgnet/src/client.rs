//! The async client: a cheap, cloneable [`Client`] handle and the
//! [`ClientDriver`] that owns the connection.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::future::BoxFuture;
use mtgnet_encryption::PublicKey;
use mtgnet_proto::client::{Batch, ClientCore, RequestKey};
use mtgnet_proto::wire::CallResult;
use mtgnet_proto::{Condition, RawJson};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::config::ClientConfig;
use crate::error::{CallError, Error};
use crate::transport::{self, Framer, MessageReader};

/// Requests queued for the writer before callers wait (back-pressure).
const OUTGOING_QUEUE: usize = 256;

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

/// State shared by the handles and the driver's reader.
#[derive(Default)]
struct State {
    core: ClientCore,
    waiters: HashMap<RequestKey, oneshot::Sender<Vec<CallResult>>>,
    /// Set once, when the connection ends; every later call fails with it.
    closed: Option<Arc<Error>>,
}

type SharedState = Arc<Mutex<State>>;

fn lock(state: &SharedState) -> MutexGuard<'_, State> {
    // A panic while holding this lock cannot leave the table half-updated
    // in a way that matters more than losing the connection would.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection to an MTGNet server: cheap to clone, usable from many tasks
/// at once; calls made concurrently are pipelined on the one connection.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use mtgnet::{Client, ClientConfig};
///
/// let client = Client::connect("127.0.0.1:7707", ClientConfig::plain()).await?;
/// let sum: i64 = client.call("Test", "add", (2, 3)).await?;
/// let version: serde_json::Value = client.call("System", "rpcVersion", ()).await?;
/// client.notify("Test", "echo", ("fire and forget",)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    state: SharedState,
    outgoing: mpsc::Sender<BytesMut>,
    /// Frames (and seals) requests in the calling task.
    framer: Framer,
    config: Arc<ClientConfig>,
    peer_identity: Option<PublicKey>,
    /// Asks the driver to close the connection now.
    close: Arc<Notify>,
    /// Turns `true` once the driver has finished and the socket is closed.
    finished: watch::Receiver<bool>,
}

/// Owns the connection of a [`Client`]: reads responses, writes requests.
///
/// It must be polled (spawned) for the client to make progress, and it
/// finishes when the connection ends: when the peer closes it, after a
/// fatal error, or once every `Client` handle has been dropped.
///
/// ```
/// use mtgnet::{demo, Client, ClientConfig, Registry, Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::new(Registry::new().with(demo::test_service()), ServerConfig::plain())?;
/// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// let shutdown = mtgnet::Shutdown::new();
/// tokio::spawn(async move { server.serve_connection(server_io, None, shutdown).await });
///
/// let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
/// let driver = tokio::spawn(driver);
/// let echoed: String = client.call("Test", "echo", ("hi",)).await?;
/// assert_eq!(echoed, "hi");
///
/// drop(client);
/// driver.await?;
/// # Ok(()) }
/// ```
#[must_use = "a client makes no progress unless its driver is spawned or awaited"]
pub struct ClientDriver {
    future: BoxFuture<'static, ()>,
}

impl Future for ClientDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for ClientDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientDriver")
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer_identity", &self.peer_identity)
            .field("in_flight", &lock(&self.state).core.in_flight())
            .finish()
    }
}

impl Client {
    /// Connects over TCP (with `TCP_NODELAY`), runs the handshake when the
    /// config is encrypted, and spawns the driver on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// Connecting fails, or the handshake does (size, timeout, closed,
    /// invalid signature, server not authorized).
    pub async fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (client, driver) = Client::new(stream, config).await?;
        tokio::spawn(driver);
        Ok(client)
    }

    /// Sets up a client over any byte stream; the caller runs the driver.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`], for the handshake.
    pub async fn new<S>(mut io: S, config: ClientConfig) -> Result<(Client, ClientDriver), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut buf = BytesMut::new();
        let session = match config.encryption() {
            Some(encryption) => Some(Arc::new(
                transport::handshake(&mut io, &mut buf, encryption).await?,
            )),
            None => None,
        };
        let peer_identity = session.as_ref().map(|s| *s.peer_identity());
        let (rd, wr) = tokio::io::split(io);
        let reader = MessageReader::new(rd, buf, config.frame_limit(), session.clone());
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        let state = SharedState::default();
        let close = Arc::new(Notify::new());
        let (finish, finished) = watch::channel(false);
        let driver = drive(reader, wr, queue, Arc::clone(&state), Arc::clone(&close));
        let future = async move {
            driver.await;
            let _ = finish.send(true);
        };
        let client = Client {
            state,
            outgoing,
            framer: Framer::new(session),
            config: Arc::new(config),
            peer_identity,
            close,
            finished,
        };
        Ok((
            client,
            ClientDriver {
                future: Box::pin(future),
            },
        ))
    }

    /// The server's identity key, on an encrypted connection (the seed's `remote-key`).
    pub fn peer_identity(&self) -> Option<&PublicKey> {
        self.peer_identity.as_ref()
    }

    /// Whether the connection has ended; every call now fails.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed.is_some() || self.outgoing.is_closed()
    }

    /// Closes the connection: calls still waiting fail with
    /// [`Error::Closed`], and the socket is closed once the driver has
    /// stopped, which this waits for. Every clone of this client is closed.
    pub async fn close(&self) {
        self.close.notify_one();
        let mut finished = self.finished.clone();
        // An error means the driver was dropped: the socket is gone as well.
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Calls `service.method(args...)` and reads the result into `R`.
    ///
    /// `args` is anything that serializes to a JSON array: a tuple (`(a, b)`,
    /// `(x,)`, `()` for none), an array or a `Vec`.
    ///
    /// # Errors
    ///
    /// [`CallError::Remote`] when the server answers with an error,
    /// [`CallError::Timeout`], [`CallError::Connection`] when the connection
    /// fails, [`CallError::Arguments`]/[`CallError::Decode`] for JSON that
    /// does not fit.
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
    /// [`CallError::Arguments`], or [`CallError::Connection`] when the connection has ended.
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

    /// Sends many calls and notifications as one request and waits for the
    /// one response; results come in the order the calls were added (each
    /// with its own outcome: one call failing does not fail the others).
    ///
    /// An empty batch sends nothing; a batch of only notifications returns
    /// an empty vector once sent.
    ///
    /// # Errors
    ///
    /// [`CallError::Timeout`] or [`CallError::Connection`] for the request as a whole.
    pub async fn batch(&self, batch: Batch) -> Result<Vec<CallResult>, CallError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let permit = self
            .outgoing
            .reserve()
            .await
            .map_err(|_| self.closed_error())?;
        let mut payload = Vec::with_capacity(64 * batch.len());
        let (key, receiver) = {
            let mut state = lock(&self.state);
            if let Some(e) = &state.closed {
                return Err(CallError::Connection(Arc::clone(e)));
            }
            let key = state
                .core
                .encode_request(&batch, &mut payload)
                .map_err(|e| CallError::Arguments(Arc::new(e)))?;
            let receiver = key.map(|key| {
                let (sender, receiver) = oneshot::channel();
                state.waiters.insert(key, sender);
                (key, receiver)
            });
            (key, receiver)
        };
        // Registered and sent with no await in between: a cancelled caller
        // never leaves a request registered but unsent.
        permit.send(self.framer.frame(&payload));
        let (Some(key), Some((_, receiver))) = (key, receiver) else {
            return Ok(Vec::new());
        };
        let mut guard = Abandon {
            state: &self.state,
            key,
            armed: true,
        };
        let outcome = match self.config.timeout() {
            Some(limit) => match tokio::time::timeout(limit, receiver).await {
                Ok(received) => received.map_err(|_| self.closed_error()),
                Err(_) => Err(CallError::Timeout),
            },
            None => receiver.await.map_err(|_| self.closed_error()),
        };
        guard.armed = outcome.is_err();
        outcome
    }

    fn closed_error(&self) -> CallError {
        let reason = lock(&self.state).closed.clone();
        CallError::Connection(reason.unwrap_or_else(|| Arc::new(Error::Closed)))
    }
}

/// Serializes call arguments: a JSON array, or `()` (JSON `null`) for none.
fn args_json<A: Serialize>(args: &A) -> Result<RawJson, CallError> {
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

/// Forgets a request whose caller stopped waiting (timeout or cancellation).
struct Abandon<'a> {
    state: &'a SharedState,
    key: RequestKey,
    /// Cleared once the result has arrived.
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = lock(self.state);
        state.waiters.remove(&self.key);
        state.core.abandon(self.key);
    }
}

/// The driver: reads responses until the connection ends, while the writer
/// sends requests. Either side ending ends both.
async fn drive<R, W>(
    mut reader: MessageReader<R>,
    wr: W,
    queue: mpsc::Receiver<BytesMut>,
    state: SharedState,
    close: Arc<Notify>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let read = async {
        loop {
            let payload = match reader.next().await {
                Ok(Some(payload)) => payload,
                Ok(None) => return Error::Closed,
                Err(e) => return e,
            };
            let mut state = lock(&state);
            if let Err(e) = state.core.handle_response(&payload) {
                return Error::Protocol(e);
            }
            while let Some(done) = state.core.poll_completion() {
                if let Some(waiter) = state.waiters.remove(&done.request) {
                    // The caller may have just gone away; nothing to do then.
                    let _ = waiter.send(done.results);
                }
            }
        }
    };
    let reason = tokio::select! {
        reason = read => reason,
        () = close.notified() => Error::Closed,
        written = transport::write_messages(wr, queue, None) => match written {
            Ok(()) => Error::Closed,
            Err(e) => Error::Io(e),
        },
    };
    match &reason {
        Error::Closed => tracing::debug!("client connection closed"),
        e => tracing::debug!(error = %e, "client connection failed"),
    }
    let mut state = lock(&state);
    state.closed = Some(Arc::new(reason));
    // Dropping the senders wakes every waiting call with the reason above.
    state.waiters.clear();
}
