//! Errors of connections and calls.

use std::io;
use std::sync::Arc;

use mtgnet_encryption::{DecryptError, PublicKey};
use mtgnet_proto::framing::FrameError;
use mtgnet_proto::{Condition, MessageError, ProtocolError, RequestError};

/// Why a connection failed or closed.
///
/// The variants follow PROTOCOL.md section 6.4, so a user can tell every
/// failure apart: framing, JSON/protocol, handshake, invalid signature, not
/// authorized (with the key), decryption, closed.
///
/// A client that pins one server key, meeting a server with another:
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::{AuthorizedKeys, Client, ClientConfig, Encryption, Error, IdentitySecret};
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
/// assert!(matches!(err, Error::NotAuthorized(key) if key == impostor.public_key()));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (connect, read or write).
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
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
    /// The peer's handshake signature does not verify.
    #[error("handshake signature is invalid")]
    InvalidSignature,
    /// The peer proved its identity, but it is not in our authorized keys.
    #[error("peer key {0} is not authorized")]
    NotAuthorized(PublicKey),
    /// A sealed frame did not open.
    #[error("decryption failed: {0}")]
    Decrypt(#[from] DecryptError),
    /// The connection closed (by the peer, or after an earlier error).
    #[error("connection closed")]
    Closed,
    /// Every slot for calls in flight
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
    /// The client's table of calls in flight refused a request. The
    /// client waits for free slots and hands out fresh ids, so this does
    /// not happen; it is reported instead of panicking if it ever does.
    #[error("request refused: {0}")]
    Request(#[from] RequestError),
    /// A setting cannot work; reported when the client or server is created.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}

/// A setting that cannot work, refused when a client or server is created
/// (inside [`Error::Config`] for a client) instead of a panic later.
///
/// ```
/// use mtgnet::{Client, ClientConfig, ConfigError, Error, Limits, Registry, Server, ServerConfig};
///
/// let config = ServerConfig::plain().limits(Limits::default().max_in_flight(0));
/// let err = Server::new(Registry::new(), config).unwrap_err();
/// assert!(matches!(err, ConfigError::OutOfRange { setting: "max_in_flight", .. }));
/// assert_eq!(err.to_string(), "max_in_flight is 0; it must be from 1 to 4294967295");
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
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
}

/// The ways a handshake can fail before any signature is checked.
///
/// It reaches callers inside [`Error::Handshake`]. A peer that answers the
/// handshake with a 5-byte payload:
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::{Client, ClientConfig, Encryption, Error, HandshakeFailure, IdentitySecret};
/// use tokio::io::AsyncWriteExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (client_io, mut server_io) = tokio::io::duplex(64 * 1024);
/// server_io.write_all(b"5:hello\n").await.unwrap();
/// let config = ClientConfig::encrypted(Encryption::new(Arc::new(IdentitySecret::generate())));
/// let err = Client::new(client_io, config).await.unwrap_err();
/// assert!(matches!(err, Error::Handshake(HandshakeFailure::Size { len: 5 })));
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
}

impl From<mtgnet_encryption::HandshakeError> for Error {
    fn from(e: mtgnet_encryption::HandshakeError) -> Error {
        use mtgnet_encryption::HandshakeError as E;
        match e {
            E::Size { len } => HandshakeFailure::Size { len }.into(),
            E::InvalidSignature => Error::InvalidSignature,
            E::NotAuthorized(key) => Error::NotAuthorized(key),
            _ => HandshakeFailure::KeyExchange.into(),
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
