//! The crate's errors: one [`Error`] with a detail enum per operation.
//!
//! Who is at fault decides the group: [`HandshakeError`] and
//! [`DecryptError`] mean the peer (or the network) sent bad bytes and the
//! connection must be dropped; [`KeyError`] and [`AuthorizedKeysError`] mean
//! the caller's configuration is wrong. Cryptographic failures say only that
//! they failed, never why, so they cannot serve as an oracle.

use crate::PublicKey;

/// Any error of this crate.
///
/// ```
/// use mtgnet_encryption::{Error, IdentitySecret};
///
/// let err: Error = "not a key".parse::<IdentitySecret>().unwrap_err().into();
/// assert!(matches!(err, Error::Key(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key could not be decoded (caller's configuration).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// An authorized-keys file could not be parsed (caller's configuration).
    #[error(transparent)]
    AuthorizedKeys(#[from] AuthorizedKeysError),
    /// A signed message did not verify (peer's bytes).
    #[error(transparent)]
    InvalidSignature(#[from] InvalidSignature),
    /// The handshake failed (peer's bytes); drop the connection.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A sealed frame did not open (peer's or network's bytes); drop the connection.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// Reading a secret failed (caller's environment).
    #[error("cannot read the secret: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a secret or public key could not be decoded.
///
/// ```
/// use mtgnet_encryption::{IdentitySecret, KeyError};
///
/// let err = IdentitySecret::from_bytes(&[0; 32]).unwrap_err();
/// assert!(matches!(err, KeyError::WrongLength { expected: 64, len: 32 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key decodes to the wrong number of bytes.
    #[error("wrong key length: expected {expected} bytes, got {len}")]
    WrongLength {
        /// The required length: 64 for a secret, 32 for a public key.
        expected: usize,
        /// The length found.
        len: usize,
    },
    /// The text is not standard padded base64 (RFC 4648, `+/`, `=`).
    #[error("key is not valid standard base64 (RFC 4648, '+/' alphabet, '=' padding)")]
    Base64,
    /// The last base64 character has non-zero unused bits: lenient decoders
    /// would accept it, but it is not the canonical encoding of any key.
    #[error("key is non-canonical base64: the unused bits of its last character are not zero")]
    NonCanonicalBase64,
    /// A 64-byte secret whose second half is not the public key of its first half.
    #[error("secret key is corrupt: its public half does not match its seed")]
    PublicHalfMismatch,
}

/// A signature that does not verify under the given public key.
///
/// ```
/// use mtgnet_encryption::{IdentitySecret, InvalidSignature};
///
/// let key = IdentitySecret::generate().public_key();
/// assert_eq!(key.open_signed(&[0; 70]), Err(InvalidSignature));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid signature")]
pub struct InvalidSignature;

/// Why a handshake failed. In every case the connection must be dropped.
///
/// ```
/// use mtgnet_encryption::{AuthorizedKeys, Handshake, HandshakeError, IdentitySecret};
///
/// let handshake = Handshake::new(&IdentitySecret::generate(), AuthorizedKeys::any());
/// let err = handshake.finish(&[0; 12]).unwrap_err();
/// assert_eq!(err, HandshakeError::Size { len: 12 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's handshake payload is not exactly 128 bytes.
    #[error("handshake payload must be 128 bytes, got {len}")]
    Size {
        /// The length received.
        len: usize,
    },
    /// The peer's ephemeral key is not validly signed by the identity it sent.
    #[error("handshake signature is invalid")]
    InvalidSignature,
    /// The peer proved its identity, but that identity is not in the
    /// authorized keys (the seed's client-not-authorized condition).
    #[error("peer key {0} is not authorized")]
    NotAuthorized(PublicKey),
    /// The peer's ephemeral key has small order: the shared secret would be
    /// all zero, so no session key can be derived.
    #[error("key exchange failed: the peer's ephemeral key is invalid")]
    KeyExchange,
}

/// A sealed frame that did not open. Deliberately says nothing more.
///
/// ```
/// use mtgnet_encryption::{DecryptError, PublicKey, Session};
///
/// let session = Session::from_key_bytes(&[7; 32], PublicKey::from_bytes(&[9; 32]));
/// assert_eq!(session.open(&[0; 10]), Err(DecryptError::TooShort { len: 10 }));
/// assert_eq!(session.open(&[0; 50]), Err(DecryptError::Authentication));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The payload is shorter than nonce + MAC (40 bytes).
    #[error("encrypted frame too short: {len} bytes, at least 40 required")]
    TooShort {
        /// The payload length received.
        len: usize,
    },
    /// The MAC did not verify: wrong key, or the bytes were altered.
    #[error("encrypted frame failed authentication")]
    Authentication,
}

/// A line of an authorized-keys file that is not a public key.
///
/// ```
/// use mtgnet_encryption::AuthorizedKeys;
///
/// let err = AuthorizedKeys::parse("# keys\n\nnot-a-key\n").unwrap_err();
/// assert_eq!(err.line, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authorized keys, line {line}: {reason}")]
pub struct AuthorizedKeysError {
    /// 1-based line number.
    pub line: usize,
    /// Why the key on that line was rejected.
    pub reason: KeyError,
}
