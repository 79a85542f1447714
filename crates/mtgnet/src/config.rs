//! Connection settings: encryption and limits, with documented defaults.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use mtgnet_encryption::v2::NoiseIdentity;
use mtgnet_encryption::{AuthorizedKeys, IdentitySecret, PublicKey};
use mtgnet_proto::client::DEFAULT_MAX_IN_FLIGHT;
use mtgnet_proto::framing::DEFAULT_MAX_FRAME;

use crate::error::ConfigError;
use crate::reconnect::Reconnect;

/// Default bound on a handshake: 10 s (PROTOCOL.md section 6.2).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on connecting (resolving the name, the TCP connect): 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default TCP keepalive idle time of a client's connection: 30 s (a
/// probe every 10 s after that, 3 unanswered probes fail the connection).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Which version of the encryption extension a connection speaks.
///
/// **v2** (the default for clients) is a Noise XX channel bound to the same
/// Ed25519 identities: replayed, reordered, reflected or cut-off records are
/// detected and identities travel encrypted (`docs/encryption-v2.md`).
/// **v1** is what the deployed Lisp and PHP peers speak, with its known
/// weaknesses (see the crate `mtgnet_encryption`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncryptionVersion {
    /// The deployed extension: signed X25519 keys, XSalsa20-Poly1305 frames.
    V1,
    /// Noise XX with records: `Noise_XX_25519_ChaChaPoly_BLAKE2b`.
    V2,
}

impl std::fmt::Display for EncryptionVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncryptionVersion::V1 => "v1",
            EncryptionVersion::V2 => "v2",
        })
    }
}

/// Which versions an [`Encryption`] speaks: one, or (servers only) both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Versions {
    Only(EncryptionVersion),
    Any,
}

/// How a connection is encrypted: our identity, whom we accept, how long
/// we wait, and which version of the extension we speak.
///
/// The same settings serve both roles: a server checks clients against
/// `authorized`, a client pins servers the same way. By default a server
/// accepts both versions (it tells them apart by the client's first frame)
/// and a client speaks v2; a client never falls back to another version.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use mtgnet::{AuthorizedKeys, Encryption, EncryptionVersion, IdentitySecret};
///
/// let server_identity = IdentitySecret::generate();
/// let client = Encryption::new(Arc::new(IdentitySecret::generate()))
///     .authorized(AuthorizedKeys::only([server_identity.public_key()]))
///     .handshake_timeout(Duration::from_secs(5));
/// assert!(!client.authorized_keys().is_any());
/// assert_eq!(client.client_version(), EncryptionVersion::V2);
///
/// // A client of a deployed Lisp or PHP server:
/// let legacy = client.clone().version(EncryptionVersion::V1);
/// assert_eq!(legacy.client_version(), EncryptionVersion::V1);
/// assert!(!legacy.accepts(EncryptionVersion::V2));
/// ```
#[derive(Clone, Debug)]
pub struct Encryption {
    identity: Arc<IdentitySecret>,
    /// The v2 static key, signed by `identity`: made once, on first use.
    noise: Arc<std::sync::OnceLock<NoiseIdentity>>,
    authorized: AuthorizedKeys,
    /// Set by [`Encryption::dangerous_accept_any_key`]: a client may then
    /// talk to a server whose key it does not know.
    any_key_chosen: bool,
    handshake_timeout: Duration,
    versions: Versions,
}

impl Encryption {
    /// Encrypts with `identity`, with the default handshake timeout; v2 for
    /// a client, both versions for a server.
    ///
    /// A server accepts any client key until given
    /// [`authorized`](Encryption::authorized) keys. A client must say whom
    /// it talks to: pin the server's key with
    /// [`authorized`](Encryption::authorized), or choose
    /// [`dangerous_accept_any_key`](Encryption::dangerous_accept_any_key);
    /// otherwise [`Client::new`](crate::Client::new) refuses the settings
    /// with [`ConfigError::Unpinned`](crate::ConfigError::Unpinned).
    pub fn new(identity: Arc<IdentitySecret>) -> Encryption {
        Encryption {
            identity,
            noise: Arc::default(),
            authorized: AuthorizedKeys::any(),
            any_key_chosen: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            versions: Versions::Any,
        }
    }

    /// Speaks only `version`: a client uses it (and fails, never falls
    /// back, if the server does not speak it); a server refuses clients of
    /// the other version.
    #[must_use]
    pub fn version(mut self, version: EncryptionVersion) -> Encryption {
        self.versions = Versions::Only(version);
        self
    }

    /// Speaks both versions (the default): a server tells them apart by
    /// the client's first frame; a client speaks v2.
    #[must_use]
    pub fn any_version(mut self) -> Encryption {
        self.versions = Versions::Any;
        self
    }

    /// Accepts only peers whose identity is in `authorized`.
    #[must_use]
    pub fn authorized(mut self, authorized: AuthorizedKeys) -> Encryption {
        self.authorized = authorized;
        self.any_key_chosen = false;
        self
    }

    /// Lets a client talk to a server whatever its key: the handshake still
    /// proves the server holds the secret of the key it shows, but nothing
    /// proves that key is the server's, so anyone on the path can stand in
    /// for it (and read and change every call). The deployed peers work
    /// this way; pin the key with [`authorized`](Encryption::authorized)
    /// wherever it is known.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mtgnet::{Encryption, IdentitySecret};
    ///
    /// let risky = Encryption::new(Arc::new(IdentitySecret::generate())).dangerous_accept_any_key();
    /// assert!(risky.authorized_keys().is_any());
    /// ```
    #[must_use]
    pub fn dangerous_accept_any_key(mut self) -> Encryption {
        self.authorized = AuthorizedKeys::any();
        self.any_key_chosen = true;
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

    /// The version a client speaks with these settings.
    pub fn client_version(&self) -> EncryptionVersion {
        match self.versions {
            Versions::Only(version) => version,
            Versions::Any => EncryptionVersion::V2,
        }
    }

    /// Whether a server with these settings accepts clients of `version`.
    pub fn accepts(&self, version: EncryptionVersion) -> bool {
        match self.versions {
            Versions::Only(only) => only == version,
            Versions::Any => true,
        }
    }

    /// Refuses client settings that accept any server key without having
    /// said so.
    pub(crate) fn check_pinned(&self) -> Result<(), ConfigError> {
        if self.authorized.is_any() && !self.any_key_chosen {
            return Err(ConfigError::Unpinned);
        }
        Ok(())
    }

    /// The v2 static key and its signature, made on first use.
    pub(crate) fn noise_identity(&self) -> &NoiseIdentity {
        self.noise
            .get_or_init(|| NoiseIdentity::new(&self.identity))
    }
}

/// Client settings.
///
/// Every wait has a bound by default: connecting fails after 10 s, the
/// handshake after 10 s, a call after 60 s without an answer, a write that
/// makes no progress for 30 s fails the connection, a peer that vanished
/// without closing is noticed by TCP keepalive within about a minute, and
/// at most 1,024 calls are in flight at once (further calls wait for a
/// slot). By default a client does not reconnect: see
/// [`reconnect`](ClientConfig::reconnect).
///
/// ```
/// use std::time::Duration;
/// use mtgnet::{ClientConfig, Reconnect};
///
/// let config = ClientConfig::plain()
///     .call_timeout(Duration::from_secs(30))
///     .max_in_flight(64);
/// assert!(config.encryption().is_none());
///
/// // Calls that may take as long as they need, bounded by the connection only.
/// let patient = ClientConfig::plain().call_timeout(None);
///
/// // A long-running client that survives server restarts.
/// let resilient = ClientConfig::plain()
///     .reconnect(Reconnect::new().max_delay(Duration::from_secs(10)))
///     .connect_timeout(Duration::from_secs(3));
/// assert!(resilient.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    encryption: Option<Encryption>,
    call_timeout: Option<Duration>,
    max_frame: usize,
    max_in_flight: usize,
    write_stall: Option<Duration>,
    connect_timeout: Duration,
    tcp_keepalive: Option<Duration>,
    reconnect: Option<Reconnect>,
    busy_poll: Option<Duration>,
}

/// The longest [`ClientConfig::busy_poll`] and [`ServerConfig::busy_poll`]
/// accept: a connection's thread spins at most this long after a write.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// Checks a busy-polling time against [`MAX_BUSY_POLL`].
fn check_busy_poll(spin: Option<Duration>) -> Result<(), ConfigError> {
    match spin {
        Some(spin) if spin > MAX_BUSY_POLL => Err(ConfigError::OutOfRange {
            setting: "busy_poll",
            value: format!("{spin:?}"),
            expected: format!("at most {MAX_BUSY_POLL:?} (or None: no busy polling)"),
        }),
        _ => Ok(()),
    }
}

impl ClientConfig {
    /// An unencrypted connection; 60 s call timeout, 30 s write stall,
    /// 1,024 calls in flight, 16 MiB frames, 10 s connect timeout, TCP
    /// keepalive after 30 s idle, no reconnecting.
    pub fn plain() -> ClientConfig {
        ClientConfig {
            encryption: None,
            call_timeout: Some(Duration::from_secs(60)),
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            write_stall: Some(Duration::from_secs(30)),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            reconnect: None,
            busy_poll: None,
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
    /// [`max_in_flight`](ClientConfig::max_in_flight)), for a connection
    /// while the client [reconnects](ClientConfig::reconnect), and for the
    /// answer. `None` waits as long as the connection lives (with a
    /// reconnect policy: until the policy gives up). The connection stays
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
    /// [`Error::TooManyAbandoned`](crate::Error::TooManyAbandoned) (with a
    /// [reconnect policy](ClientConfig::reconnect), a new one is made).
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

    /// Bounds connecting (default 10 s): resolving the server's name and
    /// the TCP connect for [`Client::connect`](crate::Client::connect), the
    /// connector's future for
    /// [`Client::with_connector`](crate::Client::with_connector); on every
    /// reconnect attempt too. It fails with
    /// [`Error::Io`](crate::Error::Io) of kind `TimedOut`. The handshake
    /// that follows has its own bound
    /// ([`Encryption::handshake_timeout`]). Zero is refused when the client
    /// is created.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.connect_timeout = timeout;
        self
    }

    /// TCP keepalive on the connections of
    /// [`Client::connect`](crate::Client::connect) (default 30 s): after
    /// `idle` without traffic the system sends a probe, then one every
    /// `idle / 3` (at least 1 s), and fails the connection after 3
    /// unanswered probes (Linux, macOS, the BSDs, Windows; elsewhere the
    /// system's count). A server that vanished without closing (its host
    /// lost power, a NAT or firewall forgot the connection) is thus
    /// noticed within about twice `idle` even when no call is waiting, and
    /// with a [reconnect policy](ClientConfig::reconnect) the client
    /// reconnects. `None` leaves keepalive off. Less than 1 s is refused
    /// when the client is created (the system counts whole seconds).
    ///
    /// `TCP_NODELAY` is always set: requests are written whole, at once,
    /// and must not wait for the acknowledgement of the previous one.
    #[must_use]
    pub fn tcp_keepalive(mut self, idle: impl Into<Option<Duration>>) -> ClientConfig {
        self.tcp_keepalive = idle.into();
        self
    }

    /// Reconnects when the connection drops, following `policy` (default
    /// `None`: a client dies with its connection). The client then lives
    /// until [`Client::close`](crate::Client::close), until every handle is
    /// dropped, or until the policy gives up; see
    /// [`Client::state`](crate::Client::state) to observe it.
    ///
    /// When the connection drops:
    ///
    /// * calls in flight on it fail with
    ///   [`CallError::Connection`](crate::CallError::Connection). **They may
    ///   have run**: the server may have received the request, run it,
    ///   and lost only the answer; MTGNet cannot tell. Retry only calls
    ///   that are safe to run twice.
    /// * new calls (and calls waiting for a slot) wait for the next
    ///   connection, within their [call timeout](ClientConfig::call_timeout)
    ///   ([`CallError::Timeout`](crate::CallError::Timeout) when it runs
    ///   out: such a call was never sent). They take their slot of
    ///   [`max_in_flight`](ClientConfig::max_in_flight) while waiting, so no
    ///   more calls wait than could be in flight. When the policy gives up
    ///   they fail at once with [`Error::GaveUp`](crate::Error::GaveUp).
    /// * every attempt connects again (within the
    ///   [connect timeout](ClientConfig::connect_timeout)) and runs the
    ///   handshake again with the same settings (encryption version, our
    ///   identity), and the server must prove the identity it proved on
    ///   the first connection ([`Client::peer_identity`](crate::Client::peer_identity)),
    ///   even when the authorized keys would accept others (or any): a
    ///   client talks to one server identity for its whole life. A server
    ///   with another key, or that fails to prove its key, is not retried:
    ///   a changed key is not a transient fault. The client fails for good
    ///   with [`AuthError::NotAuthorized`](crate::AuthError::NotAuthorized) (the key
    ///   presented) or [`AuthError::InvalidSignature`](crate::AuthError::InvalidSignature).
    ///   Instances behind one load balancer should thus share one identity.
    ///
    /// [`Client::connect`](crate::Client::connect) and
    /// [`Client::with_connector`](crate::Client::with_connector) can
    /// reconnect; [`Client::new`](crate::Client::new), over one stream,
    /// cannot and refuses the setting. The first connection is not retried:
    /// if it fails, creating the client fails.
    #[must_use]
    pub fn reconnect(mut self, policy: impl Into<Option<Reconnect>>) -> ClientConfig {
        self.reconnect = policy.into();
        self
    }

    /// Busy polling: after each write that leaves nothing queued, the
    /// connection's thread keeps polling for up to `spin` (at most
    /// [`MAX_BUSY_POLL`]) before it may sleep, so that the answer is read
    /// without the thread being put to sleep and woken again. `None` (the
    /// default) or zero: no busy polling.
    ///
    /// It trades CPU for latency: the thread stays busy for up to `spin`
    /// after every write. Between two processes on a 2-vCPU VM, with one
    /// call at a time, 60 µs on both sides brought the round trip from
    /// 1.4-1.7x a raw TCP echo's to 0.8-1.0x (README, Performance). Where
    /// waking a sleeping core is cheap it gains less.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mtgnet::ClientConfig;
    ///
    /// let config = ClientConfig::plain().busy_poll(Duration::from_micros(60));
    /// assert!(config.validate().is_ok());
    /// assert!(ClientConfig::plain().busy_poll(Duration::from_secs(1)).validate().is_err());
    /// ```
    #[must_use]
    pub fn busy_poll(mut self, spin: impl Into<Option<Duration>>) -> ClientConfig {
        self.busy_poll = spin.into().filter(|spin| !spin.is_zero());
        self
    }

    /// The encryption settings, if encrypted.
    pub fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_ref()
    }

    /// The reconnect policy, if any.
    pub fn reconnect_policy(&self) -> Option<&Reconnect> {
        self.reconnect.as_ref()
    }

    /// Checks that every setting can work: a pinned server key (or the
    /// explicit choice of any, see
    /// [`Encryption::dangerous_accept_any_key`]), at least one call in flight, a
    /// connect timeout above zero, a keepalive of at least 1 s, a reconnect
    /// policy that can work. Creating a client checks the same.
    ///
    /// # Errors
    ///
    /// The first setting that cannot work, by name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(encryption) = &self.encryption {
            encryption.check_pinned()?;
        }
        self.in_flight_cap()?;
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::OutOfRange {
                setting: "connect_timeout",
                value: "0s".to_owned(),
                expected: "more than zero".to_owned(),
            });
        }
        if let Some(idle) = self.tcp_keepalive {
            if idle < Duration::from_secs(1) {
                return Err(ConfigError::OutOfRange {
                    setting: "tcp_keepalive",
                    value: format!("{idle:?}"),
                    expected: "at least 1s (or None: no keepalive)".to_owned(),
                });
            }
        }
        if let Some(policy) = &self.reconnect {
            policy.validate()?;
        }
        check_busy_poll(self.busy_poll)
    }

    /// These settings, accepting only `server` as the server's key (when
    /// encrypted and known): for reconnecting to the server met first.
    pub(crate) fn pinned_to(&self, server: Option<PublicKey>) -> ClientConfig {
        let mut pinned = self.clone();
        if let (Some(encryption), Some(server)) = (&mut pinned.encryption, server) {
            encryption.authorized = AuthorizedKeys::only([server]);
        }
        pinned
    }

    pub(crate) fn connect_time_limit(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn keepalive_idle(&self) -> Option<Duration> {
        self.tcp_keepalive
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

    /// [`ClientConfig::busy_poll`]'s setting.
    pub(crate) fn busy_poll_for(&self) -> Option<Duration> {
        self.busy_poll
    }

    /// The cap on calls in flight, checked: at least 1, and no more than a
    /// semaphore can count (so that nothing panics later).
    pub(crate) fn in_flight_cap(&self) -> Result<NonZeroUsize, ConfigError> {
        let most = usize::try_from(u32::MAX)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        NonZeroUsize::new(self.max_in_flight.min(most)).ok_or_else(|| ConfigError::OutOfRange {
            setting: "max_in_flight",
            value: "0".to_owned(),
            expected: "at least 1".to_owned(),
        })
    }
}

/// Limits a server enforces on every connection, so that no client can
/// take it down. Every limit has a default that suits a public server;
/// [`Server::new`](crate::Server::new) refuses values that cannot work
/// (zero, or too large to count).
///
/// ```
/// use std::time::Duration;
/// use mtgnet::Limits;
///
/// let limits = Limits::default()
///     .max_connections(100)
///     .max_connection_bytes(4 * 1024 * 1024)
///     .idle_timeout(Duration::from_secs(30));
/// assert!(limits.validate().is_ok());
/// assert!(Limits::default().max_in_flight(0).validate().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request frame (default 16 MiB). A larger header closes the
    /// connection as soon as its digits show it, before any payload arrives.
    pub(crate) max_frame: usize,
    /// Connections served at once (default 1024). Further connections wait
    /// in the listen backlog until one closes.
    pub(crate) max_connections: usize,
    /// Calls of one connection being handled or answered at once (default
    /// 256). A call's slot is given back once its reply has been written.
    pub(crate) max_in_flight: usize,
    /// Bytes one connection may hold at once (default 32 MiB): requests
    /// being handled and replies not yet written.
    pub(crate) max_connection_bytes: usize,
    /// Calls in one request (default 1024).
    pub(crate) max_batch: usize,
    /// How long a connection may stay without a request in progress and
    /// without a complete frame arriving (default 5 min).
    pub(crate) idle_timeout: Duration,
    /// How long a write may make no progress (default 30 s).
    pub(crate) write_stall: Duration,
    /// On shutdown, how long calls in progress may take to finish (default 10 s).
    pub(crate) shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_in_flight: 256,
            max_connection_bytes: 32 * 1024 * 1024,
            max_batch: 1024,
            idle_timeout: Duration::from_secs(300),
            write_stall: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The largest request frame, in bytes (default 16 MiB). A larger
    /// header closes the connection as soon as its digits show it, before
    /// any payload arrives.
    #[must_use]
    pub fn max_frame(mut self, bytes: usize) -> Limits {
        self.max_frame = bytes;
        self
    }

    /// Connections served at once (default 1024). Further connections wait
    /// in the listen backlog until one closes.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Limits {
        self.max_connections = n;
        self
    }

    /// Calls of one connection being handled or answered at once (default
    /// 256). When reached, the server stops reading that connection until a
    /// reply has been written: back-pressure instead of unbounded buffering.
    /// A request with more calls than this runs alone, taking every slot.
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Limits {
        self.max_in_flight = n;
        self
    }

    /// Bytes one connection may hold at once (default 32 MiB): the requests
    /// it is handling plus the replies not yet written. Once it holds this
    /// much, the server stops reading that connection until the writer has
    /// drained replies. A single request or reply larger than this is still
    /// handled and sent, alone. What a connection can hold is thus about
    /// this budget plus one frame being read (`max_frame`).
    #[must_use]
    pub fn max_connection_bytes(mut self, bytes: usize) -> Limits {
        self.max_connection_bytes = bytes;
        self
    }

    /// Calls in one request (default 1024). Every call of a larger request
    /// gets a `batch-too-large` error result and none runs.
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Limits {
        self.max_batch = n;
        self
    }

    /// A connection with no request in progress and no complete frame
    /// arriving for this long is closed (default 5 min). Also bounds a frame
    /// trickled in slowly.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Limits {
        self.idle_timeout = timeout;
        self
    }

    /// A write to the peer that makes no progress for this long (the peer
    /// stopped reading) closes the connection (default 30 s). Every byte the
    /// socket accepts restarts the clock, so a large reply over a slow but
    /// live link is not cut.
    #[must_use]
    pub fn write_stall(mut self, timeout: Duration) -> Limits {
        self.write_stall = timeout;
        self
    }

    /// On shutdown, how long calls in progress may take to finish (default
    /// 10 s); zero answers only what is already done.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Limits {
        self.shutdown_grace = grace;
        self
    }

    /// Checks that every limit can work: counts and sizes are at least 1
    /// (and small enough to count permits), timeouts are not zero.
    ///
    /// # Errors
    ///
    /// The first setting that cannot work, by name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Permits are counted in u32 by tokio's `acquire_many`.
        let max = u32::MAX as usize;
        let counts = [
            ("max_frame", self.max_frame, usize::MAX),
            ("max_connections", self.max_connections, max),
            ("max_in_flight", self.max_in_flight, max),
            (
                "max_connection_bytes",
                self.max_connection_bytes,
                usize::MAX,
            ),
            ("max_batch", self.max_batch, usize::MAX),
        ];
        for (setting, value, max) in counts {
            if value == 0 || value > max {
                return Err(ConfigError::OutOfRange {
                    setting,
                    value: value.to_string(),
                    expected: if max == usize::MAX {
                        "at least 1".to_owned()
                    } else {
                        format!("from 1 to {max}")
                    },
                });
            }
        }
        for (setting, value) in [
            ("idle_timeout", self.idle_timeout),
            ("write_stall", self.write_stall),
        ] {
            if value.is_zero() {
                return Err(ConfigError::OutOfRange {
                    setting,
                    value: "0s".to_owned(),
                    expected: "more than zero".to_owned(),
                });
            }
        }
        Ok(())
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
    busy_poll: Option<Duration>,
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
            busy_poll: None,
        }
    }

    /// Replaces the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> ServerConfig {
        self.limits = limits;
        self
    }

    /// Busy polling on every connection, as [`ClientConfig::busy_poll`]:
    /// after each write that leaves nothing queued, the connection's thread
    /// keeps polling for up to `spin` (at most [`MAX_BUSY_POLL`]) before it
    /// may sleep. `None` (the default) or zero: no busy polling.
    /// [`Server::new`](crate::Server::new) refuses more than the maximum.
    #[must_use]
    pub fn busy_poll(mut self, spin: impl Into<Option<Duration>>) -> ServerConfig {
        self.busy_poll = spin.into().filter(|spin| !spin.is_zero());
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

    /// [`ServerConfig::busy_poll`]'s setting.
    pub(crate) fn busy_poll_for(&self) -> Option<Duration> {
        self.busy_poll
    }

    /// Refuses a busy-polling time over [`MAX_BUSY_POLL`].
    pub(crate) fn validate_busy_poll(&self) -> Result<(), ConfigError> {
        check_busy_poll(self.busy_poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_settings_that_cannot_work_are_refused_by_name() {
        assert!(ClientConfig::plain().validate().is_ok());
        for (config, setting) in [
            (ClientConfig::plain().max_in_flight(0), "max_in_flight"),
            (
                ClientConfig::plain().connect_timeout(Duration::ZERO),
                "connect_timeout",
            ),
            (
                ClientConfig::plain().tcp_keepalive(Duration::from_millis(999)),
                "tcp_keepalive",
            ),
            (
                ClientConfig::plain().reconnect(Reconnect::new().give_up_after(0)),
                "give_up_after",
            ),
        ] {
            match config.validate() {
                Err(ConfigError::OutOfRange { setting: named, .. }) => assert_eq!(named, setting),
                other => panic!("{setting}: expected a refusal, got {other:?}"),
            }
        }
        let edges = ClientConfig::plain()
            .tcp_keepalive(Duration::from_secs(1))
            .connect_timeout(Duration::from_nanos(1))
            .reconnect(Reconnect::new());
        assert!(edges.validate().is_ok());
        assert!(ClientConfig::plain().tcp_keepalive(None).validate().is_ok());
    }

    #[test]
    fn limits_that_cannot_work_are_refused_by_name() {
        assert!(Limits::default().validate().is_ok());
        let too_many = u32::MAX as usize + 1;
        for (limits, setting) in [
            (Limits::default().max_frame(0), "max_frame"),
            (Limits::default().max_connections(0), "max_connections"),
            (
                Limits::default().max_connections(too_many),
                "max_connections",
            ),
            (Limits::default().max_in_flight(too_many), "max_in_flight"),
            (
                Limits::default().max_connection_bytes(0),
                "max_connection_bytes",
            ),
            (Limits::default().max_batch(0), "max_batch"),
            (
                Limits::default().idle_timeout(Duration::ZERO),
                "idle_timeout",
            ),
            (Limits::default().write_stall(Duration::ZERO), "write_stall"),
        ] {
            match limits.validate() {
                Err(ConfigError::OutOfRange { setting: named, .. }) => assert_eq!(named, setting),
                other => panic!("{setting}: expected a refusal, got {other:?}"),
            }
        }
        // The edges that do work.
        let edges = Limits::default()
            .max_in_flight(u32::MAX as usize)
            .max_connection_bytes(1)
            .shutdown_grace(Duration::ZERO);
        assert!(edges.validate().is_ok());
    }
}
