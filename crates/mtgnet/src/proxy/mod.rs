//! Encryption v2 in front of a server that speaks only v1, or no encryption
//! at all: what `mtgnet proxy` runs.
//!
//! The deployed Lisp and PHP servers cannot be changed, but a [`Proxy`]
//! next to one gives its clients v2: it accepts clients as an encrypted
//! server does (v2, or v1 and v2 told apart by the first frame; client keys
//! checked against its authorized keys), and for each client it lets in,
//! opens one connection to the backend, plain or encrypted with the proxy's
//! own identity against the backend's pinned key. Then it relays MTGNet
//! messages both ways: each message is read whole from one side (opened,
//! reassembled), and sealed and framed again for the other. It never
//! parses a message, so batches, notifications, warnings and answers in any
//! order pass unchanged.
//!
//! ```text
//!   client --v2--> Proxy --v1 or plain--> backend (Lisp, PHP, mtgnet serve --encryption v1)
//!            one backend connection per client, opened after the client's handshake
//! ```
//!
//! The proxy terminates the clients' encryption: the backend hop is only
//! as safe as v1 (or plain), so run the proxy next to the backend.
//!
//! **Per connection.** A direction holds at most half of
//! [`Limits::max_connection_bytes`](crate::Limits::max_connection_bytes) in
//! messages read from one side and not yet written to the other; once it
//! does, the proxy stops reading that side until the writer catches up
//! (back-pressure, through to the client or the backend). A message larger
//! than that still goes through, alone; each direction also holds the one
//! message it is reading (at most `max_frame`).
//!
//! **Closing.** A client that ends its side (v2: its close record) has its
//! end passed on: the backend's write half is shut, so it answers the calls
//! in flight and closes, within the shutdown grace. A backend that closes,
//! fails or cannot be reached ends the client's connection cleanly (v2:
//! with the proxy's close record, so the client sees
//! [`Error::Closed`], not truncation). A client that fails (bad records,
//! a cut stream) has its backend connection dropped at once. Shutdown and
//! the idle timeout close a connection as a client ending its side does.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mtgnet::proxy::{Proxy, ProxyConfig, TcpConnector};
//! use mtgnet::{Encryption, EncryptionVersion, IdentitySecret, Shutdown};
//!
//! let identity = Arc::new(IdentitySecret::generate());
//! let front = Encryption::new(identity).version(EncryptionVersion::V2);
//! let proxy = Proxy::new(ProxyConfig::plain_backend(front), TcpConnector::new("127.0.0.1:7707"))?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:7708").await?;
//! proxy.serve(listener, Shutdown::new()).await?;
//! # Ok(()) }
//! ```

mod config;
mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use config::{Connector, ProxyConfig, TcpConnector};

use crate::error::{ConfigError, Error};
use crate::handshake::{self, Channel};
use crate::listener::{Listener, Shutdown, next_connection};
use crate::race::{Either, first_of};
use crate::transport;

/// How long the proxy keeps reading (and discarding) what a client sends
/// after it has closed its side toward the client: closing a socket with
/// unread bytes resets it, and a reset can destroy the close the client
/// has not read yet. A client that has seen the close closes too, at once.
const LINGER: Duration = Duration::from_secs(2);

/// Why a proxied connection ended, when it did not end cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The client's side failed: its handshake (refused key, timeout, bad
    /// bytes), its messages or records, or its socket.
    #[error("client: {0}")]
    Client(Error),
    /// The backend could not be reached in time, its handshake failed (a
    /// key that is not the pinned one, say), or its side failed later.
    #[error("backend: {0}")]
    Backend(Error),
}

/// Encryption in front of a legacy server: accepts clients per
/// [`ProxyConfig`], opens one backend connection per client with a
/// [`Connector`], and relays messages both ways (see the [module
/// documentation](self)).
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::proxy::{Proxy, ProxyConfig, TcpConnector};
/// use mtgnet::{AuthorizedKeys, Client, ClientConfig, Encryption, EncryptionVersion};
/// use mtgnet::{IdentitySecret, Registry, Server, ServerConfig, Shutdown};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A plain server, standing in for a legacy one.
/// let backend = Server::new(Registry::new().with(mtgnet::demo::test_service()), ServerConfig::plain())?;
/// let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let backend_address = backend_listener.local_addr()?;
/// let shutdown = Shutdown::new();
/// tokio::spawn({
///     let shutdown = shutdown.clone();
///     async move { backend.serve(backend_listener, shutdown).await }
/// });
///
/// let identity = Arc::new(IdentitySecret::generate());
/// let front = Encryption::new(Arc::clone(&identity)).version(EncryptionVersion::V2);
/// let proxy = Proxy::new(ProxyConfig::plain_backend(front), TcpConnector::new(backend_address.to_string()))?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let address = listener.local_addr()?;
/// tokio::spawn({
///     let shutdown = shutdown.clone();
///     async move { proxy.serve(listener, shutdown).await }
/// });
///
/// // A v2 client pins the proxy's key.
/// let pinned = Encryption::new(Arc::new(IdentitySecret::generate()))
///     .authorized(AuthorizedKeys::only([identity.public_key()]));
/// let client = Client::connect(address, ClientConfig::encrypted(pinned)).await?;
/// let echoed: String = client.call("Test", "echo", ("through the proxy",)).await?;
/// assert_eq!(echoed, "through the proxy");
/// shutdown.trigger();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Proxy<C> {
    /// Encryption and limits, the same for every connection.
    config: Arc<ProxyConfig>,
    /// Opens the backend connection of each client.
    connector: Arc<C>,
}

impl<C> Clone for Proxy<C> {
    fn clone(&self) -> Self {
        Proxy {
            config: Arc::clone(&self.config),
            connector: Arc::clone(&self.connector),
        }
    }
}

impl<C: Connector> Proxy<C> {
    /// A proxy with `config`, reaching its backend through `connector`.
    ///
    /// # Errors
    ///
    /// A limit that cannot work ([`Limits::validate`](crate::Limits::validate)),
    /// or a zero [`ProxyConfig::connect_timeout`].
    pub fn new(config: ProxyConfig, connector: C) -> Result<Proxy<C>, ConfigError> {
        config.validate()?;
        Ok(Proxy {
            config: Arc::new(config),
            connector: Arc::new(connector),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Accepts and proxies connections until `shutdown` is triggered; then
    /// stops accepting, closes every connection as its client ending its
    /// side would (the backend may answer the calls in flight within
    /// [`Limits::shutdown_grace`](crate::Limits::shutdown_grace)), and
    /// returns. When it returns, every socket it opened is closed.
    ///
    /// # Errors
    ///
    /// None so far: per-connection failures are logged and do not stop the
    /// proxy, and failing accepts are retried after a pause.
    pub async fn serve<L: Listener>(
        &self,
        mut listener: L,
        shutdown: Shutdown,
    ) -> std::io::Result<()> {
        let limits = self.config.limits_ref();
        // Accepting waits for a free slot: excess clients queue in the
        // kernel's backlog, and never cost a backend connection.
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut connections = JoinSet::new();
        loop {
            let next = next_connection(&mut listener, &slots, &mut connections, &shutdown, || {});
            let Some((slot, io, peer)) = next.await? else {
                break;
            };
            let proxy = self.clone();
            let shutdown = shutdown.clone();
            let address = peer.address;
            connections.spawn(async move {
                let _slot = slot;
                match proxy.serve_connection(io, address, shutdown).await {
                    Ok(()) => {}
                    Err(e @ ProxyError::Backend(_)) => {
                        tracing::warn!(?address, error = %e, "proxied connection ended");
                    }
                    Err(e) => tracing::debug!(?address, error = %e, "proxied connection ended"),
                }
            });
        }
        drop(listener);
        // A connection closes within the grace, then writes what it holds
        // and lingers; each is one task, so aborting one closes its sockets.
        let bound = limits.shutdown_grace + limits.shutdown_grace / 2 + LINGER;
        if tokio::time::timeout(bound, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
            connections.shutdown().await;
        }
        Ok(())
    }

    /// Proxies one client connection over any byte stream: the client's
    /// handshake, then the backend connection, then the relay, until one
    /// side ends it or `shutdown` is triggered.
    ///
    /// Everything the connection does runs inside this future: dropping it
    /// closes both sockets.
    ///
    /// # Errors
    ///
    /// Which side failed and why, when the connection did not end cleanly.
    /// A client refused by the handshake gets no backend connection.
    pub async fn serve_connection<S>(
        &self,
        mut io: S,
        address: Option<SocketAddr>,
        shutdown: Shutdown,
    ) -> Result<(), ProxyError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let limits = self.config.limits_ref();
        let mut buf = BytesMut::new();
        let handshake = handshake::server(&mut io, &mut buf, self.config.front());
        let Either::Right(handshake) = first_of(shutdown.triggered(), handshake).await else {
            return Ok(());
        };
        let channel = match handshake.1 {
            Ok(channel) => channel,
            Err(e) => {
                // Closed without a word, as `serve` does; lingering makes
                // the client read that end rather than a reset.
                linger(&mut io, limits.write_stall).await;
                return Err(ProxyError::Client(e));
            }
        };
        tracing::debug!(?address, client = ?channel.peer_identity(), "client accepted; connecting to the backend");
        let Either::Right(backend) = first_of(shutdown.triggered(), self.open_backend()).await
        else {
            close(io, channel, limits.write_stall).await;
            return Ok(());
        };
        match backend {
            Ok((backend, backend_buf, backend_channel)) => {
                let sides = relay::Sides {
                    client: io,
                    client_buf: buf,
                    client_channel: channel,
                    backend,
                    backend_buf,
                    backend_channel,
                };
                relay::relay(sides, limits, &shutdown).await
            }
            Err(e) => {
                close(io, channel, limits.write_stall).await;
                Err(ProxyError::Backend(e))
            }
        }
    }

    /// Connects to the backend and runs its handshake, each within its bound.
    async fn open_backend(&self) -> Result<(C::Io, BytesMut, Channel), Error> {
        let mut io =
            tokio::time::timeout(self.config.connect_time_limit(), self.connector.connect())
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connecting to the backend timed out",
                    )
                })??;
        let mut buf = BytesMut::new();
        let channel = match self.config.backend() {
            Some(encryption) => handshake::client(&mut io, &mut buf, encryption).await?,
            None => Channel::Plain,
        };
        Ok((io, buf, channel))
    }
}

/// Ends a client's connection cleanly before any message was relayed: the
/// v2 close record (nothing for v1 and plain), the end of the stream, then
/// [`linger`].
async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    channel: Channel,
    write_stall: Duration,
) {
    let (_, framer) = transport::split(channel);
    if let Some(record) = framer.close_frame() {
        let written = tokio::time::timeout(write_stall, io.write_all(&record)).await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
    linger(&mut io, write_stall).await;
}

/// Shuts the write half (within `write_stall`), then reads and discards
/// what the peer still sends until it closes too, for at most [`LINGER`].
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, write_stall: Duration) {
    if !matches!(
        tokio::time::timeout(write_stall, io.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    discard(io).await;
}

/// Reads and discards until the end of the stream, an error, or [`LINGER`].
async fn discard<R: AsyncRead + Unpin>(io: &mut R) {
    let mut scratch = vec![0; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(1..) = io.read(&mut scratch).await {}
    })
    .await;
}
