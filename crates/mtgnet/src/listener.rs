//! Where connections come from ([`Listener`]) and how a server is told to
//! stop ([`Shutdown`]).

use std::future::Future;
use std::io;
use std::sync::Arc;

use mtgnet_proto::Peer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A source of connections for [`Server::serve`](crate::Server::serve):
/// TCP and Unix-domain sockets out of the box; implement it for TLS
/// terminators or in-memory streams, and they keep the server's limits and
/// graceful shutdown.
///
/// ```
/// use mtgnet::{Listener, Peer};
///
/// /// Connections handed over through a channel, e.g. from a test.
/// struct Handed(tokio::sync::mpsc::Receiver<tokio::io::DuplexStream>);
///
/// impl Listener for Handed {
///     type Io = tokio::io::DuplexStream;
///
///     async fn accept(&mut self) -> std::io::Result<(Self::Io, Peer)> {
///         match self.0.recv().await {
///             Some(io) => Ok((io, Peer::default())), // nothing known of the peer
///             None => std::future::pending().await, // no more connections, ever
///         }
///     }
/// }
/// ```
pub trait Listener: Send + 'static {
    /// The byte stream of one connection.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Waits for the next connection; returns it with what the transport
    /// knows of the peer: its address, its credentials. The server sets
    /// [`Peer::identity`] itself, from the handshake.
    ///
    /// An error of kind `ConnectionAborted`, `ConnectionReset`,
    /// `ConnectionRefused`, `Interrupted` or `WouldBlock` concerns one
    /// connection: the server goes on at once. Any other error (out of file
    /// descriptors, say) makes it back off briefly, then go on.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, Peer)>> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;

    /// Accepts a TCP connection and sets `TCP_NODELAY` and TCP keepalive
    /// on it: the first probe after 60 s of silence, then every 10 s, the
    /// connection dropped after 6 unanswered ones (about two minutes). The
    /// peer's address is its [`Peer::address`].
    async fn accept(&mut self) -> io::Result<(TcpStream, Peer)> {
        let (stream, address) = TcpListener::accept(self).await?;
        crate::tcp::configure_accepted(&stream);
        Ok((stream, Peer::from(address)))
    }
}

/// Tells a server, and every connection it serves, to stop: they stop
/// reading, answer the requests already read, and close.
///
/// Cheap to clone; every clone triggers and observes the same shutdown.
///
/// ```
/// use mtgnet::Shutdown;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shutdown = Shutdown::new();
/// let observer = shutdown.clone();
/// let waiting = tokio::spawn(async move { observer.triggered().await });
/// shutdown.trigger();
/// waiting.await.unwrap();
/// assert!(shutdown.is_triggered());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Shutdown {
    state: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A shutdown not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown {
            state: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Starts the shutdown; triggering it again does nothing.
    pub fn trigger(&self) {
        self.state.send_replace(true);
    }

    /// Whether the shutdown has been triggered.
    pub fn is_triggered(&self) -> bool {
        *self.state.borrow()
    }

    /// Completes once the shutdown is triggered (at once if it already is).
    pub async fn triggered(&self) {
        let mut state = self.state.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = state.wait_for(|stop| *stop).await;
    }
}

/// Waits for a free connection slot, then for the next connection, until
/// `shutdown` is triggered (`Ok(None)`). Shutdown is looked at first, so
/// that a stream of clients cannot hide it; finished tasks of
/// `connections` are reaped while waiting, so that they do not pile up.
/// `on_full` runs when every slot is taken (the wait is back-pressure:
/// excess clients queue in the kernel's backlog).
///
/// An accept error that concerns one connection is skipped; any other
/// (out of file descriptors and the like) is logged and waited out for
/// 50 ms instead of spinning.
pub(crate) async fn next_connection<L: Listener, T: 'static>(
    listener: &mut L,
    slots: &Arc<tokio::sync::Semaphore>,
    connections: &mut tokio::task::JoinSet<T>,
    shutdown: &Shutdown,
    on_full: impl FnOnce(),
) -> io::Result<Option<(tokio::sync::OwnedSemaphorePermit, L::Io, Peer)>> {
    use crate::race::{Either, first_of, next_ended};
    let slot = match Arc::clone(slots).try_acquire_owned() {
        Ok(slot) => slot,
        Err(_) => {
            on_full();
            match first_of(shutdown.triggered(), Arc::clone(slots).acquire_owned()).await {
                Either::Left(()) => return Ok(None),
                Either::Right(slot) => slot.map_err(io::Error::other)?,
            }
        }
    };
    loop {
        let waited = first_of(
            shutdown.triggered(),
            first_of(next_ended(connections), listener.accept()),
        );
        match waited.await {
            Either::Left(()) => return Ok(None),
            Either::Right(Either::Left(_)) => {}
            Either::Right(Either::Right(Ok((io, peer)))) => return Ok(Some((slot, io, peer))),
            Either::Right(Either::Right(Err(e))) if is_per_connection(&e) => {
                tracing::debug!(error = %e, "accept failed for one connection");
            }
            Either::Right(Either::Right(Err(e))) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accept errors that concern one connection only.
pub(crate) fn is_per_connection(e: &io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}
