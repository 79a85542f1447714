//! Per-connection X25519 keys and the session key derived from them.

use std::fmt;

use crate::error::HandshakeError;
use crate::sodium::{self, Protection, SecretBytes};

/// Size of an X25519 key and of a session key.
const KEY_SIZE: usize = 32;

/// An ephemeral X25519 secret key, in protected memory, wiped on drop.
///
/// ```
/// use mtgnet_encryption::EphemeralSecret;
///
/// let secret = EphemeralSecret::generate();
/// assert_eq!(secret.public_key().len(), 32);
/// assert_eq!(format!("{secret:?}"), "EphemeralSecret([REDACTED])");
/// ```
pub struct EphemeralSecret(SecretBytes<KEY_SIZE>);

impl EphemeralSecret {
    /// A fresh random secret.
    pub fn generate() -> EphemeralSecret {
        EphemeralKeypair::generate().secret
    }

    /// A fixed secret, for test vectors only: an ephemeral key must be fresh
    /// for every connection, or forward secrecy is lost.
    #[doc(hidden)]
    pub fn from_bytes(secret: &[u8; KEY_SIZE]) -> EphemeralSecret {
        EphemeralSecret(SecretBytes::new_with(|bytes| bytes.copy_from_slice(secret)))
    }

    /// The matching public key (`crypto_scalarmult_base`).
    pub fn public_key(&self) -> [u8; KEY_SIZE] {
        self.0.expose_secret(sodium::scalarmult_base)
    }

    /// Runs `f` with the raw 32-byte secret. Don't copy it out of the closure.
    pub fn expose_secret<R>(&self, f: impl FnOnce(&[u8; KEY_SIZE]) -> R) -> R {
        self.0.expose_secret(f)
    }
}

impl fmt::Debug for EphemeralSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EphemeralSecret([REDACTED])")
    }
}

/// An ephemeral X25519 key pair (`crypto_box_keypair`), made for one
/// connection and consumed by the key exchange.
///
/// ```
/// use mtgnet_encryption::EphemeralKeypair;
///
/// let alice = EphemeralKeypair::generate();
/// let bob = EphemeralKeypair::generate();
/// let (alice_public, bob_public) = (*alice.public_key(), *bob.public_key());
/// let alice_key = alice.into_session_key(&bob_public)?;
/// let bob_key = bob.into_session_key(&alice_public)?;
/// assert!(alice_key.expose_secret(|a| bob_key.expose_secret(|b| a == b)));
/// # Ok::<(), mtgnet_encryption::HandshakeError>(())
/// ```
#[derive(Debug)]
pub struct EphemeralKeypair {
    public: [u8; KEY_SIZE],
    secret: EphemeralSecret,
}

impl EphemeralKeypair {
    /// A fresh random key pair.
    ///
    /// The secret is read-only ([`Protection::ReadOnly`]) rather than
    /// inaccessible between uses: it lives for one handshake, which is
    /// exactly when it is in use, and unprotecting it for each use would
    /// add page-table changes (and their cross-core TLB flushes) to every
    /// connection. It is still locked, guarded, and wiped when the key
    /// exchange consumes it.
    pub fn generate() -> EphemeralKeypair {
        let mut public = [0u8; KEY_SIZE];
        let secret = SecretBytes::with_protection(Protection::ReadOnly, |sk| {
            sodium::box_keypair(&mut public, sk)
        });
        EphemeralKeypair {
            public,
            secret: EphemeralSecret(secret),
        }
    }

    /// The key pair of a given secret.
    pub fn from_secret(secret: EphemeralSecret) -> EphemeralKeypair {
        EphemeralKeypair {
            public: secret.public_key(),
            secret,
        }
    }

    /// The public key, sent (signed) in the handshake.
    pub fn public_key(&self) -> &[u8; KEY_SIZE] {
        &self.public
    }

    /// The secret key.
    pub fn secret(&self) -> &EphemeralSecret {
        &self.secret
    }

    /// Derives the session key with the peer's ephemeral public key
    /// (`crypto_box_beforenm`) and wipes the ephemeral secret, whatever the
    /// outcome.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::KeyExchange`] if the peer's key has small order
    /// (the X25519 result is all zero).
    pub fn into_session_key(
        self,
        peer_public: &[u8; KEY_SIZE],
    ) -> Result<SessionKey, HandshakeError> {
        let key = SecretBytes::try_with_protection(Protection::ReadOnly, |key| {
            self.secret.expose_secret(|secret| {
                if sodium::box_beforenm(key, peer_public, secret) {
                    Ok(())
                } else {
                    Err(HandshakeError::KeyExchange)
                }
            })
        })?;
        Ok(SessionKey(key))
    }
}

/// The 32-byte key both parties derive in the handshake
/// (`crypto_box_beforenm`), in protected memory, wiped on drop.
///
/// Unlike the other secrets, the session key is kept read-only
/// ([`Protection::ReadOnly`]) for its whole lifetime rather than
/// inaccessible between uses: it is the one secret used for every frame,
/// and toggling the page protection per frame (two `mprotect` syscalls,
/// TLB shootdowns on a multi-threaded process, and a lock) would cost more
/// than the encryption itself. It still lives between guard pages, locked
/// against swapping, is never writable after the key exchange, never
/// cloned, and wiped and freed on drop. The cost is that a stray read
/// elsewhere in the process that reaches its page can see the key while the
/// session lives.
///
/// ```
/// use mtgnet_encryption::SessionKey;
///
/// let key = SessionKey::from_bytes(&[7; 32]);
/// assert_eq!(key.expose_secret(|k| k[0]), 7);
/// assert_eq!(format!("{key:?}"), "SessionKey([REDACTED])");
/// ```
pub struct SessionKey(SecretBytes<KEY_SIZE>);

impl SessionKey {
    /// A fixed key, for test vectors and fuzzing.
    #[doc(hidden)]
    pub fn from_bytes(key: &[u8; KEY_SIZE]) -> SessionKey {
        SessionKey(SecretBytes::with_protection(
            Protection::ReadOnly,
            |bytes| bytes.copy_from_slice(key),
        ))
    }

    /// The address of the key's region, for tests of its page protection.
    #[doc(hidden)]
    pub fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// Runs `f` with the raw 32-byte key: a plain borrow, no syscall. Don't
    /// copy it out of the closure.
    #[inline]
    pub fn expose_secret<R>(&self, f: impl FnOnce(&[u8; KEY_SIZE]) -> R) -> R {
        self.0.expose_secret(f)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([REDACTED])")
    }
}
