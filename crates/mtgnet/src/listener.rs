//! Where connections come from ([`Listener`]) and how a server is told to
//! stop ([`Shutdown`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A source of connections for [`Server::serve`](crate::Server::serve):
/// TCP out of the box; implement it for Unix-domain sockets, TLS
/// terminators or in-memory streams, and they keep the server's connection
/// limit and graceful shutdown.
///
/// ```
/// use std::net::SocketAddr;
/// use mtgnet::Listener;
///
/// /// Connections handed over through a channel, e.g. from a test.
/// struct Handed(tokio::sync::mpsc::Receiver<tokio::io::DuplexStream>);
///
/// impl Listener for Handed {
///     type Io = tokio::io::DuplexStream;
///
///     async fn accept(&mut self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
///         match self.0.recv().await {
///             Some(io) => Ok((io, None)),
///             None => std::future::pending().await, // no more connections, ever
///         }
///     }
/// }
/// ```
pub trait Listener: Send + 'static {
    /// The byte stream of one connection.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Waits for the next connection; returns it with the peer's address,
    /// when it has one.
    ///
    /// An error of kind `ConnectionAborted`, `ConnectionReset`,
    /// `ConnectionRefused`, `Interrupted` or `WouldBlock` concerns one
    /// connection: the server goes on at once. Any other error (out of file
    /// descriptors, say) makes it back off briefly, then go on.
    fn accept(&mut self)
    -> impl Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;

    /// Accepts a TCP connection and sets `TCP_NODELAY` on it: requests and
    /// responses are whole frames written at once, so Nagle's algorithm
    /// would only add latency.
    async fn accept(&mut self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (stream, address) = TcpListener::accept(self).await?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%address, error = %e, "cannot set TCP_NODELAY");
        }
        Ok((stream, Some(address)))
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
