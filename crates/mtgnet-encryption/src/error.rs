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
    /// An encryption v2 record did not open, or the stream ended without a
    /// close record (peer's or network's bytes); drop the connection.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An encryption v2 record could not be sealed (caller's use of the API).
    #[error(transparent)]
    Seal(#[from] SealError),
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
    /// all zero, so no session key can be derived. In v2 this covers every
    /// X25519 result of the Noise handshake (ephemeral or static keys).
    #[error("key exchange failed: the peer's ephemeral key is invalid")]
    KeyExchange,
    /// v2: a handshake message is not exactly as long as the protocol fixes
    /// (message 1 with its prologue prefix: 49 bytes, message 2: 192,
    /// message 3: 160).
    #[error("handshake message {message} must be {expected} bytes, got {len}")]
    MessageSize {
        /// Which Noise handshake message: 1, 2 or 3.
        message: u8,
        /// The required length.
        expected: usize,
        /// The length received.
        len: usize,
    },
    /// v2: where the client expects message 2, the server sent a 128-byte
    /// v1 handshake frame: it speaks only encryption v1. A v2 client never
    /// falls back; the user may choose v1 and its weaker protection.
    #[error(
        "the server speaks only encryption v1: it sent a v1 handshake frame instead of Noise message 2"
    )]
    OnlyV1,
    /// v2: the client's first frame does not start with the prologue
    /// `mtgnet-noise-xx/1`.
    #[error("the first frame does not start with the encryption v2 prologue")]
    Prologue,
    /// v2: a handshake message failed authentication (Noise could not
    /// decrypt the static key or the payload): altered bytes, or a peer
    /// that computed different keys.
    #[error("handshake message failed authentication")]
    Authentication,
    /// v2: the handshake payload (identity and signature) is not 96 bytes.
    #[error("handshake payload must be 96 bytes, got {len}")]
    PayloadSize {
        /// The length received.
        len: usize,
    },
}

/// Why an encryption v2 record could not be opened, or why the stream of
/// records ended badly. In every case the connection must be dropped; the
/// opener refuses every later record.
///
/// ```
/// use mtgnet_encryption::RecordError;
///
/// // A stream that ended without the peer's close record.
/// let err = RecordError::Truncated;
/// assert_eq!(err.to_string(), "the stream ended without a close record (truncated)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record did not decrypt under the expected key and counter:
    /// altered, replayed, reordered, reflected, from another session, or
    /// shorter than its 16-byte tag. Deliberately says nothing more.
    #[error("encrypted record failed authentication")]
    Decrypt,
    /// The record is longer than a Noise message (65,535 bytes).
    #[error("encrypted record too long: {len} bytes, at most 65535")]
    TooLong {
        /// The record length received.
        len: usize,
    },
    /// The record decrypted to nothing: it has no flag byte.
    #[error("record has no flag byte")]
    MissingFlag,
    /// The record's flag byte is not 0 (more), 1 (last) or 2 (close).
    #[error("record has unknown flag {0:#04x}")]
    UnknownFlag(u8),
    /// A close record that carries data after its flag.
    #[error("close record carries {len} bytes of data")]
    CloseWithData {
        /// How many data bytes followed the flag.
        len: usize,
    },
    /// A close record arrived while a message was still incomplete.
    #[error("close record in the middle of a message")]
    CloseMidMessage,
    /// A record arrived after the peer's close record.
    #[error("record after the close record")]
    AfterClose,
    /// The reassembled message would exceed the receiver's maximum.
    #[error("message longer than the maximum of {max} bytes")]
    MessageTooLarge {
        /// The receiver's maximum message size.
        max: usize,
    },
    /// 2^64 - 1 records have been received; Noise forbids more.
    #[error("record counter exhausted")]
    Exhausted,
    /// The stream ended (end of file) without the peer's close record:
    /// possibly cut by an attacker. Only a close record ends a session
    /// cleanly.
    #[error("the stream ended without a close record (truncated)")]
    Truncated,
    /// An earlier record failed; the opener refuses everything after it.
    #[error("an earlier record failed; the session is unusable")]
    Failed,
}

/// Why an encryption v2 record could not be sealed: the caller's use of
/// the API, never the peer's bytes.
///
/// ```
/// use mtgnet_encryption::SealError;
///
/// assert_eq!(SealError::Closed.to_string(), "the close record has been sent; nothing may follow");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The close record has already been sealed: a side sends nothing after it.
    #[error("the close record has been sent; nothing may follow")]
    Closed,
    /// Sealing would use the counter value 2^64 - 1, which Noise reserves.
    #[error("record counter exhausted")]
    Exhausted,
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
