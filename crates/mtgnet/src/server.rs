//! The async server: accepts connections, runs the handshake, reads
//! requests, runs them concurrently and writes each response when it is ready.
//!
//! What one connection may hold is bounded twice: in calls
//! ([`Limits::max_in_flight`](crate::Limits::max_in_flight) slots) and in
//! bytes ([`Limits::max_connection_bytes`](crate::Limits::max_connection_bytes)).
//! A request takes its slots and bytes when it is read; its reply carries
//! them to the writer, which gives them back once the reply is written.
//! While either is spent, the connection reads nothing more.

use std::sync::Arc;

use bytes::BytesMut;
use mtgnet_proto::server::{Request, ServerCore};
use mtgnet_proto::{Condition, Peer, Registry, codes};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::budget::{ByteBudget, Charge};
use crate::config::ServerConfig;
use crate::error::{ConfigError, Error};
use crate::handshake::{self, Channel};
use crate::listener::{Listener, Shutdown, next_connection};
use crate::metrics::{self, Limit};
use crate::race::{Either, first_of, next_ended};
use crate::transport::{self, Framer, MessageReader, WriteStalled, Writing};

/// Requests a connection's reader starts from what it has read before it
/// lets the handlers and the writer run. A client that pipelines sends a
/// window of calls in one write; started all at once, their answers would
/// all go back in one write too, and the two peers would take turns, each
/// idle while the other works, so a second core could not help. Yielding
/// part way sends the first answers while the rest are being handled, and
/// the client is already sending its next calls. With 64 calls in flight
/// on one connection over two cores, calls/s roughly doubled (README,
/// Performance); 32 cost a single core about 5 % against not yielding at
/// all, where 16 cost 20 % (more writes for the same calls).
const DISPATCH_QUANTUM: usize = 32;

/// An MTGNet server: a [`Registry`] of services behind a [`ServerConfig`].
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use mtgnet::{Registry, Server, ServerConfig, Service, Shutdown};
///
/// let registry = Registry::new().with(
///     Service::new("Test").method("add", "Adds two integers.", |(a, b): (i64, i64)| async move { Ok(a + b) }),
/// );
/// let server = Server::new(registry, ServerConfig::plain())?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7707").await?;
/// let shutdown = Shutdown::new();
/// tokio::spawn({
///     let shutdown = shutdown.clone();
///     async move {
///         let _ = tokio::signal::ctrl_c().await;
///         shutdown.trigger();
///     }
/// });
/// server.serve(listener, shutdown).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Server {
    /// The per-request rules and the services, shared read-only by every
    /// connection.
    core: ServerCore,
    /// Encryption and limits, the same for every connection.
    config: Arc<ServerConfig>,
}

/// A reply on its way to the socket, with what its request holds: its call
/// slots and its bytes of the connection's budget. The writer drops it once
/// the reply is written, which gives them back.
struct Reply {
    frame: BytesMut,
    _slots: OwnedSemaphorePermit,
    _bytes: Charge,
}

impl AsRef<[u8]> for Reply {
    fn as_ref(&self) -> &[u8] {
        &self.frame
    }
}

impl Server {
    /// A server for `registry` with `config`.
    ///
    /// It reports what it does through the `metrics` facade (see
    /// [`metrics`](crate::metrics)), and describes those series to the
    /// recorder installed now.
    ///
    /// # Errors
    ///
    /// A limit that cannot work ([`Limits::validate`](crate::Limits::validate)),
    /// or a [`busy_poll`](ServerConfig::busy_poll) over
    /// [`MAX_BUSY_POLL`](crate::MAX_BUSY_POLL).
    pub fn new(registry: Registry, config: ServerConfig) -> Result<Server, ConfigError> {
        let limits = config.limits_ref();
        limits.validate()?;
        config.validate_busy_poll()?;
        metrics::describe();
        let observer = Arc::new(metrics::CallMetrics::new(&registry));
        Ok(Server {
            core: ServerCore::new(Arc::new(registry), limits.max_batch).observe(observer),
            config: Arc::new(config),
        })
    }

    /// The hosted services.
    pub fn registry(&self) -> &Registry {
        self.core.registry()
    }

    /// Accepts and serves connections until `shutdown` is triggered; then
    /// stops accepting, lets every connection finish the requests it is
    /// running (up to [`Limits::shutdown_grace`](crate::Limits::shutdown_grace)),
    /// closes them, and returns. When it returns, no task of it is left and
    /// every socket it accepted is closed.
    ///
    /// # Errors
    ///
    /// None so far: per-connection failures are logged and do not stop the
    /// server, and failing accepts are retried after a pause.
    pub async fn serve<L: Listener>(
        &self,
        mut listener: L,
        shutdown: Shutdown,
    ) -> std::io::Result<()> {
        let limits = self.config.limits_ref();
        // Accepting waits for a free slot, so excess connections queue in
        // the kernel's backlog instead of costing memory here.
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut connections = JoinSet::new();
        let leftovers = Arc::new(Leftovers::default());
        loop {
            let full = || metrics::limit_hit(Limit::MaxConnections);
            let next = next_connection(&mut listener, &slots, &mut connections, &shutdown, full);
            let Some((slot, io, peer)) = next.await? else {
                break;
            };
            let server = self.clone();
            let shutdown = shutdown.clone();
            let leftovers = Arc::clone(&leftovers);
            connections.spawn(async move {
                let _slot = slot;
                let (address, credentials) = (peer.address, peer.credentials);
                if let Err(e) = server
                    .serve_io(io, peer, shutdown, Some(leftovers))
                    .await
                {
                    tracing::debug!(?address, ?credentials, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        // Each connection bounds its own drain by the grace period; this
        // outer bound catches one stuck elsewhere (a handshake, a write).
        let grace = limits.shutdown_grace + limits.shutdown_grace / 2;
        if tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("connections still busy after the shutdown grace period; closing them");
            connections.shutdown().await;
            leftovers.reap().await;
        }
        Ok(())
    }

    /// Serves one connection over any byte stream until the peer closes it,
    /// a fatal error occurs, or `shutdown` is triggered. On shutdown it
    /// reads nothing more; requests already read but not started are
    /// answered with the `shutting-down` condition, those running may finish
    /// within the grace period and are answered, then the connection closes.
    ///
    /// `peer` is what the transport knows of the other end (a [`Peer`],
    /// or just its address, or `None`); the server adds the identity the
    /// handshake proves.
    ///
    /// The connection's tasks (its writer, its running requests) belong to
    /// this future: it waits for them before it returns, and dropping it
    /// aborts them, which closes the stream.
    ///
    /// # Errors
    ///
    /// The reason the connection ended, when it was not a clean close.
    pub async fn serve_connection<S>(
        &self,
        io: S,
        peer: impl Into<Peer>,
        shutdown: Shutdown,
    ) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.serve_io(io, peer.into(), shutdown, None).await
    }

    /// [`Server::serve_connection`]; when `leftovers` is given, the tasks of
    /// the connection are handed to it if the connection is dropped.
    async fn serve_io<S>(
        &self,
        io: S,
        mut peer: Peer,
        shutdown: Shutdown,
        leftovers: Option<Arc<Leftovers>>,
    ) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _open = metrics::OpenConnection::new();
        let mut io = metrics::Metered::new(io);
        let limits = self.config.limits_ref();
        let mut buf = BytesMut::new();
        let channel = match self.config.encryption() {
            Some(encryption) => {
                let handshake = handshake::server(&mut io, &mut buf, encryption);
                let (version, channel) = match first_of(shutdown.triggered(), handshake).await {
                    Either::Left(()) => return Ok(()),
                    Either::Right(done) => done,
                };
                metrics::handshake(version, &channel);
                channel?
            }
            None => Channel::Plain,
        };
        metrics::connection(&channel);
        peer.identity = channel.peer_identity();
        let peer = Arc::new(peer);
        let (opening, framer) = transport::split(channel);
        let (rd, wr) = tokio::io::split(io);
        let mut connection = Connection {
            core: &self.core,
            peer,
            framer: framer.clone(),
            slots: Arc::new(Semaphore::new(limits.max_in_flight)),
            max_in_flight: limits.max_in_flight,
            budget: ByteBudget::new(limits.max_connection_bytes),
            requests: JoinSet::new(),
            replies: None,
            leftovers: leftovers.clone(),
        };
        // Every reply holds at least one slot, so the queue never holds
        // more than `max_in_flight` replies and sending never waits.
        let (replies, queue) = mpsc::channel(limits.max_in_flight);
        connection.replies = Some(replies);
        let mut reader = MessageReader::new(rd, buf, limits.max_frame, opening);
        // Its own task, so that writing runs beside reading; owned by this
        // future all the same (see `WriterTask`).
        let mut writer = WriterTask {
            handle: Some(tokio::spawn(transport::write_messages(
                wr,
                queue,
                Writing {
                    stall_limit: Some(limits.write_stall),
                    busy_poll: self.config.busy_poll_for(),
                },
                framer.clone(),
                None,
            ))),
            leftovers,
        };

        // `Some` once the writer has stopped before it was asked to.
        let mut written = None;
        let reading = connection.read_requests(&mut reader, &shutdown, limits.idle_timeout);
        let outcome = match first_of(reading, writer.join()).await {
            Either::Left(outcome) => outcome,
            Either::Right(result) => {
                written = Some(result);
                Err(Error::Closed)
            }
        };
        if outcome.is_ok() {
            // Requests read but not started are answered `shutting-down`;
            // those running may finish within the grace period.
            let finishing = connection.finish(&mut reader, limits.shutdown_grace);
            if let Either::Right(result) = first_of(finishing, writer.join()).await {
                written = Some(result);
            }
        }
        if let Err(e) = &outcome {
            if metrics::is_frame_limit(e) {
                metrics::limit_hit(Limit::MaxFrame);
            }
            // On any error the connection ends without a close record.
            framer.abandon();
        }
        connection.requests.shutdown().await;
        // The last senders go; the writer writes what is queued and closes.
        drop(connection);
        let ended = match written {
            // The writer failed: nobody could be answered.
            Some(result) => result.map_err(Error::from).and(Err(Error::Closed)),
            None => writer.join().await.map_err(Error::from).and(outcome),
        };
        if matches!(&ended, Err(Error::Io(e)) if WriteStalled::is(e)) {
            metrics::limit_hit(Limit::WriteStall);
        }
        match ended {
            // A peer that ended its side cleanly (v2: with its close record)
            // may close its socket without waiting for the answers: that
            // they could not be delivered does not make its end unclean.
            Err(Error::Io(e)) if reader.peer_ended() && is_peer_gone(&e) => Ok(()),
            ended => ended,
        }
    }
}

/// One connection being served: what its reader and request tasks share.
struct Connection<'a> {
    core: &'a ServerCore,
    peer: Arc<Peer>,
    framer: Framer,
    /// Calls handled or being answered; given back as replies are written.
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    /// Bytes of requests handled and replies not yet written.
    budget: Arc<ByteBudget>,
    requests: JoinSet<()>,
    /// The writer's queue; `None` only while being set up.
    replies: Option<mpsc::Sender<Reply>>,
    /// Where running requests go if the connection is dropped.
    leftovers: Option<Arc<Leftovers>>,
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        // Only a connection dropped by force still has requests here.
        if let Some(leftovers) = &self.leftovers {
            if !self.requests.is_empty() {
                leftovers.requests(std::mem::take(&mut self.requests));
            }
        }
    }
}

/// A connection's writer task. Dropped before the writer finished (the
/// connection was dropped by force), it aborts the task and hands it to the
/// server's [`Leftovers`], which waits for it before `serve` returns.
struct WriterTask {
    handle: Option<JoinHandle<std::io::Result<()>>>,
    leftovers: Option<Arc<Leftovers>>,
}

impl WriterTask {
    /// Waits for the writer to finish. Cancel-safe.
    async fn join(&mut self) -> std::io::Result<()> {
        let Some(handle) = self.handle.as_mut() else {
            return Ok(());
        };
        let result = handle.await;
        self.handle = None;
        result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

impl Drop for WriterTask {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
            if let Some(leftovers) = &self.leftovers {
                leftovers.writer(handle);
            }
        }
    }
}

/// The tasks of connections that `serve` had to drop: aborted, and awaited
/// before `serve` returns, so that none of them (nor its socket) outlives it.
#[derive(Debug, Default)]
struct Leftovers {
    tasks: std::sync::Mutex<Tasks>,
}

/// Writer tasks and sets of request tasks.
#[derive(Debug, Default)]
struct Tasks {
    writers: Vec<JoinHandle<std::io::Result<()>>>,
    requests: Vec<JoinSet<()>>,
}

impl Leftovers {
    fn writer(&self, handle: JoinHandle<std::io::Result<()>>) {
        self.lock().writers.push(handle);
    }

    fn requests(&self, requests: JoinSet<()>) {
        self.lock().requests.push(requests);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until every task handed over has ended (they are aborted).
    async fn reap(&self) {
        let Tasks { writers, requests } = std::mem::take(&mut *self.lock());
        for mut set in requests {
            set.shutdown().await;
        }
        for writer in writers {
            let _ = writer.await;
        }
    }
}

impl Connection<'_> {
    /// Reads and starts requests until the peer closes the connection
    /// (`Ok`), shutdown is triggered (`Ok`), it stays idle too long (`Ok`),
    /// or something fails.
    async fn read_requests<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut MessageReader<R>,
        shutdown: &Shutdown,
        idle_timeout: std::time::Duration,
    ) -> Result<(), Error> {
        // One shutdown wait and one idle timer for the whole loop, instead
        // of registering new ones for every request.
        let stop = shutdown.triggered();
        tokio::pin!(stop);
        let mut active = Instant::now();
        let idle = tokio::time::sleep_until(active + idle_timeout);
        tokio::pin!(idle);
        // Requests started since this loop last let the others run.
        let mut started = 0;
        loop {
            if started == DISPATCH_QUANTUM {
                started = 0;
                tokio::task::yield_now().await;
            }
            // Back-pressure: read nothing while max_in_flight calls are
            // held or the connection holds its byte budget.
            let slot = match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    metrics::limit_hit(Limit::MaxInFlight);
                    match first_of(&mut stop, Arc::clone(&self.slots).acquire_owned()).await {
                        Either::Left(()) => return Ok(()),
                        Either::Right(slot) => slot.map_err(|_| Error::Closed)?,
                    }
                }
            };
            if !self.budget.is_below_limit() {
                metrics::limit_hit(Limit::MaxConnectionBytes);
                if let Either::Left(()) = first_of(&mut stop, self.budget.below_limit()).await {
                    return Ok(());
                }
            }
            // Shutdown first, so that a peer that keeps sending cannot hide
            // it; reading before the idle timer, so that a request that has
            // arrived is not taken for idleness.
            let waited = first_of(
                &mut stop,
                first_of(
                    next_ended(&mut self.requests),
                    first_of(reader.next(), &mut idle),
                ),
            );
            let next = match waited.await {
                Either::Left(()) => return Ok(()),
                // Keep the set small while waiting for the next request.
                Either::Right(Either::Left(_)) => {
                    active = Instant::now();
                    continue;
                }
                Either::Right(Either::Right(Either::Left(next))) => next,
                Either::Right(Either::Right(Either::Right(()))) => {
                    // A call being handled or answered (a slot held besides
                    // the one this loop took) counts as activity.
                    if self.slots.available_permits() + 1 < self.max_in_flight {
                        active = Instant::now();
                    }
                    // Idle: nothing arrived and nothing was in progress for
                    // the whole timeout.
                    if active + idle_timeout > Instant::now() {
                        idle.as_mut().reset(active + idle_timeout);
                        continue;
                    }
                    tracing::debug!(address = ?self.peer.address, "closing an idle connection");
                    metrics::limit_hit(Limit::IdleTimeout);
                    return Ok(());
                }
            };
            let Some(payload) = next? else {
                return Ok(());
            };
            active = Instant::now();
            let charge = self.budget.charge(payload.len());
            let request = self.core.handle_request(&payload)?;
            drop(payload);
            if request.calls() > self.core.max_batch() {
                metrics::limit_hit(Limit::Batch);
            }
            // One slot per call (the first was taken before reading); a
            // request of more calls than max_in_flight takes them all.
            let mut slots = slot;
            let more = request.calls().clamp(1, self.max_in_flight) - 1;
            if more > 0 {
                let more = u32::try_from(more).unwrap_or(u32::MAX);
                let extra = Arc::clone(&self.slots).acquire_many_owned(more);
                match first_of(&mut stop, extra).await {
                    Either::Left(()) => {
                        self.send(request.refuse(shutting_down()), slots, charge);
                        return Ok(());
                    }
                    Either::Right(extra) => slots.merge(extra.map_err(|_| Error::Closed)?),
                }
            }
            self.start(request, slots, charge);
            started += 1;
        }
    }

    /// Runs a request in its own task; its reply goes to the writer.
    fn start(&mut self, request: Request, slots: OwnedSemaphorePermit, mut charge: Charge) {
        let work = request.respond(Arc::clone(&self.peer));
        let framer = self.framer.clone();
        let Some(replies) = self.replies.clone() else {
            return;
        };
        self.requests.spawn(async move {
            if let Some(response) = work.await {
                // Fails only when the writer is gone or closed: nobody to answer.
                let _ = framer.send(&response, |frame| {
                    charge.resize(frame.len());
                    replies.try_send(Reply {
                        frame,
                        _slots: slots,
                        _bytes: charge,
                    })
                });
            }
        });
    }

    /// Queues a response produced without running anything.
    fn send(&self, response: Option<Vec<u8>>, slots: OwnedSemaphorePermit, mut charge: Charge) {
        // Sending never waits: every queued reply holds a slot.
        let (Some(response), Some(replies)) = (response, &self.replies) else {
            return;
        };
        let _ = self.framer.send(&response, |frame| {
            charge.resize(frame.len());
            replies.try_send(Reply {
                frame,
                _slots: slots,
                _bytes: charge,
            })
        });
    }

    /// Answers `shutting-down` to every request already read whole but not
    /// started, without reading the socket any more; then lets the running
    /// requests finish. All of it within `grace`.
    async fn finish<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut MessageReader<R>,
        grace: std::time::Duration,
    ) {
        let drain = async {
            while let Ok(Some(payload)) = reader.buffered() {
                let charge = self.budget.charge(payload.len());
                // Not a request: nothing after it can be answered.
                let Ok(request) = self.core.handle_request(&payload) else {
                    break;
                };
                // A slot like any reply, so the writer's queue stays bounded.
                let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
                    break;
                };
                self.send(request.refuse(shutting_down()), slot, charge);
            }
            while self.requests.join_next().await.is_some() {}
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            metrics::limit_hit(Limit::ShutdownGrace);
            tracing::warn!(
                address = ?self.peer.address,
                "requests still running after the grace period; dropping them"
            );
        }
    }
}

fn shutting_down() -> Condition {
    Condition::new(codes::SHUTTING_DOWN, "the server is shutting down")
}

/// Write errors of a peer that has closed its socket.
fn is_peer_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected
    )
}
