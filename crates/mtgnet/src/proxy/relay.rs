//! The relay of one proxied connection: two pumps (client to backend,
//! backend to client), each reading whole messages from one side and
//! handing them, sealed for the other side, to that side's writer.
//!
//! ```text
//!   client --MessageReader--> pump --queue--> write_messages --> backend
//!   client <--write_messages-- queue <-- pump <--MessageReader-- backend
//! ```
//!
//! Each direction has a byte budget of its own (half the connection's): a
//! message takes its bytes when read and gives them back once written, and
//! a pump reads nothing while its direction holds its budget. With one
//! budget for both, requests waiting for a backend busy writing answers
//! could starve the answers, and the backend would wait on the proxy as
//! the proxy waits on it.
//!
//! Everything runs inside one future, so dropping it drops both sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ProxyError, discard};
use crate::budget::{ByteBudget, Charge};
use crate::config::Limits;
use crate::error::Error;
use crate::handshake::Channel;
use crate::listener::Shutdown;
use crate::race::{Either, first_of};
use crate::transport::{self, Framer, MessageReader, Writing};

/// Messages queued for one side's writer at most; the bytes they hold are
/// bounded by the direction's budget, their number by this.
const QUEUE: usize = 1024;

/// Both sides of a connection, each after its handshake, with the bytes
/// already read past it.
pub(super) struct Sides<C, B> {
    pub(super) client: C,
    pub(super) client_buf: BytesMut,
    pub(super) client_channel: Channel,
    pub(super) backend: B,
    pub(super) backend_buf: BytesMut,
    pub(super) backend_channel: Channel,
}

/// A message on its way to one side, framed and sealed for it, holding its
/// bytes of the direction's budget until the writer has written it.
struct Relayed {
    frame: BytesMut,
    _bytes: Charge,
}

impl AsRef<[u8]> for Relayed {
    fn as_ref(&self) -> &[u8] {
        &self.frame
    }
}

/// How a pump stopped, when not by its source failing.
enum Pumped {
    /// The source ended its side cleanly: its v2 close record, or the end
    /// of the stream between frames.
    SourceEnded,
    /// Told to stop.
    Stopped,
    /// The destination's writer is gone (its own failure says why).
    DestinationGone,
}

/// What the relay's loop woke up for.
enum Event {
    /// The client-to-backend pump stopped.
    Up(Result<Pumped, Error>),
    /// The backend-to-client pump stopped.
    Down(Result<Pumped, Error>),
    /// The backend's writer ended.
    BackendWritten(std::io::Result<()>),
    /// The client's writer ended.
    ClientWritten(std::io::Result<()>),
    /// The proxy is shutting down.
    Stopping,
    /// The idle timer went off (the connection may have been active since).
    Idle,
    /// The backend's grace period for its last answers ran out.
    GraceOver,
}

/// When a message last went either way.
struct Activity {
    origin: Instant,
    /// Milliseconds from `origin` to the last message.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let since = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(since, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// Relays messages between the two sides until the connection ends (see
/// the module documentation of `proxy` for how each side's end is passed on).
pub(super) async fn relay<C, B>(
    sides: Sides<C, B>,
    limits: &Limits,
    shutdown: &Shutdown,
) -> Result<(), ProxyError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (client_opening, client_framer) = transport::split(sides.client_channel);
    let (backend_opening, backend_framer) = transport::split(sides.backend_channel);
    let (mut client_rd, client_wr) = tokio::io::split(sides.client);
    let (backend_rd, backend_wr) = tokio::io::split(sides.backend);
    // The client's read half stays ours, to linger on once the relay is over.
    let mut from_client = MessageReader::new(
        &mut client_rd,
        sides.client_buf,
        limits.max_frame,
        client_opening,
    );
    let mut from_backend = MessageReader::new(
        backend_rd,
        sides.backend_buf,
        limits.max_frame,
        backend_opening,
    );
    let per_direction = (limits.max_connection_bytes / 2).max(1);
    let (to_backend, backend_queue) = mpsc::channel(QUEUE);
    let (to_client, client_queue) = mpsc::channel(QUEUE);
    let activity = Activity::new();
    let (stop_up, stop_down) = (Shutdown::new(), Shutdown::new());
    let stall = Some(limits.write_stall);

    let mut backend_failure = None;
    let mut client_ended = false;
    {
        let up_budget = ByteBudget::new(per_direction);
        let down_budget = ByteBudget::new(per_direction);
        let up = pump(
            &mut from_client,
            &backend_framer,
            to_backend,
            &up_budget,
            &activity,
            &stop_up,
        );
        let down = pump(
            &mut from_backend,
            &client_framer,
            to_client,
            &down_budget,
            &activity,
            &stop_down,
        );
        let writing = Writing {
            stall_limit: stall,
            busy_poll: None,
        };
        let backend_writer = transport::write_messages(
            backend_wr,
            backend_queue,
            writing,
            backend_framer.clone(),
            None,
        );
        let client_writer = transport::write_messages(
            client_wr,
            client_queue,
            writing,
            client_framer.clone(),
            None,
        );
        let stopping = shutdown.triggered();
        let idle = tokio::time::sleep(limits.idle_timeout);
        // Armed once the connection is closing.
        let grace = tokio::time::sleep(Duration::MAX);
        tokio::pin!(
            up,
            down,
            backend_writer,
            client_writer,
            stopping,
            idle,
            grace
        );
        let (mut up_done, mut down_done, mut backend_writer_done) = (false, false, false);
        // Set once the client's side is being closed: no more reading it,
        // and the backend has the grace period to say the rest.
        let mut closing = false;
        let close = |closing: &mut bool, grace: std::pin::Pin<&mut tokio::time::Sleep>| {
            stop_up.trigger();
            if !*closing {
                *closing = true;
                grace.reset(Instant::now() + limits.shutdown_grace);
            }
        };
        // Set once the grace period has run out: its timer stays expired,
        // and is not to be taken as news again.
        let mut grace_over = false;
        loop {
            // Each branch is waited for only while it means something; each
            // is heard once (the idle timer once per deadline), so the order
            // they are looked at in does not matter.
            let event = std::future::poll_fn(|cx| {
                if !up_done {
                    if let Poll::Ready(pumped) = up.as_mut().poll(cx) {
                        return Poll::Ready(Event::Up(pumped));
                    }
                }
                if !down_done {
                    if let Poll::Ready(pumped) = down.as_mut().poll(cx) {
                        return Poll::Ready(Event::Down(pumped));
                    }
                }
                if !backend_writer_done {
                    if let Poll::Ready(written) = backend_writer.as_mut().poll(cx) {
                        return Poll::Ready(Event::BackendWritten(written));
                    }
                }
                if let Poll::Ready(written) = client_writer.as_mut().poll(cx) {
                    return Poll::Ready(Event::ClientWritten(written));
                }
                if !closing {
                    if stopping.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Stopping);
                    }
                    if idle.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Idle);
                    }
                }
                if closing && !grace_over && grace.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::GraceOver);
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Up(pumped) => {
                    up_done = true;
                    match pumped {
                        // Passed on: the backend's writer ends, shutting the
                        // backend's write half once the queue is written.
                        Ok(Pumped::SourceEnded) => {
                            client_ended = true;
                            close(&mut closing, grace.as_mut());
                        }
                        Ok(Pumped::Stopped | Pumped::DestinationGone) => {}
                        // Nothing is owed to a client that broke its side.
                        Err(e) => return Err(ProxyError::Client(e)),
                    }
                }
                Event::Down(pumped) => {
                    down_done = true;
                    if let Err(e) = pumped {
                        backend_failure = Some(e);
                    }
                    // The backend has said all it will: the client's writer
                    // writes what is queued, then closes cleanly.
                    stop_up.trigger();
                }
                Event::BackendWritten(written) => {
                    backend_writer_done = true;
                    if let Err(e) = written {
                        backend_failure.get_or_insert(Error::Io(e));
                        stop_up.trigger();
                        stop_down.trigger();
                    }
                }
                Event::ClientWritten(written) => match written {
                    Ok(()) => break,
                    Err(e) => return Err(ProxyError::Client(Error::Io(e))),
                },
                Event::Stopping => close(&mut closing, grace.as_mut()),
                Event::Idle => {
                    let deadline = activity.last() + limits.idle_timeout;
                    if deadline > Instant::now() {
                        idle.as_mut().reset(deadline);
                    } else {
                        tracing::debug!("closing an idle proxied connection");
                        close(&mut closing, grace.as_mut());
                    }
                }
                Event::GraceOver => {
                    grace_over = true;
                    stop_down.trigger();
                }
            }
        }
    }
    // The client has been sent the end; it closes once it has read it.
    drop(from_client);
    if !client_ended {
        discard(&mut client_rd).await;
    }
    match backend_failure {
        Some(e) => Err(ProxyError::Backend(e)),
        None => Ok(()),
    }
}

/// Moves messages from `reader` to `queue`, each sealed by `framer` for the
/// other side, while `budget` allows, until the source ends, `stop` is
/// triggered or the destination's writer is gone.
///
/// # Errors
///
/// The source failed: its socket, its frames or records, a message larger
/// than `max_frame`, or (v2) a stream cut without a close record.
async fn pump<R: AsyncRead + Unpin>(
    reader: &mut MessageReader<R>,
    framer: &Framer,
    queue: mpsc::Sender<Relayed>,
    budget: &Arc<ByteBudget>,
    activity: &Activity,
    stop: &Shutdown,
) -> Result<Pumped, Error> {
    let stopped = stop.triggered();
    tokio::pin!(stopped);
    loop {
        // Back-pressure: nothing more is read while the direction holds its
        // budget; the writer gives bytes back as it writes.
        // The stop is looked at first each time, so that a busy source
        // cannot hide it.
        if !budget.is_below_limit() {
            if let Either::Left(()) = first_of(&mut stopped, budget.below_limit()).await {
                return Ok(Pumped::Stopped);
            }
        }
        let permit = match first_of(&mut stopped, queue.reserve()).await {
            Either::Left(()) => return Ok(Pumped::Stopped),
            Either::Right(Ok(permit)) => permit,
            Either::Right(Err(_)) => return Ok(Pumped::DestinationGone),
        };
        let next = match first_of(&mut stopped, reader.next()).await {
            Either::Left(()) => return Ok(Pumped::Stopped),
            Either::Right(next) => next?,
        };
        let Some(message) = next else {
            return Ok(Pumped::SourceEnded);
        };
        activity.touch();
        let mut charge = budget.charge(message.len());
        let sent = framer.send(&message, move |frame| {
            charge.resize(frame.len());
            permit.send(Relayed {
                frame,
                _bytes: charge,
            });
        });
        if sent.is_err() {
            return Ok(Pumped::DestinationGone);
        }
    }
}
