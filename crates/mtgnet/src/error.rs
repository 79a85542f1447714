//! Errors of connections and calls.

use std::io;
use std::sync::Arc;

use mtgnet_encryption::{DecryptError, PublicKey, RecordError};
use mtgnet_proto::framing::FrameError;
use mtgnet_proto::{Condition, MessageError, ProtocolError, RequestError};

/// Why a connection failed or closed, grouped by who is at fault.
///
/// | Variant | At fault | Meaning |
/// |---|---|---|
/// | [`Io`](Error::Io) | the transport | connect, read or write failed, or a write stalled |
/// | [`Peer`](Error::Peer) | the peer | it sent bytes no correct peer sends, or cut the stream ([`PeerError`]) |
/// | [`Auth`](Error::Auth) | the peer's identity | it is not who we accept, or could not prove who it is ([`AuthError`]) |
/// | [`Closed`](Error::Closed) | nobody | the connection closed cleanly, or after an earlier error |
/// | [`Config`](Error::Config), [`TooManyAbandoned`](Error::TooManyAbandoned), [`GaveUp`](Error::GaveUp), [`Request`](Error::Request) | this side | settings that cannot work, a call table full of abandoned calls, a reconnect policy that gave up |
///
/// The detail follows PROTOCOL.md section 6.4 in the sub-enums, so every
/// failure can be told apart: framing, JSON/protocol, handshake, invalid
/// signature, not authorized (with the key), decryption, closed. The
/// groups display as their detail, so the messages are those of the
/// detail.
///
/// A client that pins one server key, meeting a server with another:
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::{AuthError, AuthorizedKeys, Client, ClientConfig, Encryption, Error, IdentitySecret};
/// use mtgnet::{Registry, Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let impostor = Arc::new(IdentitySecret::generate());
/// let server = Server::new(Registry::new(), ServerConfig::encrypted(Encryption::new(Arc::clone(&impostor)))).unwrap();
/// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// let shutdown = mtgnet::Shutdown::new();
/// tokio::spawn(async move { server.serve_connection(server_io, None, shutdown).await });
///
/// let expected = IdentitySecret::generate().public_key();
/// let config = ClientConfig::encrypted(
///     Encryption::new(Arc::new(IdentitySecret::generate())).authorized(AuthorizedKeys::only([expected])),
/// );
/// let err = Client::new(client_io, config).await.unwrap_err();
/// assert!(matches!(err, Error::Auth(AuthError::NotAuthorized(key)) if key == impostor.public_key()));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed: connect, read, write, or a write that stalled.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol: it sent bytes no correct peer sends,
    /// or cut the stream.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The peer is not who we accept, or could not prove who it is.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The connection closed (by the peer cleanly, or after an earlier error).
    #[error("connection closed")]
    Closed,
    /// Local: a setting cannot work; reported when the client or server is
    /// created.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Local: every slot for calls in flight
    /// ([`ClientConfig::max_in_flight`](crate::ClientConfig::max_in_flight))
    /// was held by calls whose callers gave up (timed out or cancelled)
    /// and that the server left unanswered: no call could be sent any
    /// more, so the client closed the connection.
    #[error(
        "closed: the server left all {max_in_flight} calls in flight unanswered after their callers gave up"
    )]
    TooManyAbandoned {
        /// The cap on calls in flight that abandoned calls filled.
        max_in_flight: usize,
    },
    /// Local: the client's [reconnect policy](crate::Reconnect) gave up:
    /// this many connection attempts in a row failed (see
    /// [`Reconnect::give_up_after`](crate::Reconnect::give_up_after)).
    /// Every waiting call and every later one fails with this.
    #[error("gave up reconnecting after {attempts} attempts; the last failure: {last}")]
    GaveUp {
        /// Connection attempts made since the last working connection.
        attempts: u32,
        /// Why the last attempt failed (or the last connection ended).
        #[source]
        last: Arc<Error>,
    },
    /// Local: the client's table of calls in flight refused a request. The
    /// client waits for free slots and hands out fresh ids, so this does
    /// not happen; it is reported instead of panicking if it ever does.
    #[error("request refused: {0}")]
    Request(#[from] RequestError),
}

/// The peer broke the protocol: it sent bytes no correct peer sends, or
/// cut the stream. Inside [`Error::Peer`].
///
/// Decryption failures say only that a frame or record did not open, never
/// why, so they are no oracle.
///
/// ```
/// use mtgnet::{Client, ClientConfig, ClientState, Error, PeerError};
/// use tokio::io::AsyncWriteExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (client_io, mut server_io) = tokio::io::duplex(1024);
/// let (client, driver) = Client::new(client_io, ClientConfig::plain()).await.unwrap();
/// server_io.write_all(b"x:not a netstring\n").await.unwrap();
/// driver.await;
/// let ClientState::Failed(err) = client.state() else { panic!("the client did not fail") };
/// assert!(matches!(&*err, Error::Peer(PeerError::Framing(_))));
/// assert!(err.to_string().starts_with("framing error: "));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer's bytes are not valid netstring+.
    #[error("framing error: {0}")]
    Framing(#[from] FrameError),
    /// A payload is not a valid request or response message.
    #[error("invalid message: {0}")]
    Message(#[from] MessageError),
    /// A response does not fit the calls in flight.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The handshake did not complete: wrong size, connection closed, or timeout.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeFailure),
    /// A sealed frame did not open.
    #[error("decryption failed: {0}")]
    Decrypt(#[from] DecryptError),
    /// Encryption v2: a record did not open (altered, replayed, reordered,
    /// reflected, or from another session) or broke the record rules.
    #[error("encrypted record rejected: {0}")]
    Record(RecordError),
    /// Encryption v2: the stream ended without the peer's close record, so
    /// it may have been cut by someone in between (compare
    /// [`Error::Closed`], a clean end).
    #[error("the connection was cut: it ended without the peer's close record (truncated)")]
    Truncated,
}

/// The peer is not who we accept, or could not prove who it is. Inside
/// [`Error::Auth`]; reconnecting does not help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer's handshake signature does not verify.
    #[error("handshake signature is invalid")]
    InvalidSignature,
    /// The peer proved its identity, but it is not in our authorized keys.
    #[error("peer key {0} is not authorized")]
    NotAuthorized(PublicKey),
    /// Encryption v2: the peer closed the connection right after the
    /// handshake, before any record. A v2 server does exactly this to a
    /// client whose key it does not authorize.
    #[error(
        "the peer closed the connection right after the handshake: the server probably does not authorize this client's key"
    )]
    EndedAfterHandshake,
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Error {
        Error::Peer(e.into())
    }
}

impl From<MessageError> for Error {
    fn from(e: MessageError) -> Error {
        Error::Peer(e.into())
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Error {
        Error::Peer(e.into())
    }
}

impl From<HandshakeFailure> for Error {
    fn from(e: HandshakeFailure) -> Error {
        Error::Peer(e.into())
    }
}

impl From<DecryptError> for Error {
    fn from(e: DecryptError) -> Error {
        Error::Peer(e.into())
    }
}

/// A setting that cannot work, refused when a client or server is created
/// (inside [`Error::Config`] for a client) instead of a panic later.
///
/// ```
/// use mtgnet::{Client, ClientConfig, ConfigError, Error, Limits, Registry, Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = ServerConfig::plain().limits(Limits::default().max_in_flight(0));
/// let err = Server::new(Registry::new(), config).unwrap_err();
/// assert!(matches!(err, ConfigError::OutOfRange { setting: "max_in_flight", .. }));
/// assert_eq!(err.to_string(), "max_in_flight is 0; it must be from 1 to 4294967295");
///
/// let (client_io, _server_io) = tokio::io::duplex(1024);
/// let err = Client::new(client_io, ClientConfig::plain().max_in_flight(0)).await.unwrap_err();
/// assert!(matches!(err, Error::Config(ConfigError::OutOfRange { setting: "max_in_flight", .. })));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit is zero, or too large to count.
    #[error("{setting} is {value}; it must be {expected}")]
    OutOfRange {
        /// The setting, as its method is named.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// An encrypted client would accept any server key, and nobody chose
    /// that: see [`Encryption::dangerous_accept_any_key`](crate::Encryption::dangerous_accept_any_key).
    #[error(
        "the server's key is not pinned: give the client the server's key (`Encryption::authorized`), \
         or choose `Encryption::dangerous_accept_any_key`"
    )]
    Unpinned,
    /// A setting that the way the client was made cannot honour, such as
    /// a [reconnect policy](crate::ClientConfig::reconnect) for
    /// [`Client::new`](crate::Client::new), which has one stream and no
    /// way to open another.
    #[error("{setting} cannot be used here: {reason}")]
    NotApplicable {
        /// The setting, as its method is named.
        setting: &'static str,
        /// Why, and what to use instead.
        reason: &'static str,
    },
}

/// The ways a handshake can fail before any signature is checked.
///
/// It reaches callers inside [`PeerError::Handshake`]. A peer that answers the
/// handshake with a 5-byte payload:
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::{Client, ClientConfig, Encryption, EncryptionVersion, Error, HandshakeFailure, IdentitySecret, PeerError};
/// use tokio::io::AsyncWriteExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (client_io, mut server_io) = tokio::io::duplex(64 * 1024);
/// server_io.write_all(b"5:hello\n").await.unwrap();
/// let identity = Arc::new(IdentitySecret::generate());
/// let config = ClientConfig::encrypted(Encryption::new(identity).dangerous_accept_any_key().version(EncryptionVersion::V1));
/// let err = Client::new(client_io, config).await.unwrap_err();
/// assert!(matches!(err, Error::Peer(PeerError::Handshake(HandshakeFailure::Size { len: 5 }))));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The peer's handshake payload is not exactly 128 bytes.
    #[error("handshake payload must be 128 bytes, got {len}")]
    Size {
        /// The payload length received.
        len: usize,
    },
    /// The handshake frame is not valid netstring+ (or longer than 128 bytes).
    #[error("bad handshake frame: {0}")]
    Frame(FrameError),
    /// The peer closed the connection before sending its handshake.
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// The handshake did not finish in time.
    #[error("the handshake timed out")]
    Timeout,
    /// The peer's ephemeral key cannot be used for a key exchange.
    #[error("key exchange failed: the peer's ephemeral key is invalid")]
    KeyExchange,
    /// Encryption v2: the server sent a v1 handshake frame; it speaks only
    /// encryption v1. A v2 client does not fall back: choose
    /// [`EncryptionVersion::V1`](crate::EncryptionVersion::V1) to accept
    /// v1's weaker protection.
    #[error(
        "the server speaks only encryption v1 (a v2 client does not fall back; choose v1 to accept its weaker protection)"
    )]
    OnlyV1,
    /// Encryption v2: a handshake message has the wrong size.
    #[error("handshake message {message} must be {expected} bytes, got {len}")]
    MessageSize {
        /// Which Noise message: 1, 2 or 3.
        message: u8,
        /// The size the protocol fixes.
        expected: usize,
        /// The size received.
        len: usize,
    },
    /// Encryption v2: a handshake message failed authentication.
    #[error("handshake message failed authentication")]
    Authentication,
    /// The client's first frame is neither a handshake this server
    /// accepts (v1 or v2, as configured) nor anything else it can answer.
    #[error("the first frame is not a handshake of an accepted encryption version")]
    Version,
    /// Encryption v2: a handshake payload is malformed.
    #[error("malformed handshake")]
    Malformed,
}

impl From<mtgnet_encryption::HandshakeError> for Error {
    fn from(e: mtgnet_encryption::HandshakeError) -> Error {
        use mtgnet_encryption::HandshakeError as E;
        match e {
            E::Size { len } => HandshakeFailure::Size { len }.into(),
            E::InvalidSignature => AuthError::InvalidSignature.into(),
            E::NotAuthorized(key) => AuthError::NotAuthorized(key).into(),
            E::OnlyV1 => HandshakeFailure::OnlyV1.into(),
            E::MessageSize {
                message,
                expected,
                len,
            } => HandshakeFailure::MessageSize {
                message,
                expected,
                len,
            }
            .into(),
            E::Authentication => HandshakeFailure::Authentication.into(),
            E::KeyExchange => HandshakeFailure::KeyExchange.into(),
            // The first frame and the payload layout: a malformed handshake.
            _ => HandshakeFailure::Malformed.into(),
        }
    }
}

impl From<RecordError> for Error {
    fn from(e: RecordError) -> Error {
        match e {
            RecordError::Truncated => Error::Peer(PeerError::Truncated),
            e => Error::Peer(PeerError::Record(e)),
        }
    }
}

/// Why a call did not return a value.
///
/// ```
/// # async fn example(client: mtgnet::Client) {
/// use mtgnet::CallError;
///
/// match client.call::<_, i64>("Test", "fail", ()).await {
///     Ok(value) => println!("got {value}"),
///     Err(CallError::Remote(condition)) => println!("the server said {}: {}", condition.code, condition.message),
///     Err(CallError::Connection(e)) => println!("connection lost: {e}"),
///     Err(other) => println!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The server answered with an error condition.
    #[error("remote error {0}")]
    Remote(Condition),
    /// The connection failed or closed before the result arrived.
    #[error("{0}")]
    Connection(Arc<Error>),
    /// No result arrived within the call timeout; the connection stays usable.
    #[error("the call timed out")]
    Timeout,
    /// The arguments could not be serialized to JSON.
    #[error("the arguments cannot be serialized: {0}")]
    Arguments(Arc<serde_json::Error>),
    /// The result data does not fit the requested type.
    #[error("the result does not fit the requested type: {0}")]
    Decode(Arc<serde_json::Error>),
}

impl CallError {
    /// The remote condition, when the server answered with one.
    pub fn remote(&self) -> Option<&Condition> {
        match self {
            CallError::Remote(c) => Some(c),
            _ => None,
        }
    }
}
