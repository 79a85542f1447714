//! Sealing and opening frames after the handshake (PROTOCOL 6.3).

use crate::ephemeral::SessionKey;
use crate::error::DecryptError;
use crate::keys::PublicKey;
use crate::nonce;
use crate::sodium;
use crate::{MAC_SIZE, NONCE_SIZE, SEAL_OVERHEAD};

/// An authenticated session: seals outgoing messages and opens incoming
/// ones with the key from the handshake.
///
/// A sealed payload is `nonce (24, random) || MAC (16) || ciphertext`, the
/// same key serving both directions. Methods take `&self`, so a reader and
/// a writer task can share one session through an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet_encryption::{PublicKey, Session};
///
/// let session = Arc::new(Session::from_key_bytes(&[7; 32], PublicKey::from_bytes(&[9; 32])));
/// let writer = Arc::clone(&session);
/// let sealed = std::thread::spawn(move || writer.seal(b"[]")).join().unwrap();
/// assert_eq!(sealed.len(), Session::sealed_len(2));
/// assert_eq!(session.open(&sealed)?, b"[]");
/// # Ok::<(), mtgnet_encryption::DecryptError>(())
/// ```
#[derive(Debug)]
pub struct Session {
    key: SessionKey,
    peer: PublicKey,
}

impl Session {
    pub(crate) fn new(key: SessionKey, peer: PublicKey) -> Session {
        Session { key, peer }
    }

    /// A session with a fixed key, for test vectors (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn from_key_bytes(key: &[u8; 32], peer: PublicKey) -> Session {
        Session::with_key_bytes(key, peer)
    }

    /// A session with a fixed key, for fuzzing and the benchmark harness.
    pub(crate) fn with_key_bytes(key: &[u8; 32], peer: PublicKey) -> Session {
        Session::new(SessionKey::from_bytes(key), peer)
    }

    /// The peer's identity, as proven in the handshake (the seed's `remote-key`).
    pub fn peer_identity(&self) -> &PublicKey {
        &self.peer
    }

    /// The length of the sealed payload for a plaintext of `plaintext_len`
    /// bytes: 40 bytes more.
    pub fn sealed_len(plaintext_len: usize) -> usize {
        plaintext_len + SEAL_OVERHEAD
    }

    /// Seals `plaintext` into `out` as `nonce || MAC || ciphertext`, with a
    /// fresh random nonce.
    ///
    /// # Panics
    ///
    /// Panics unless `out.len() == Session::sealed_len(plaintext.len())`.
    pub fn seal_into(&self, plaintext: &[u8], out: &mut [u8]) {
        assert_eq!(
            out.len(),
            Session::sealed_len(plaintext.len()),
            "seal_into: output must be exactly 40 bytes longer than the plaintext"
        );
        self.seal_with_nonce_into(plaintext, &nonce::random_nonce(), out);
    }

    /// Seals `plaintext` into a new `nonce || MAC || ciphertext` payload.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; Session::sealed_len(plaintext.len())];
        self.seal_into(plaintext, &mut out);
        out
    }

    /// Seals with a given nonce, for test vectors only (feature
    /// `test-hooks`): a repeated nonce breaks the encryption.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn seal_with_nonce(&self, plaintext: &[u8], nonce: &[u8; NONCE_SIZE]) -> Vec<u8> {
        let mut out = vec![0u8; Session::sealed_len(plaintext.len())];
        self.seal_with_nonce_into(plaintext, nonce, &mut out);
        out
    }

    fn seal_with_nonce_into(&self, plaintext: &[u8], nonce: &[u8; NONCE_SIZE], out: &mut [u8]) {
        let (nonce_out, boxed) = out.split_at_mut(NONCE_SIZE);
        nonce_out.copy_from_slice(nonce);
        self.key
            .expose_secret(|key| sodium::box_easy_afternm(boxed, plaintext, nonce, key));
    }

    /// Opens a sealed payload in place and returns the plaintext, a subslice
    /// of `payload` (the bytes after the plaintext are left unspecified).
    ///
    /// # Errors
    ///
    /// [`DecryptError::TooShort`] for fewer than 40 bytes,
    /// [`DecryptError::Authentication`] if the MAC does not verify; `payload`
    /// may then have been partly overwritten.
    pub fn open_in_place<'a>(&self, payload: &'a mut [u8]) -> Result<&'a mut [u8], DecryptError> {
        let len = payload.len();
        if len < SEAL_OVERHEAD {
            return Err(DecryptError::TooShort { len });
        }
        let (nonce, boxed) = payload.split_at_mut(NONCE_SIZE);
        let nonce: &[u8; NONCE_SIZE] = (&*nonce).try_into().expect("split_at_mut(24)");
        let opened = self
            .key
            .expose_secret(|key| sodium::box_open_easy_afternm_in_place(boxed, nonce, key));
        if !opened {
            return Err(DecryptError::Authentication);
        }
        let plaintext_len = boxed.len() - MAC_SIZE;
        Ok(&mut boxed[..plaintext_len])
    }

    /// Opens a sealed payload into a new vector.
    ///
    /// # Errors
    ///
    /// As [`open_in_place`](Self::open_in_place).
    pub fn open(&self, payload: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let mut buf = payload.to_vec();
        let len = self.open_in_place(&mut buf)?.len();
        buf.drain(..NONCE_SIZE);
        buf.truncate(len);
        Ok(buf)
    }
}
