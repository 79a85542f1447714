//! Connection settings: encryption and limits, with documented defaults.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use mtgnet_encryption::{AuthorizedKeys, IdentitySecret, PublicKey};
use mtgnet_proto::client::DEFAULT_MAX_IN_FLIGHT;
use mtgnet_proto::framing::DEFAULT_MAX_FRAME;

use crate::error::ConfigError;

/// Default bound on a handshake: 10 s (PROTOCOL.md section 6.2).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection is encrypted: our identity, whom we accept, how long we wait.
///
/// The same settings serve both roles: a server checks clients against
/// `authorized`, a client pins servers the same way.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use mtgnet::{AuthorizedKeys, Encryption, IdentitySecret};
///
/// let server_identity = IdentitySecret::generate();
/// let client = Encryption::new(Arc::new(IdentitySecret::generate()))
///     .authorized(AuthorizedKeys::only([server_identity.public_key()]))
///     .handshake_timeout(Duration::from_secs(5));
/// assert!(!client.authorized_keys().is_any());
/// ```
#[derive(Clone, Debug)]
pub struct Encryption {
    identity: Arc<IdentitySecret>,
    authorized: AuthorizedKeys,
    handshake_timeout: Duration,
}

impl Encryption {
    /// Encrypts with `identity`, accepting any peer key, with the default handshake timeout.
    pub fn new(identity: Arc<IdentitySecret>) -> Encryption {
        Encryption {
            identity,
            authorized: AuthorizedKeys::any(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Accepts only peers whose identity is in `authorized`.
    #[must_use]
    pub fn authorized(mut self, authorized: AuthorizedKeys) -> Encryption {
        self.authorized = authorized;
        self
    }

    /// Closes connections whose handshake takes longer than `timeout`.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Encryption {
        self.handshake_timeout = timeout;
        self
    }

    /// Our identity.
    pub fn identity(&self) -> &IdentitySecret {
        &self.identity
    }

    /// Our identity's public key: what peers put in their authorized keys.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public_key()
    }

    /// Whom we accept.
    pub fn authorized_keys(&self) -> &AuthorizedKeys {
        &self.authorized
    }

    /// The handshake bound.
    pub fn handshake_time_limit(&self) -> Duration {
        self.handshake_timeout
    }
}

/// Client settings.
///
/// Every wait has a bound by default: a call fails after 60 s without an
/// answer, a write that makes no progress for 30 s fails the connection,
/// and at most 1,024 calls are in flight at once (further calls wait for a
/// slot).
///
/// ```
/// use std::time::Duration;
/// use mtgnet::ClientConfig;
///
/// let config = ClientConfig::plain()
///     .call_timeout(Duration::from_secs(30))
///     .max_in_flight(64);
/// assert!(config.encryption().is_none());
///
/// // Calls that may take as long as they need, bounded by the connection only.
/// let patient = ClientConfig::plain().call_timeout(None);
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    encryption: Option<Encryption>,
    call_timeout: Option<Duration>,
    max_frame: usize,
    max_in_flight: usize,
    write_stall: Option<Duration>,
}

impl ClientConfig {
    /// An unencrypted connection; 60 s call timeout, 30 s write stall,
    /// 1,024 calls in flight, 16 MiB frames.
    pub fn plain() -> ClientConfig {
        ClientConfig {
            encryption: None,
            call_timeout: Some(Duration::from_secs(60)),
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            write_stall: Some(Duration::from_secs(30)),
        }
    }

    /// An encrypted connection, with the same defaults as [`ClientConfig::plain`].
    pub fn encrypted(encryption: Encryption) -> ClientConfig {
        ClientConfig {
            encryption: Some(encryption),
            ..ClientConfig::plain()
        }
    }

    /// Fails a call with [`CallError::Timeout`](crate::CallError::Timeout)
    /// when it takes longer than `timeout` (default 60 s), counted from
    /// the call: waiting for a free slot (see
    /// [`max_in_flight`](ClientConfig::max_in_flight)) and for the answer.
    /// `None` waits as long as the connection lives. The connection stays
    /// usable after a timeout.
    #[must_use]
    pub fn call_timeout(mut self, timeout: impl Into<Option<Duration>>) -> ClientConfig {
        self.call_timeout = timeout.into();
        self
    }

    /// The largest response frame accepted (default 16 MiB); a larger one closes the connection.
    #[must_use]
    pub fn max_frame(mut self, bytes: usize) -> ClientConfig {
        self.max_frame = bytes;
        self
    }

    /// Calls in flight at once on the connection (default 1,024): further
    /// calls wait for a slot (back-pressure), within their call timeout. A
    /// batch takes one slot per call; a batch with more calls than this
    /// takes every slot and runs alone.
    ///
    /// A call that timed out or was cancelled keeps its slot until its
    /// answer arrives. When every slot is held by such abandoned calls,
    /// the connection is closed with
    /// [`Error::TooManyAbandoned`](crate::Error::TooManyAbandoned).
    ///
    /// 0 is refused when the client is created
    /// ([`Error::Config`](crate::Error::Config)); values above
    /// 2<sup>32</sup> − 1 mean 2<sup>32</sup> − 1.
    #[must_use]
    pub fn max_in_flight(mut self, calls: usize) -> ClientConfig {
        self.max_in_flight = calls;
        self
    }

    /// Fails the connection when a write makes no progress (the socket
    /// accepts no byte) for `limit` (default 30 s): a server that stopped
    /// reading cannot hold the client's requests forever. `None` waits as
    /// long as the socket does.
    #[must_use]
    pub fn write_stall(mut self, limit: impl Into<Option<Duration>>) -> ClientConfig {
        self.write_stall = limit.into();
        self
    }

    /// The encryption settings, if encrypted.
    pub fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_ref()
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.call_timeout
    }

    pub(crate) fn frame_limit(&self) -> usize {
        self.max_frame
    }

    pub(crate) fn write_stall_limit(&self) -> Option<Duration> {
        self.write_stall
    }

    /// The cap on calls in flight, checked: at least 1, and no more than a
    /// semaphore can count (so that nothing panics later).
    pub(crate) fn in_flight_cap(&self) -> Result<NonZeroUsize, ConfigError> {
        let most = usize::try_from(u32::MAX)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        NonZeroUsize::new(self.max_in_flight.min(most)).ok_or(ConfigError::Zero("max_in_flight"))
    }
}

/// Limits a server enforces on every connection, so that no client can
/// take it down. Every limit has a default that suits a public server.
///
/// ```
/// use std::time::Duration;
/// use mtgnet::Limits;
///
/// let limits = Limits::default().max_connections(100).idle_timeout(Duration::from_secs(30));
/// assert_eq!(limits.max_batch, 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Largest request frame (default 16 MiB). A larger header closes the
    /// connection as soon as its digits show it, before any payload arrives.
    pub max_frame: usize,
    /// Connections served at once (default 1024). Further connections wait
    /// in the listen backlog until one closes.
    pub max_connections: usize,
    /// Calls of one connection being handled at once (default 256). When
    /// reached, the server stops reading that connection until calls
    /// finish: back-pressure instead of unbounded buffering. A request with
    /// more calls than this runs alone, taking every slot.
    pub max_in_flight: usize,
    /// Calls in one request (default 1024). Every call of a larger request
    /// gets a `batch-too-large` error result and none runs.
    pub max_batch: usize,
    /// A connection with no request in progress and no complete frame
    /// arriving for this long is closed (default 5 min). Also bounds a frame
    /// trickled in slowly.
    pub idle_timeout: Duration,
    /// On shutdown, how long calls in progress may take to finish (default 10 s).
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_in_flight: 256,
            max_batch: 1024,
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_frame`].
    #[must_use]
    pub fn max_frame(mut self, bytes: usize) -> Limits {
        self.max_frame = bytes;
        self
    }

    /// Sets [`Limits::max_connections`] (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Limits {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`Limits::max_in_flight`] (at least 1).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Limits {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets [`Limits::max_batch`].
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Limits {
        self.max_batch = n;
        self
    }

    /// Sets [`Limits::idle_timeout`].
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Limits {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`Limits::shutdown_grace`].
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Limits {
        self.shutdown_grace = grace;
        self
    }
}

/// Server settings: encryption (or none) and limits.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::{Encryption, IdentitySecret, Limits, ServerConfig};
///
/// let config = ServerConfig::encrypted(Encryption::new(Arc::new(IdentitySecret::generate())))
///     .limits(Limits::default().max_in_flight(16));
/// assert!(config.encryption().is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    encryption: Option<Encryption>,
    limits: Limits,
}

impl ServerConfig {
    /// Unencrypted connections, default limits.
    pub fn plain() -> ServerConfig {
        ServerConfig::default()
    }

    /// Encrypted connections, default limits.
    pub fn encrypted(encryption: Encryption) -> ServerConfig {
        ServerConfig {
            encryption: Some(encryption),
            limits: Limits::default(),
        }
    }

    /// Replaces the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> ServerConfig {
        self.limits = limits;
        self
    }

    /// The encryption settings, if encrypted.
    pub fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_ref()
    }

    /// The limits.
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }
}
