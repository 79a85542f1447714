//! The async client: a cheap, cloneable [`Client`] handle and the
//! [`ClientDriver`] that owns the connection.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use mtgnet_encryption::PublicKey;
use mtgnet_proto::RequestError;
use mtgnet_proto::client::{Batch, ClientCore, RequestKey};
use mtgnet_proto::wire::{self, CallResult};
use mtgnet_proto::{Condition, RawJson};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::config::ClientConfig;
use crate::error::{CallError, Error};
use crate::handshake::{self, Channel};
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

/// What a caller waits on, kept in the core's table with its request.
struct Waiter {
    /// Wakes the caller with the request's results; dropped unsent, it
    /// wakes the caller with the reason the connection closed.
    reply: oneshot::Sender<Vec<CallResult>>,
    /// The request's share of the cap on calls in flight. The core keeps
    /// the waiter until the response arrives, abandoned or not, so the
    /// slots are released exactly then (or when the connection ends).
    _slots: Option<OwnedSemaphorePermit>,
}

/// The table of calls in flight and the connection's fate.
struct State {
    core: ClientCore<Waiter>,
    /// Set once, when the connection ends; every later call fails with it.
    closed: Option<Arc<Error>>,
}

/// Shared by the handles and the driver.
struct Shared {
    state: Mutex<State>,
    /// Free slots of the cap on calls in flight; callers wait here, first
    /// come first served, for as many as their request takes. Closed when
    /// the connection ends, so that waiting callers fail at once.
    slots: Arc<Semaphore>,
    /// Asks the driver to close the connection now.
    close: Notify,
    /// Bytes queued for the writer so far. A frame's end offset in the
    /// byte stream is known by queueing it under this lock, so that a
    /// caller can wait until the writer has written past it.
    queued: Mutex<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the table half-updated
    // in a way that matters more than losing the connection would.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<BytesMut>,
    /// Frames (and seals) requests in the calling task.
    framer: Framer,
    config: Arc<ClientConfig>,
    /// The checked cap on calls in flight.
    max_in_flight: usize,
    peer_identity: Option<PublicKey>,
    /// Turns `true` once the driver has finished and the socket is closed.
    finished: watch::Receiver<bool>,
    /// Bytes the socket has accepted so far (see [`Shared::queued`]).
    #[cfg_attr(not(feature = "blocking"), allow(dead_code))]
    written: watch::Receiver<u64>,
}

/// Owns the connection of a [`Client`]: reads responses, writes requests.
///
/// It must be polled (spawned) for the client to make progress, and it
/// finishes when the connection ends: when the peer closes it, after a
/// fatal error, or once every `Client` handle has been dropped. If it is
/// dropped before it finishes (its task aborted, its runtime shut down),
/// the connection ends all the same: every waiting call fails with
/// [`Error::Closed`], and so does every later call.
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
            .field("in_flight", &lock(&self.shared.state).core.in_flight())
            .finish()
    }
}

/// A request registered and queued for writing.
struct Sent {
    /// The caller's end of the request's [`Waiter`]; `None` for
    /// notifications only, which get no response.
    answer: Option<(RequestKey, oneshot::Receiver<Vec<CallResult>>)>,
    /// Where the request's frame ends in the byte stream.
    #[cfg_attr(not(feature = "blocking"), allow(dead_code))]
    end: u64,
}

impl Client {
    /// Connects over TCP (with `TCP_NODELAY`), runs the handshake when the
    /// config is encrypted, and spawns the driver on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for settings that cannot work (checked before
    /// connecting); connecting fails, or the handshake does (size, timeout,
    /// closed, invalid signature, server not authorized).
    pub async fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, Error> {
        config.check()?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (client, driver) = Client::new(stream, config).await?;
        tokio::spawn(driver);
        Ok(client)
    }

    /// Connects to a server on a Unix-domain socket at `path`, runs the
    /// handshake when the config is encrypted, and spawns the driver on the
    /// current tokio runtime. The server sees this process's user, group
    /// and process ids.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    #[cfg(unix)]
    pub async fn connect_unix(
        path: impl AsRef<std::path::Path>,
        config: ClientConfig,
    ) -> Result<Client, Error> {
        config.check()?;
        let stream = tokio::net::UnixStream::connect(path).await?;
        let (client, driver) = Client::new(stream, config).await?;
        tokio::spawn(driver);
        Ok(client)
    }

    /// Sets up a client over any byte stream; the caller runs the driver.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`], for the settings and the handshake.
    pub async fn new<S>(mut io: S, config: ClientConfig) -> Result<(Client, ClientDriver), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let max_in_flight = config.check()?;
        let mut buf = BytesMut::new();
        let channel = match config.encryption() {
            Some(encryption) => handshake::client(&mut io, &mut buf, encryption).await?,
            None => Channel::Plain,
        };
        let peer_identity = channel.peer_identity();
        let (opening, framer) = transport::split(channel);
        let (rd, wr) = tokio::io::split(io);
        let reader = MessageReader::new(rd, buf, config.frame_limit(), opening);
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core: ClientCore::with_max_in_flight(max_in_flight),
                closed: None,
            }),
            slots: Arc::new(Semaphore::new(max_in_flight.get())),
            close: Notify::new(),
            queued: Mutex::new(0),
        });
        let (finish, finished) = watch::channel(false);
        let (written_sender, written) = watch::channel(0);
        let writer = CountingWriter {
            io: wr,
            written: written_sender,
        };
        // The guard is moved into the future: whether the future finishes,
        // is dropped unpolled, or is dropped half way (an aborted task, a
        // runtime shutting down), the guard's `Drop` ends the connection.
        let guard = DriverGuard {
            shared: Arc::clone(&shared),
            finish,
            reason: None,
        };
        let stall = config.write_stall_limit();
        let closing = framer.clone();
        let future = async move {
            let mut guard = guard;
            let shared = Arc::clone(&guard.shared);
            guard.reason = Some(drive(reader, writer, queue, stall, closing, &shared).await);
        };
        let client = Client {
            shared,
            outgoing,
            framer,
            config: Arc::new(config),
            max_in_flight: max_in_flight.get(),
            peer_identity,
            finished,
            written,
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
        lock(&self.shared.state).closed.is_some() || self.outgoing.is_closed()
    }

    /// Closes the connection: calls still waiting fail with
    /// [`Error::Closed`], and the socket is closed once the driver has
    /// stopped, which this waits for. Every clone of this client is closed.
    pub async fn close(&self) {
        self.shared.close.notify_one();
        let mut finished = self.finished.clone();
        // An error means the driver was dropped: the socket is gone as well.
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Calls `service.method(args...)` and reads the result into `R`.
    ///
    /// `args` is anything that serializes to a JSON array: a tuple (`(a, b)`,
    /// `(x,)`, `()` for none), an array or a `Vec`.
    ///
    /// Waits for a free slot first when
    /// [`ClientConfig::max_in_flight`] calls are in flight already.
    ///
    /// # Errors
    ///
    /// [`CallError::Remote`] when the server answers with an error,
    /// [`CallError::Timeout`] (see [`ClientConfig::call_timeout`]),
    /// [`CallError::Connection`] when the connection fails,
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
    /// stays full for the call timeout, or [`CallError::Connection`] when
    /// the connection has ended.
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
            let sent = self.send(&batch).await?;
            let mut written = self.written.clone();
            // An error means the driver has ended: the value is final.
            let _ = written.wait_for(|&bytes| bytes >= sent.end).await;
            if *written.borrow() >= sent.end {
                Ok(())
            } else {
                Err(self.closed_error())
            }
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
        match self.config.timeout() {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or(Err(CallError::Timeout)),
            None => work.await,
        }
    }

    /// Sends the batch and waits for its response.
    async fn exchange(&self, batch: &Batch) -> Result<Vec<CallResult>, CallError> {
        let Some((key, receiver)) = self.send(batch).await?.answer else {
            return Ok(Vec::new());
        };
        let mut abandon = Abandon {
            client: self,
            key,
            armed: true,
        };
        let outcome = receiver.await.map_err(|_| self.closed_error());
        // Answered, or failed with the connection: either way the request
        // has left the table.
        abandon.armed = false;
        outcome
    }

    /// Waits for the batch's slots and room in the queue, registers the
    /// batch in the table and queues its frame.
    async fn send(&self, batch: &Batch) -> Result<Sent, CallError> {
        let needed = batch.calls().min(self.max_in_flight);
        let slots = if needed == 0 {
            None
        } else {
            // `needed` is at most the checked cap, which fits a u32.
            let count = u32::try_from(needed).unwrap_or(u32::MAX);
            let acquired = Arc::clone(&self.shared.slots)
                .acquire_many_owned(count)
                .await;
            Some(acquired.map_err(|_| self.closed_error())?)
        };
        let permit = self
            .outgoing
            .reserve()
            .await
            .map_err(|_| self.closed_error())?;
        let mut payload = Vec::with_capacity(64 * batch.len());
        let (reply, receiver) = oneshot::channel();
        let waiter = Waiter {
            reply,
            _slots: slots,
        };
        let key = {
            let mut state = lock(&self.shared.state);
            if let Some(e) = &state.closed {
                return Err(CallError::Connection(Arc::clone(e)));
            }
            state
                .core
                .encode_request(batch, &mut payload, waiter)
                .map_err(|e| match e {
                    RequestError::Json(e) => CallError::Arguments(Arc::new(e)),
                    other => CallError::Connection(Arc::new(Error::Request(other))),
                })?
        };
        // Sealed outside the locks; registered and queued with no await in
        // between, so a cancelled caller never leaves a request registered
        // but unsent.
        let end = self
            .framer
            .send(&payload, |frame| {
                let mut queued = lock(&self.shared.queued);
                *queued += frame.len() as u64;
                permit.send(frame);
                *queued
            })
            .map_err(|e| CallError::Connection(Arc::new(e)))?;
        Ok(Sent {
            answer: key.map(|key| (key, receiver)),
            end,
        })
    }

    fn closed_error(&self) -> CallError {
        let reason = lock(&self.shared.state).closed.clone();
        CallError::Connection(reason.unwrap_or_else(|| Arc::new(Error::Closed)))
    }
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

/// Abandons a request whose caller stopped waiting (timeout or
/// cancellation), and closes the connection when abandoned requests hold
/// every slot.
struct Abandon<'a> {
    client: &'a Client,
    key: RequestKey,
    /// Cleared once the request has left the table.
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let shared = &self.client.shared;
        let mut state = lock(&shared.state);
        state.core.abandon(self.key);
        if state.core.all_slots_abandoned() && state.closed.is_none() {
            let max_in_flight = state.core.max_in_flight();
            state.closed = Some(Arc::new(Error::TooManyAbandoned { max_in_flight }));
            shared.close.notify_one();
        }
    }
}

/// Ends the connection when the driver's future goes away, however it
/// goes: records why, fails every waiting call (and every later one), and
/// tells [`Client::close`] the driver is done.
struct DriverGuard {
    shared: Arc<Shared>,
    finish: watch::Sender<bool>,
    /// Why the driver stopped; `None` when its future was dropped unfinished.
    reason: Option<Error>,
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        let reason = self.reason.take().unwrap_or(Error::Closed);
        let waiters = {
            let mut state = lock(&self.shared.state);
            // A reason recorded earlier (too many abandoned calls) stands.
            state.closed.get_or_insert_with(|| Arc::new(reason));
            state.core.fail_all()
        };
        // Callers waiting for a slot fail now, and later calls at once.
        self.shared.slots.close();
        // Dropping the senders wakes every waiting call with the reason above.
        drop(waiters);
        let _ = self.finish.send(true);
    }
}

/// Counts the bytes the socket accepts, for callers that wait until their
/// frame has been written.
struct CountingWriter<W> {
    io: W,
    written: watch::Sender<u64>,
}

impl<W> CountingWriter<W> {
    fn count(&self, polled: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.written.send_modify(|bytes| *bytes += n as u64);
            }
        }
        polled
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.count(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.count(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The driver: reads responses until the connection ends, while the writer
/// sends requests. Either side ending ends both. Returns why it ended; the
/// [`DriverGuard`] does the rest.
async fn drive<R, W>(
    mut reader: MessageReader<R>,
    wr: W,
    queue: mpsc::Receiver<BytesMut>,
    write_stall: Option<Duration>,
    framer: Framer,
    shared: &Shared,
) -> Error
where
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
            // Parsed before taking the lock, which only matches ids: a
            // large response does not hold up every other caller.
            let results = match wire::parse_response(&payload) {
                Ok(results) => results,
                Err(e) => return Error::Protocol(e.into()),
            };
            drop(payload);
            let mut state = lock(&shared.state);
            if let Err(e) = state.core.handle_results(results) {
                return Error::Protocol(e);
            }
            while let Some(done) = state.core.poll_completion() {
                // The caller may have just gone away; nothing to do then.
                // The request's slots are released as the waiter drops.
                let _ = done.waiter.reply.send(done.results);
            }
        }
    };
    // Closing (`Client::close`, or every handle dropped) goes through the
    // writer: what is queued is written, then (v2) the close record.
    let reason = tokio::select! {
        reason = read => reason,
        written = transport::write_messages(wr, queue, write_stall, framer, Some(&shared.close)) => match written {
            Ok(()) => Error::Closed,
            Err(e) => Error::Io(e),
        },
    };
    match &reason {
        Error::Closed => tracing::debug!("client connection closed"),
        e => tracing::debug!(error = %e, "client connection failed"),
    }
    reason
}
