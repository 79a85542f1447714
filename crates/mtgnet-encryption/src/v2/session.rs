//! The outcome of a v2 handshake: the peer's identity and the two
//! directional transport keys.

use std::fmt;

use snow::HandshakeState;

use crate::keys::PublicKey;

use super::opener::Opener;
use super::record::TransportKey;
use super::sealer::Sealer;

/// Size of the Noise handshake hash (BLAKE2b).
const HANDSHAKE_HASH_SIZE: usize = 64;

/// An authenticated v2 session: the peer's identity, the handshake hash,
/// and a [`Sealer`] and an [`Opener`] with one key each (Noise's `Split()`:
/// the initiator seals with the first key and opens with the second, the
/// responder the reverse).
///
/// Only a finished handshake makes one
/// ([`Initiator::finish`](super::Initiator::finish),
/// [`Responder::finish`](super::Responder::finish)). Split it to send and
/// receive from different tasks.
///
/// ```
/// use mtgnet_encryption::{AuthorizedKeys, IdentitySecret};
/// use mtgnet_encryption::v2::{Initiator, NoiseIdentity, Opened, Responder};
///
/// let server = NoiseIdentity::new(&IdentitySecret::generate());
/// let client = NoiseIdentity::new(&IdentitySecret::generate());
/// let initiator = Initiator::new(&client, AuthorizedKeys::any());
/// let responder = Responder::new(&server, AuthorizedKeys::any(), initiator.hello())?;
/// let (message3, client_session) = initiator.finish(responder.response())?;
/// let server_session = responder.finish(&message3)?;
/// assert_eq!(client_session.peer_identity(), &server.identity());
///
/// let (mut client_sealer, _) = client_session.split();
/// let (_, mut server_opener) = server_session.split();
/// let mut close = client_sealer.close_framed()?;
/// assert_eq!(server_opener.open_in_place(&mut close[3..20])?, Opened::Closed);
/// assert_eq!(server_opener.finish_eof(), Ok(()));
/// # Ok::<(), mtgnet_encryption::Error>(())
/// ```
pub struct Session {
    initiator: bool,
    peer: PublicKey,
    handshake_hash: [u8; HANDSHAKE_HASH_SIZE],
    sealer: Sealer,
    opener: Opener,
}

impl Session {
    pub(crate) fn initiator(noise: HandshakeState, peer: PublicKey) -> Session {
        Session::new(noise, peer, true)
    }

    pub(crate) fn responder(noise: HandshakeState, peer: PublicKey) -> Session {
        Session::new(noise, peer, false)
    }

    fn new(mut noise: HandshakeState, peer: PublicKey, initiator: bool) -> Session {
        debug_assert!(noise.is_handshake_finished());
        let mut handshake_hash = [0u8; HANDSHAKE_HASH_SIZE];
        handshake_hash.copy_from_slice(noise.get_handshake_hash());
        let (mut first, mut second) = noise.dangerously_get_raw_split();
        let (first, second) = (
            TransportKey::take(&mut first),
            TransportKey::take(&mut second),
        );
        let (send, receive) = if initiator {
            (first, second)
        } else {
            (second, first)
        };
        Session {
            initiator,
            peer,
            handshake_hash,
            sealer: Sealer::new(send),
            opener: Opener::new(receive),
        }
    }

    /// The peer's identity, as proven in the handshake and accepted by the
    /// authorized keys.
    pub fn peer_identity(&self) -> &PublicKey {
        &self.peer
    }

    /// The Noise handshake hash: the same on both sides, and unique to this
    /// session (it covers the prologue and every handshake message). Usable
    /// for channel binding.
    pub fn handshake_hash(&self) -> &[u8; 64] {
        &self.handshake_hash
    }

    /// The two transport keys of Noise's `Split()`, initiator-to-responder
    /// first, for test vectors. They are the session's secrets: never call
    /// this outside tests.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn transport_keys_for_testing(&self) -> [[u8; 32]; 2] {
        let (send, receive) = (self.sealer.key_for_testing(), self.opener.key_for_testing());
        if self.initiator {
            [send, receive]
        } else {
            [receive, send]
        }
    }

    /// The sending and the receiving half.
    pub fn split(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("initiator", &self.initiator)
            .field("peer", &self.peer)
            .field("sealer", &self.sealer)
            .field("opener", &self.opener)
            .finish_non_exhaustive()
    }
}
