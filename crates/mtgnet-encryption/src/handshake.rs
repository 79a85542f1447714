//! The v1 handshake (PROTOCOL 6.2), sans IO: a payload out, a payload in, a [`Session`].

use std::fmt;

use crate::HANDSHAKE_PAYLOAD_SIZE;
use crate::authorized::AuthorizedKeys;
use crate::ephemeral::{EphemeralKeypair, EphemeralSecret};
use crate::error::HandshakeError;
use crate::keys::{IdentitySecret, PublicKey};
use crate::session::Session;

/// One side of the handshake. Both sides are the same; there is no
/// initiator.
///
/// Call order: [`new`](Self::new), send [`payload`](Self::payload) as one
/// frame, read one frame from the peer (at most 128 bytes), pass it to
/// [`finish`](Self::finish). `finish` consumes the handshake, so a
/// [`Session`] exists only once the peer is authenticated and authorized,
/// and the ephemeral secret is wiped whether it succeeds or not.
///
/// ```
/// use mtgnet_encryption::{AuthorizedKeys, Handshake, IdentitySecret};
///
/// let alice = IdentitySecret::generate();
/// let bob = IdentitySecret::generate();
/// let a = Handshake::new(&alice, AuthorizedKeys::only([bob.public_key()]));
/// let b = Handshake::new(&bob, AuthorizedKeys::any());
/// let (a_payload, b_payload) = (*a.payload(), *b.payload());
/// let a_session = a.finish(&b_payload)?;
/// let b_session = b.finish(&a_payload)?;
/// assert_eq!(a_session.peer_identity(), &bob.public_key());
/// assert_eq!(b_session.open(&a_session.seal(b"hi"))?, b"hi");
/// # Ok::<(), mtgnet_encryption::Error>(())
/// ```
pub struct Handshake {
    authorized: AuthorizedKeys,
    ephemeral: EphemeralKeypair,
    payload: [u8; HANDSHAKE_PAYLOAD_SIZE],
}

impl Handshake {
    /// Starts a handshake: makes a fresh ephemeral key pair and the payload
    /// `identity_pk (32) || crypto_sign(e_pk) (96)`.
    pub fn new(identity: &IdentitySecret, authorized: AuthorizedKeys) -> Handshake {
        Handshake::with_ephemeral(identity, authorized, EphemeralKeypair::generate())
    }

    /// [`new`](Self::new) with a fixed ephemeral secret, for test vectors
    /// (feature `test-hooks`). Never reuse an ephemeral secret across
    /// connections.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn with_ephemeral_secret(
        identity: &IdentitySecret,
        authorized: AuthorizedKeys,
        ephemeral_secret: &[u8; 32],
    ) -> Handshake {
        Handshake::with_fixed_ephemeral(identity, authorized, ephemeral_secret)
    }

    /// A handshake with a fixed ephemeral secret, for fuzzing.
    pub(crate) fn with_fixed_ephemeral(
        identity: &IdentitySecret,
        authorized: AuthorizedKeys,
        ephemeral_secret: &[u8; 32],
    ) -> Handshake {
        let ephemeral =
            EphemeralKeypair::from_secret(EphemeralSecret::from_bytes(ephemeral_secret));
        Handshake::with_ephemeral(identity, authorized, ephemeral)
    }

    fn with_ephemeral(
        identity: &IdentitySecret,
        authorized: AuthorizedKeys,
        ephemeral: EphemeralKeypair,
    ) -> Handshake {
        let signed = identity.sign(ephemeral.public_key());
        let mut payload = [0u8; HANDSHAKE_PAYLOAD_SIZE];
        payload[..32].copy_from_slice(identity.public_key().as_bytes());
        payload[32..].copy_from_slice(&signed);
        Handshake {
            authorized,
            ephemeral,
            payload,
        }
    }

    /// The 128 bytes to send to the peer as the handshake frame's payload.
    pub fn payload(&self) -> &[u8; HANDSHAKE_PAYLOAD_SIZE] {
        &self.payload
    }

    /// Checks the peer's handshake payload and derives the session.
    ///
    /// The checks run in this order: size, signature, authorization, key
    /// exchange.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Size`] unless `peer_payload` is 128 bytes;
    /// [`HandshakeError::InvalidSignature`] if the ephemeral key is not
    /// signed by the identity sent with it; [`HandshakeError::NotAuthorized`]
    /// (with that identity) if it is not in the authorized keys;
    /// [`HandshakeError::KeyExchange`] if the ephemeral key has small order.
    pub fn finish(self, peer_payload: &[u8]) -> Result<Session, HandshakeError> {
        let peer_payload: &[u8; HANDSHAKE_PAYLOAD_SIZE] =
            peer_payload.try_into().map_err(|_| HandshakeError::Size {
                len: peer_payload.len(),
            })?;
        let (identity, signed) = peer_payload.split_at(32);
        let peer_identity =
            PublicKey::from_bytes(identity.try_into().expect("split_at(32) yields 32 bytes"));
        let peer_ephemeral: [u8; 32] = peer_identity
            .open_signed(signed)
            .map_err(|_| HandshakeError::InvalidSignature)?
            .try_into()
            .map_err(|_| HandshakeError::InvalidSignature)?;
        if !self.authorized.is_authorized(&peer_identity) {
            return Err(HandshakeError::NotAuthorized(peer_identity));
        }
        let key = self.ephemeral.into_session_key(&peer_ephemeral)?;
        Ok(Session::new(key, peer_identity))
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("authorized", &self.authorized)
            .field("ephemeral_secret", self.ephemeral.secret())
            .finish_non_exhaustive()
    }
}
