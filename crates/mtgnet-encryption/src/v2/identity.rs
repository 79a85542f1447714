//! Binding a Noise static key to an Ed25519 identity, as libp2p-noise does.
//!
//! Noise XX authenticates X25519 static keys; MTGNet authenticates Ed25519
//! identities (key files, authorized keys, pins). Each side therefore makes
//! an X25519 static key pair when its identity is loaded (never persisted),
//! and its identity signs the static public key once:
//!
//! ```text
//! signature = Ed25519-sign(identity, "mtgnet-noise-static-key:" || static_public)
//! payload   = identity_public (32) || signature (64)        (Noise messages 2 and 3)
//! ```
//!
//! A receiver checks the signature against the static key Noise has just
//! authenticated (the sender proved it holds its private half), so an
//! identity vouches for exactly one static key, and only the holder of that
//! static key can present the identity.

use std::collections::HashSet;
use std::fmt;
use std::sync::{LazyLock, Mutex, PoisonError};

use crate::PUBLICKEY_SIZE;
use crate::authorized::AuthorizedKeys;
use crate::error::HandshakeError;
use crate::keys::{IdentitySecret, PublicKey};
use crate::sodium::{self, SecretBytes};

use super::{IDENTITY_PAYLOAD_SIZE, SIGNATURE_CONTEXT};

/// Size of an X25519 static key.
const STATIC_KEY_SIZE: usize = 32;
/// Size of an Ed25519 signature.
const SIGNATURE_SIZE: usize = 64;

/// A party's identity as encryption v2 presents it: an X25519 Noise static
/// key pair, made when the identity is loaded and never stored, and the
/// identity's signature over its public half.
///
/// Make one per identity and process, and use it for every handshake (it
/// signs nothing after construction, so handshakes never touch the identity
/// secret). The static secret lives in protected memory
/// ([`Protection::NoAccess`](crate::Protection::NoAccess)), is never
/// cloned, prints as redacted, and is wiped on drop.
///
/// ```
/// use mtgnet_encryption::IdentitySecret;
/// use mtgnet_encryption::v2::NoiseIdentity;
///
/// let identity = IdentitySecret::generate();
/// let noise = NoiseIdentity::new(&identity);
/// assert_eq!(noise.identity(), identity.public_key());
/// assert!(noise.verify_signature());
/// assert!(format!("{noise:?}").contains("REDACTED"));
/// ```
pub struct NoiseIdentity {
    identity: PublicKey,
    static_secret: SecretBytes<STATIC_KEY_SIZE>,
    static_public: [u8; STATIC_KEY_SIZE],
    signature: [u8; SIGNATURE_SIZE],
}

impl NoiseIdentity {
    /// Makes a fresh static key pair (`crypto_box_keypair`) and signs its
    /// public half with `identity`.
    pub fn new(identity: &IdentitySecret) -> NoiseIdentity {
        let mut static_public = [0u8; STATIC_KEY_SIZE];
        let static_secret = SecretBytes::new_with(|sk| sodium::box_keypair(&mut static_public, sk));
        NoiseIdentity::sign(identity, static_secret, static_public)
    }

    /// [`new`](Self::new) with a fixed static secret, for test vectors.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn with_static_secret(identity: &IdentitySecret, secret: &[u8; 32]) -> NoiseIdentity {
        NoiseIdentity::from_static_secret(identity, secret)
    }

    /// This static key with another signature, for tests of how a peer
    /// treats a signature that does not match the static key.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn with_signature(mut self, signature: [u8; 64]) -> NoiseIdentity {
        self.signature = signature;
        self
    }

    pub(crate) fn from_static_secret(
        identity: &IdentitySecret,
        secret: &[u8; STATIC_KEY_SIZE],
    ) -> NoiseIdentity {
        let static_secret = SecretBytes::new_with(|sk| sk.copy_from_slice(secret));
        let static_public = static_secret.expose_secret(sodium::scalarmult_base);
        NoiseIdentity::sign(identity, static_secret, static_public)
    }

    fn sign(
        identity: &IdentitySecret,
        static_secret: SecretBytes<STATIC_KEY_SIZE>,
        static_public: [u8; STATIC_KEY_SIZE],
    ) -> NoiseIdentity {
        let signature =
            identity.expose_secret(|sk| sodium::sign_detached(&signed_message(&static_public), sk));
        NoiseIdentity {
            identity: identity.public_key(),
            static_secret,
            static_public,
            signature,
        }
    }

    /// The Ed25519 identity this static key speaks for.
    pub fn identity(&self) -> PublicKey {
        self.identity
    }

    /// The X25519 static public key Noise sends (encrypted) in the handshake.
    pub fn static_public_key(&self) -> &[u8; 32] {
        &self.static_public
    }

    /// The identity's signature over
    /// `"mtgnet-noise-static-key:" || static_public_key`.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Whether [`signature`](Self::signature) verifies, as a peer would check it.
    pub fn verify_signature(&self) -> bool {
        sodium::sign_verify_detached(
            &self.signature,
            &signed_message(&self.static_public),
            self.identity.as_bytes(),
        )
    }

    /// The handshake payload of messages 2 and 3: identity (32) || signature (64).
    pub(crate) fn payload(&self) -> [u8; IDENTITY_PAYLOAD_SIZE] {
        let mut payload = [0u8; IDENTITY_PAYLOAD_SIZE];
        payload[..PUBLICKEY_SIZE].copy_from_slice(self.identity.as_bytes());
        payload[PUBLICKEY_SIZE..].copy_from_slice(&self.signature);
        payload
    }

    /// Runs `f` with the raw static secret. Don't copy it out of the closure.
    pub(crate) fn expose_static_secret<R>(&self, f: impl FnOnce(&[u8; STATIC_KEY_SIZE]) -> R) -> R {
        self.static_secret.expose_secret(f)
    }
}

impl fmt::Debug for NoiseIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseIdentity")
            .field("identity", &self.identity)
            .field("static_secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// What the identity signs: the context string, then the static public key.
fn signed_message(static_public: &[u8; STATIC_KEY_SIZE]) -> [u8; SIGNATURE_CONTEXT.len() + 32] {
    let mut message = [0u8; SIGNATURE_CONTEXT.len() + STATIC_KEY_SIZE];
    message[..SIGNATURE_CONTEXT.len()].copy_from_slice(SIGNATURE_CONTEXT);
    message[SIGNATURE_CONTEXT.len()..].copy_from_slice(static_public);
    message
}

/// Checks a peer's handshake payload against the static key Noise
/// authenticated, then against `authorized`, and returns the peer's identity.
///
/// The order is v1's: size, signature, authorization. A binding (identity,
/// static key, signature) that verified and was authorized before is not
/// verified again (see [`VerifiedBindings`]); authorization always is.
pub(crate) fn verify_peer(
    payload: &[u8],
    remote_static: Option<&[u8]>,
    authorized: &AuthorizedKeys,
) -> Result<PublicKey, HandshakeError> {
    static VERIFIED: LazyLock<Mutex<VerifiedBindings>> =
        LazyLock::new(|| Mutex::new(VerifiedBindings::default()));
    verify_peer_with(
        &VERIFIED,
        sodium::sign_verify_detached,
        payload,
        remote_static,
        authorized,
    )
}

/// [`verify_peer`] with its memory of verified bindings and its signature
/// check given, for tests.
fn verify_peer_with(
    verified: &Mutex<VerifiedBindings>,
    verify: impl FnOnce(&[u8; SIGNATURE_SIZE], &[u8], &[u8; PUBLICKEY_SIZE]) -> bool,
    payload: &[u8],
    remote_static: Option<&[u8]>,
    authorized: &AuthorizedKeys,
) -> Result<PublicKey, HandshakeError> {
    let payload: &[u8; IDENTITY_PAYLOAD_SIZE] = payload
        .try_into()
        .map_err(|_| HandshakeError::PayloadSize { len: payload.len() })?;
    let (identity, signature) = payload.split_at(PUBLICKEY_SIZE);
    let (Ok(identity), Ok(signature)) = (
        <&[u8; PUBLICKEY_SIZE]>::try_from(identity),
        <&[u8; SIGNATURE_SIZE]>::try_from(signature),
    ) else {
        return Err(HandshakeError::PayloadSize { len: payload.len() });
    };
    // Noise has authenticated the remote static key by the time a payload
    // after it decrypts; without one there is nothing the signature can bind.
    let remote_static: &[u8; STATIC_KEY_SIZE] = remote_static
        .and_then(|key| key.try_into().ok())
        .ok_or(HandshakeError::InvalidSignature)?;
    let binding = binding(remote_static, payload);
    let lock = || verified.lock().unwrap_or_else(PoisonError::into_inner);
    let known = lock().contains(&binding);
    if !known && !verify(signature, &signed_message(remote_static), identity) {
        return Err(HandshakeError::InvalidSignature);
    }
    let identity = PublicKey::from_bytes(identity);
    if !authorized.is_authorized(&identity) {
        return Err(HandshakeError::NotAuthorized(identity));
    }
    if !known {
        lock().remember(binding);
    }
    Ok(identity)
}

/// A binding as it arrived: static key (32), identity (32), signature (64),
/// every byte of it, so that only the very same bytes match.
type Binding = [u8; STATIC_KEY_SIZE + IDENTITY_PAYLOAD_SIZE];

fn binding(
    remote_static: &[u8; STATIC_KEY_SIZE],
    payload: &[u8; IDENTITY_PAYLOAD_SIZE],
) -> Binding {
    let mut binding = [0u8; STATIC_KEY_SIZE + IDENTITY_PAYLOAD_SIZE];
    binding[..STATIC_KEY_SIZE].copy_from_slice(remote_static);
    binding[STATIC_KEY_SIZE..].copy_from_slice(payload);
    binding
}

/// The process's memory of bindings it has verified, at most
/// [`VerifiedBindings::CAPACITY`] of them.
///
/// A static key is made once per identity and process ([`NoiseIdentity`]),
/// so a peer that connects again (a reconnecting client, a pool, a proxy's
/// backend hop) presents the same identity, static key and signature every
/// time. Ed25519 verification is deterministic, so those exact bytes
/// verify again: skipping the check saves the most expensive step of the
/// handshake (about 2x an X25519 exchange with libsodium) and brings a
/// repeated v2 handshake below v1's cost. Noise has proved that the peer
/// holds the static key's private half before the payload is read, so
/// only that peer can present a remembered binding.
///
/// Only bindings whose peer was also authorized are remembered, so a
/// client that is refused cannot push others out; when the memory is full
/// it starts over. At most `CAPACITY` × 128 bytes (plus the set's
/// overhead), held only once bindings arrive.
#[derive(Default)]
struct VerifiedBindings {
    seen: HashSet<Binding>,
}

impl VerifiedBindings {
    /// Bindings remembered before the memory starts over.
    const CAPACITY: usize = 1024;

    fn contains(&self, binding: &Binding) -> bool {
        self.seen.contains(binding)
    }

    fn remember(&mut self, binding: Binding) {
        if self.seen.len() >= Self::CAPACITY {
            self.seen.clear();
        }
        self.seen.insert(binding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_payload_verifies_against_own_static_key() {
        let identity = IdentitySecret::from_seed(&[5; 32]);
        let noise = NoiseIdentity::new(&identity);
        let peer = verify_peer(
            &noise.payload(),
            Some(noise.static_public_key()),
            &AuthorizedKeys::any(),
        );
        assert_eq!(peer, Ok(identity.public_key()));
    }

    #[test]
    fn payload_for_another_static_key_is_an_invalid_signature() {
        let identity = IdentitySecret::from_seed(&[5; 32]);
        let (a, b) = (NoiseIdentity::new(&identity), NoiseIdentity::new(&identity));
        assert_ne!(a.static_public_key(), b.static_public_key());
        let err = verify_peer(
            &a.payload(),
            Some(b.static_public_key()),
            &AuthorizedKeys::any(),
        );
        assert_eq!(err, Err(HandshakeError::InvalidSignature));
    }

    #[test]
    fn signature_is_checked_before_authorization() {
        let noise = NoiseIdentity::new(&IdentitySecret::generate());
        let mut payload = noise.payload();
        payload[40] ^= 1;
        let nobody = AuthorizedKeys::only([]);
        let err = verify_peer(&payload, Some(noise.static_public_key()), &nobody);
        assert_eq!(err, Err(HandshakeError::InvalidSignature));
        let err = verify_peer(&noise.payload(), Some(noise.static_public_key()), &nobody);
        assert_eq!(err, Err(HandshakeError::NotAuthorized(noise.identity())));
    }

    /// Runs [`verify_peer_with`] against `verified`, counting signature checks.
    fn checked(
        verified: &Mutex<VerifiedBindings>,
        checks: &std::cell::Cell<usize>,
        payload: &[u8],
        remote_static: &[u8; 32],
        authorized: &AuthorizedKeys,
    ) -> Result<PublicKey, HandshakeError> {
        let verify = |signature: &[u8; 64], message: &[u8], public: &[u8; 32]| {
            checks.set(checks.get() + 1);
            sodium::sign_verify_detached(signature, message, public)
        };
        verify_peer_with(verified, verify, payload, Some(remote_static), authorized)
    }

    #[test]
    fn a_binding_seen_before_is_not_verified_again_but_is_authorized_again() {
        let verified = Mutex::default();
        let checks = std::cell::Cell::new(0);
        let noise = NoiseIdentity::new(&IdentitySecret::generate());
        let (payload, static_key) = (noise.payload(), noise.static_public_key());
        let any = AuthorizedKeys::any();
        let first = checked(&verified, &checks, &payload, static_key, &any);
        assert_eq!((first, checks.get()), (Ok(noise.identity()), 1));
        let again = checked(&verified, &checks, &payload, static_key, &any);
        assert_eq!(
            (again, checks.get()),
            (Ok(noise.identity()), 1),
            "not verified twice"
        );
        // Remembered, yet a configuration that does not authorize it refuses it.
        let nobody = AuthorizedKeys::only([]);
        let refused = checked(&verified, &checks, &payload, static_key, &nobody);
        assert_eq!(
            refused,
            Err(HandshakeError::NotAuthorized(noise.identity()))
        );
    }

    #[test]
    fn only_the_very_same_bytes_skip_the_check() {
        let verified = Mutex::default();
        let checks = std::cell::Cell::new(0);
        let identity = IdentitySecret::generate();
        let (a, b) = (NoiseIdentity::new(&identity), NoiseIdentity::new(&identity));
        let any = AuthorizedKeys::any();
        assert!(
            checked(
                &verified,
                &checks,
                &a.payload(),
                a.static_public_key(),
                &any
            )
            .is_ok()
        );
        // The remembered identity and signature, another static key.
        let err = checked(
            &verified,
            &checks,
            &a.payload(),
            b.static_public_key(),
            &any,
        );
        assert_eq!(err, Err(HandshakeError::InvalidSignature));
        // The remembered static key and identity, a changed signature.
        let mut forged = a.payload();
        forged[70] ^= 1;
        let err = checked(&verified, &checks, &forged, a.static_public_key(), &any);
        assert_eq!(err, Err(HandshakeError::InvalidSignature));
        assert_eq!(checks.get(), 3, "each new binding was verified");
    }

    #[test]
    fn a_refused_or_invalid_binding_is_not_remembered() {
        let verified = Mutex::default();
        let checks = std::cell::Cell::new(0);
        let noise = NoiseIdentity::new(&IdentitySecret::generate());
        let nobody = AuthorizedKeys::only([]);
        for _ in 0..2 {
            let err = checked(
                &verified,
                &checks,
                &noise.payload(),
                noise.static_public_key(),
                &nobody,
            );
            assert_eq!(err, Err(HandshakeError::NotAuthorized(noise.identity())));
        }
        assert_eq!(checks.get(), 2, "a refused peer is verified every time");
        let mut bad = noise.payload();
        bad[40] ^= 1;
        for _ in 0..2 {
            let any = AuthorizedKeys::any();
            let err = checked(&verified, &checks, &bad, noise.static_public_key(), &any);
            assert_eq!(err, Err(HandshakeError::InvalidSignature));
        }
        assert_eq!(checks.get(), 4);
    }

    #[test]
    fn the_memory_starts_over_when_full() {
        let mut verified = VerifiedBindings::default();
        for n in 0..=VerifiedBindings::CAPACITY {
            let mut binding = [0u8; 128];
            binding[..8].copy_from_slice(&(n as u64).to_le_bytes());
            verified.remember(binding);
        }
        assert_eq!(verified.seen.len(), 1);
    }

    #[test]
    fn wrong_payload_size_and_missing_static_key_fail() {
        let noise = NoiseIdentity::new(&IdentitySecret::generate());
        let any = AuthorizedKeys::any();
        let payload = noise.payload();
        assert_eq!(
            verify_peer(&payload[..95], Some(noise.static_public_key()), &any),
            Err(HandshakeError::PayloadSize { len: 95 })
        );
        assert_eq!(
            verify_peer(&payload, None, &any),
            Err(HandshakeError::InvalidSignature)
        );
    }
}
