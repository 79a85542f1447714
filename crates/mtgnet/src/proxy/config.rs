//! What a [`Proxy`](super::Proxy) accepts and where it connects: the
//! clients' encryption, the backend hop's, the limits, and the
//! [`Connector`] that opens one backend connection per client.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{DEFAULT_HANDSHAKE_TIMEOUT, Encryption, Limits};
use crate::error::ConfigError;

/// Where a [`Proxy`](super::Proxy) opens its backend connections: one per
/// client, once that client's handshake has succeeded. TCP out of the box
/// ([`TcpConnector`]); implement it for Unix-domain sockets or in-memory
/// streams.
///
/// ```
/// use mtgnet::proxy::Connector;
///
/// /// Backend connections over in-memory pipes, e.g. for a test.
/// struct Pipes(tokio::sync::mpsc::Sender<tokio::io::DuplexStream>);
///
/// impl Connector for Pipes {
///     type Io = tokio::io::DuplexStream;
///
///     async fn connect(&self) -> std::io::Result<Self::Io> {
///         let (ours, theirs) = tokio::io::duplex(64 * 1024);
///         self.0.send(theirs).await.map_err(|_| std::io::ErrorKind::ConnectionRefused)?;
///         Ok(ours)
///     }
/// }
/// ```
pub trait Connector: Send + Sync + 'static {
    /// The byte stream of one backend connection.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Opens a connection to the backend. The proxy bounds it by
    /// [`ProxyConfig::connect_timeout`].
    fn connect(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Connects to a backend over TCP, resolving its address again for every
/// connection (so a DNS name follows the backend when it moves), with
/// `TCP_NODELAY` set: whole frames are written at once.
///
/// ```
/// use mtgnet::proxy::TcpConnector;
///
/// let backend = TcpConnector::new("127.0.0.1:7707");
/// assert_eq!(backend.address(), "127.0.0.1:7707");
/// ```
#[derive(Clone, Debug)]
pub struct TcpConnector {
    address: String,
}

impl TcpConnector {
    /// Connects to `address`, `HOST:PORT`.
    pub fn new(address: impl Into<String>) -> TcpConnector {
        TcpConnector {
            address: address.into(),
        }
    }

    /// The backend's address, as given.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Connector for TcpConnector {
    type Io = TcpStream;

    async fn connect(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(self.address.as_str()).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// A proxy's settings: how clients are accepted (`front`), how the backend
/// hop is protected (plain, or an [`Encryption`] the proxy uses as the
/// backend's client), and the limits of every proxied connection.
///
/// Of the [`Limits`], a proxy applies `max_frame` (to the messages of both
/// sides), `max_connections`, `max_connection_bytes` (split evenly between
/// the two directions), `idle_timeout`, `write_stall` (on both sides) and
/// `shutdown_grace`. It relays whole messages without reading them, so
/// `max_in_flight` and `max_batch` are the backend's to enforce.
///
/// For the same reason the proxy cannot see a call in progress: a
/// connection is idle when no message has gone either way for
/// `idle_timeout`. It is then closed as a client ending its side would
/// close it, so a call still running at the backend has `shutdown_grace`
/// left to answer. Set `idle_timeout` above the longest call.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::proxy::ProxyConfig;
/// use mtgnet::{AuthorizedKeys, Encryption, EncryptionVersion, IdentitySecret, Limits};
///
/// let identity = Arc::new(IdentitySecret::generate());
/// let backend_key = IdentitySecret::generate().public_key();
/// // v2 clients in front; behind, a server that speaks only v1, pinned,
/// // which sees the proxy's identity as its client's.
/// let front = Encryption::new(Arc::clone(&identity)).version(EncryptionVersion::V2);
/// let backend = Encryption::new(identity)
///     .version(EncryptionVersion::V1)
///     .authorized(AuthorizedKeys::only([backend_key]));
/// let config = ProxyConfig::encrypted_backend(front, backend)
///     .limits(Limits::default().max_connection_bytes(4 * 1024 * 1024));
/// assert!(config.backend().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    front: Encryption,
    backend: Option<Encryption>,
    limits: Limits,
    connect_timeout: Duration,
}

impl ProxyConfig {
    /// Clients are accepted with `front`; the backend hop is not encrypted.
    /// Only for a backend the network between it and the proxy cannot
    /// reach (the same host, a private link).
    pub fn plain_backend(front: Encryption) -> ProxyConfig {
        ProxyConfig {
            front,
            backend: None,
            limits: Limits::default(),
            connect_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Clients are accepted with `front`; the proxy connects to the backend
    /// as a client encrypted with `backend`: the version it speaks
    /// ([`EncryptionVersion::V1`](crate::EncryptionVersion::V1) for the
    /// deployed Lisp and PHP servers), the identity the backend sees, and
    /// the backend's pinned keys (its `authorized` keys; or
    /// [`dangerous_accept_any_key`](Encryption::dangerous_accept_any_key),
    /// else [`Proxy::new`](super::Proxy::new) refuses the settings with
    /// [`ConfigError::Unpinned`]).
    pub fn encrypted_backend(front: Encryption, backend: Encryption) -> ProxyConfig {
        ProxyConfig {
            backend: Some(backend),
            ..ProxyConfig::plain_backend(front)
        }
    }

    /// Replaces the limits (see the type's documentation for those that apply).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> ProxyConfig {
        self.limits = limits;
        self
    }

    /// Bounds opening a backend connection (default 10 s); the backend's
    /// handshake is bounded by its own [`Encryption::handshake_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> ProxyConfig {
        self.connect_timeout = timeout;
        self
    }

    /// How clients are accepted: the proxy's identity, the client keys it
    /// authorizes, the versions it speaks.
    pub fn front(&self) -> &Encryption {
        &self.front
    }

    /// How the backend hop is encrypted; `None` when it is plain.
    pub fn backend(&self) -> Option<&Encryption> {
        self.backend.as_ref()
    }

    /// The limits.
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    /// The bound on opening a backend connection.
    pub fn connect_time_limit(&self) -> Duration {
        self.connect_timeout
    }

    /// Refuses settings that cannot work: a limit (as
    /// [`Limits::validate`]), or a zero connect timeout.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        // The proxy is the backend's client: it pins the backend's key or
        // says it does not, as every client does.
        if let Some(backend) = &self.backend {
            backend.check_pinned()?;
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::OutOfRange {
                setting: "connect_timeout",
                value: "0s".to_owned(),
                expected: "more than zero".to_owned(),
            });
        }
        Ok(())
    }
}
