//! One connection of a client: the table of its calls in flight, the queue
//! to its writer, and the future that reads responses and writes requests
//! until it ends. A [`Client`](crate::Client) has one at a time; with a
//! reconnect policy, a new one after every drop (see `driver.rs`).

use std::io::IoSlice;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::future::BoxFuture;
use mtgnet_encryption::PublicKey;
use mtgnet_proto::RequestError;
use mtgnet_proto::client::{Batch, ClientCore, RequestKey};
use mtgnet_proto::wire::{self, CallResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot, watch};

use crate::config::ClientConfig;
use crate::error::{CallError, Error, PeerError};
use crate::handshake::{self, Channel};
use crate::race::{Either, first_of};
use crate::transport::{self, Framer, MessageReader, Writing};

/// Requests queued for the writer before callers wait (back-pressure).
const OUTGOING_QUEUE: usize = 256;

/// The future that runs a connection until it ends; it returns why.
pub(crate) type Driving = BoxFuture<'static, Arc<Error>>;

/// What a caller waits on, kept in the core's table with its request.
struct Waiter {
    /// Wakes the caller with the request's results; dropped unsent, it
    /// wakes the caller with the reason the connection closed.
    reply: oneshot::Sender<Vec<CallResult>>,
    /// The request's share of the client's cap on calls in flight. The
    /// core keeps the waiter until the response arrives, abandoned or not,
    /// so the slots are released exactly then (or when the connection ends).
    _slots: Option<OwnedSemaphorePermit>,
}

/// The table of calls in flight and the connection's fate.
struct State {
    core: ClientCore<Waiter>,
    /// Set once, when the connection ends; no request is registered after.
    closed: Option<Arc<Error>>,
}

struct Inner {
    state: Mutex<State>,
    /// Asks the writer to close the connection now.
    close: Notify,
    /// Bytes queued for the writer so far. A frame's end offset in the
    /// byte stream is known by queueing it under this lock, so that a
    /// caller can wait until the writer has written past it.
    queued: Mutex<u64>,
    outgoing: mpsc::Sender<BytesMut>,
    /// Frames (and seals) requests in the calling task.
    framer: Framer,
    peer_identity: Option<PublicKey>,
    /// Bytes the socket has accepted so far (see [`Inner::queued`]).
    #[cfg_attr(not(feature = "blocking"), allow(dead_code))]
    written: watch::Receiver<u64>,
    /// Set once a response has arrived: the connection has worked.
    answered: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the table half-updated
    // in a way that matters more than losing the connection would.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection, shared by the calls that use it; cheap to clone.
#[derive(Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

/// A request registered and queued for writing.
pub(crate) struct Sent {
    /// The caller's end of the request's [`Waiter`]; `None` for
    /// notifications only, which get no response.
    pub(crate) answer: Option<Answer>,
    /// Where the request's frame ends in the byte stream.
    #[cfg_attr(not(feature = "blocking"), allow(dead_code))]
    pub(crate) end: u64,
}

/// Where the response to a request will arrive.
pub(crate) struct Answer {
    key: RequestKey,
    receiver: oneshot::Receiver<Vec<CallResult>>,
}

/// Why a connection did not take a request.
pub(crate) enum Refused {
    /// The connection had ended before the request was registered: it
    /// never left, and may go to the next connection, with its slots.
    Ended(Option<OwnedSemaphorePermit>),
    /// The request cannot be sent (its arguments, or a refused table).
    Failed(CallError),
}

impl Connection {
    /// Runs the handshake over `io` when `config` is encrypted, and
    /// returns the connection with the future that runs it.
    pub(crate) async fn open<S>(
        mut io: S,
        config: &ClientConfig,
        max_in_flight: NonZeroUsize,
    ) -> Result<(Connection, Driving), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
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
        let (written_sender, written) = watch::channel(0);
        let writer = CountingWriter {
            io: wr,
            written: written_sender,
        };
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                core: ClientCore::with_max_in_flight(max_in_flight),
                closed: None,
            }),
            close: Notify::new(),
            queued: Mutex::new(0),
            outgoing,
            framer: framer.clone(),
            peer_identity,
            written,
            answered: AtomicBool::new(false),
        });
        // The guard is moved into the future: whether the future finishes,
        // is dropped unpolled, or is dropped half way (an aborted task, a
        // runtime shutting down), the guard ends the connection.
        let guard = Ending {
            inner: Arc::clone(&inner),
            ended: false,
        };
        let writing = Writing {
            stall_limit: config.write_stall_limit(),
            busy_poll: config.busy_poll_for(),
        };
        let driving = async move {
            let mut guard = guard;
            let inner = Arc::clone(&guard.inner);
            let reason = drive(reader, writer, queue, writing, framer, &inner).await;
            guard.end(reason)
        };
        Ok((Connection { inner }, Box::pin(driving)))
    }

    /// The server's identity key, on an encrypted connection.
    pub(crate) fn peer_identity(&self) -> Option<PublicKey> {
        self.inner.peer_identity
    }

    /// Whether `other` is this same connection.
    pub(crate) fn is(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Why the connection ended, once it has.
    pub(crate) fn closed_reason(&self) -> Option<Arc<Error>> {
        lock(&self.inner.state).closed.clone()
    }

    /// Whether the connection has ended (or its writer has).
    pub(crate) fn is_ended(&self) -> bool {
        lock(&self.inner.state).closed.is_some() || self.inner.outgoing.is_closed()
    }

    /// Whether a response has arrived on this connection.
    pub(crate) fn has_answered(&self) -> bool {
        self.inner.answered.load(Ordering::Relaxed)
    }

    /// Calls in flight (abandoned ones included).
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.inner.state).core.in_flight()
    }

    /// Asks the writer to close the connection: what is queued is written,
    /// then (v2) the close record, then the socket is shut down.
    pub(crate) fn close(&self) {
        self.inner.close.notify_one();
    }

    /// Waits for room in the queue, registers the batch with its `slots`
    /// in the table and queues its frame.
    pub(crate) async fn send(
        &self,
        batch: &Batch,
        slots: Option<OwnedSemaphorePermit>,
    ) -> Result<Sent, Refused> {
        let inner = &*self.inner;
        let Ok(permit) = inner.outgoing.reserve().await else {
            return Err(Refused::Ended(slots));
        };
        let mut payload = Vec::with_capacity(64 * batch.len());
        let (reply, receiver) = oneshot::channel();
        let key = {
            let mut state = lock(&inner.state);
            if state.closed.is_some() {
                return Err(Refused::Ended(slots));
            }
            let waiter = Waiter {
                reply,
                _slots: slots,
            };
            state
                .core
                .encode_request(batch, &mut payload, waiter)
                .map_err(|e| {
                    Refused::Failed(match e {
                        RequestError::Json(e) => CallError::Arguments(Arc::new(e)),
                        other => CallError::Connection(Arc::new(Error::Request(other))),
                    })
                })?
        };
        // Sealed outside the locks; registered and queued with no await in
        // between, so a cancelled caller never leaves a request registered
        // but unsent.
        let end = inner
            .framer
            .send(&payload, |frame| {
                let mut queued = lock(&inner.queued);
                *queued += frame.len() as u64;
                permit.send(frame);
                *queued
            })
            .map_err(|e| Refused::Failed(CallError::Connection(Arc::new(e))))?;
        Ok(Sent {
            answer: key.map(|key| Answer { key, receiver }),
            end,
        })
    }

    /// Waits for the response to a request sent on this connection. A
    /// caller that stops waiting (timeout, cancellation) abandons it.
    pub(crate) async fn answer(&self, answer: Answer) -> Result<Vec<CallResult>, CallError> {
        let mut abandon = Abandon {
            connection: self,
            key: answer.key,
            armed: true,
        };
        let outcome = answer.receiver.await.map_err(|_| self.closed_error());
        // Answered, or failed with the connection: either way the request
        // has left the table.
        abandon.armed = false;
        outcome
    }

    /// Waits until the socket has accepted every byte up to `end`.
    #[cfg(feature = "blocking")]
    pub(crate) async fn written_past(&self, end: u64) -> Result<(), CallError> {
        let mut written = self.inner.written.clone();
        // An error means the driver has ended: the value is final.
        let _ = written.wait_for(|&bytes| bytes >= end).await;
        if *written.borrow() >= end {
            Ok(())
        } else {
            Err(self.closed_error())
        }
    }

    /// The error of a call that this connection's end failed.
    pub(crate) fn closed_error(&self) -> CallError {
        CallError::Connection(
            self.closed_reason()
                .unwrap_or_else(|| Arc::new(Error::Closed)),
        )
    }
}

/// Abandons a request whose caller stopped waiting (timeout or
/// cancellation), and closes the connection when abandoned requests hold
/// every slot.
struct Abandon<'a> {
    connection: &'a Connection,
    key: RequestKey,
    /// Cleared once the request has left the table.
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let inner = &self.connection.inner;
        let mut state = lock(&inner.state);
        state.core.abandon(self.key);
        if state.core.all_slots_abandoned() && state.closed.is_none() {
            let max_in_flight = state.core.max_in_flight();
            state.closed = Some(Arc::new(Error::TooManyAbandoned { max_in_flight }));
            inner.close.notify_one();
        }
    }
}

/// Ends the connection when its future goes away, however it goes:
/// records why, and fails every waiting call.
struct Ending {
    inner: Arc<Inner>,
    ended: bool,
}

impl Ending {
    /// Records `reason` (unless a reason was recorded earlier: too many
    /// abandoned calls), fails the calls in flight, and returns the reason
    /// that stands.
    fn end(&mut self, reason: Error) -> Arc<Error> {
        self.ended = true;
        let (reason, waiters) = {
            let mut state = lock(&self.inner.state);
            let reason = Arc::clone(state.closed.get_or_insert_with(|| Arc::new(reason)));
            (reason, state.core.fail_all())
        };
        // Dropping the senders wakes every waiting call with the reason
        // above, and gives back their slots.
        drop(waiters);
        reason
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.ended {
            self.end(Error::Closed);
        }
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

/// Reads responses until the connection ends, while the writer sends
/// requests. Either side ending ends both. Returns why it ended; the
/// [`Ending`] guard does the rest.
async fn drive<R, W>(
    mut reader: MessageReader<R>,
    wr: W,
    queue: mpsc::Receiver<BytesMut>,
    writing: Writing,
    framer: Framer,
    inner: &Inner,
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
                Err(e) => return Error::Peer(PeerError::Protocol(e.into())),
            };
            drop(payload);
            let mut state = lock(&inner.state);
            if let Err(e) = state.core.handle_results(results) {
                return Error::Peer(PeerError::Protocol(e));
            }
            inner.answered.store(true, Ordering::Relaxed);
            while let Some(done) = state.core.poll_completion() {
                // The caller may have just gone away; nothing to do then.
                // The request's slots are released as the waiter drops.
                let _ = done.waiter.reply.send(done.results);
            }
        }
    };
    // Closing (`Client::close`, or every handle dropped) goes through the
    // writer: what is queued is written, then (v2) the close record.
    let write = transport::write_messages(wr, queue, writing, framer, Some(&inner.close));
    let reason = match first_of(read, write).await {
        Either::Left(reason) => reason,
        Either::Right(Ok(())) => Error::Closed,
        Either::Right(Err(e)) => Error::Io(e),
    };
    match &reason {
        Error::Closed => tracing::debug!("client connection closed"),
        e => tracing::debug!(error = %e, "client connection failed"),
    }
    reason
}
