//! The cryptography `snow` runs the Noise handshake with, all from libsodium.
//!
//! `snow` is built without its default resolver, so no pure-Rust
//! cryptography is compiled in: [`SodiumResolver`] is the only provider,
//! and it offers exactly the primitives of
//! `Noise_XX_25519_ChaChaPoly_BLAKE2b` (asking for any other yields `None`,
//! so `snow` refuses to build such a handshake).
//!
//! | Noise      | libsodium                                                     |
//! |------------|---------------------------------------------------------------|
//! | `25519`    | `crypto_scalarmult_base`, `crypto_scalarmult` (all-zero results rejected) |
//! | `ChaChaPoly` | `crypto_aead_chacha20poly1305_ietf_{encrypt,decrypt}`, nonce = 4 zero bytes ‖ 64-bit little-endian counter |
//! | `BLAKE2b`  | `crypto_generichash_{init,update,final}`, 64-byte output      |
//! | RNG        | `randombytes_buf`                                             |
//!
//! Secrets held here (private keys, cipher keys, hash states that carry
//! HMAC keys) live in ordinary heap memory — `snow` boxes every provider —
//! and are wiped when `snow` drops them. They live for one handshake only;
//! the long-lived static key is kept in protected memory by
//! [`NoiseIdentity`](super::NoiseIdentity) and the transport keys by the
//! records, and neither goes through `snow` after the handshake. (`snow`'s
//! own copies of the chaining key and handshake hash are not wiped: that is
//! `snow`'s memory.)

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};

use crate::sodium::{self, AEAD_TAG_SIZE, BLAKE2B_SIZE, Blake2b};

/// Size of an X25519 key and of a ChaChaPoly key.
const KEY_SIZE: usize = 32;
/// BLAKE2b's block size, used by Noise's HMAC.
const BLAKE2B_BLOCK_SIZE: usize = 128;

/// A [`CryptoResolver`] that provides `25519`, `ChaChaPoly`, `BLAKE2b` and
/// the RNG from libsodium, and nothing else.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SodiumResolver;

impl CryptoResolver for SodiumResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SodiumRandom))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(X25519::default())),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2b => Some(Box::new(Blake2bHash(Blake2b::new()))),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(ChaChaPoly::default())),
            _ => None,
        }
    }
}

/// 32 secret bytes in ordinary memory, wiped on drop.
#[derive(Default)]
struct WipedKey([u8; KEY_SIZE]);

impl Drop for WipedKey {
    fn drop(&mut self) {
        sodium::wipe(&mut self.0);
    }
}

/// `randombytes_buf`.
struct SodiumRandom;

impl Random for SodiumRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        sodium::random_bytes(dest);
        Ok(())
    }
}

/// X25519 key pair.
#[derive(Default)]
struct X25519 {
    private: WipedKey,
    public: [u8; KEY_SIZE],
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_SIZE
    }

    fn priv_len(&self) -> usize {
        KEY_SIZE
    }

    fn set(&mut self, privkey: &[u8]) {
        // snow passes keys of `priv_len()` bytes (our own static key, or a
        // fixed test key); a shorter one is zero-padded, like snow's own.
        let len = privkey.len().min(KEY_SIZE);
        self.private.0 = [0; KEY_SIZE];
        self.private.0[..len].copy_from_slice(&privkey[..len]);
        self.public = sodium::scalarmult_base(&self.private.0);
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        rng.try_fill_bytes(&mut self.private.0)?;
        self.public = sodium::scalarmult_base(&self.private.0);
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private.0
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        // snow passes its whole remote-key buffer (56 bytes, room for the
        // largest Noise curve); an X25519 key is its first 32 bytes.
        let public: &[u8; KEY_SIZE] = pubkey
            .get(..KEY_SIZE)
            .and_then(|key| key.try_into().ok())
            .ok_or(snow::Error::Dh)?;
        let out = out.get_mut(..KEY_SIZE).ok_or(snow::Error::Dh)?;
        let mut shared = WipedKey::default();
        if !sodium::scalarmult(&mut shared.0, &self.private.0, public) {
            // A small-order public key: the all-zero result would make the
            // key exchange contribute nothing.
            return Err(snow::Error::Dh);
        }
        out.copy_from_slice(&shared.0);
        Ok(())
    }
}

/// ChaCha20-Poly1305-IETF with Noise's nonce layout.
#[derive(Default)]
struct ChaChaPoly {
    key: WipedKey,
}

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; KEY_SIZE]) {
        self.key.0 = *key;
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len() + AEAD_TAG_SIZE;
        // snow checks that `out` has room for the tag before calling (it
        // returns `Error::Input` otherwise), so this slice is in bounds.
        sodium::aead_encrypt(
            &mut out[..len],
            plaintext,
            authtext,
            &sodium::noise_nonce(nonce),
            &self.key.0,
        );
        len
    }

    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let len = ciphertext
            .len()
            .checked_sub(AEAD_TAG_SIZE)
            .ok_or(snow::Error::Decrypt)?;
        let out = out.get_mut(..len).ok_or(snow::Error::Decrypt)?;
        if sodium::aead_decrypt(
            out,
            ciphertext,
            authtext,
            &sodium::noise_nonce(nonce),
            &self.key.0,
        ) {
            Ok(len)
        } else {
            Err(snow::Error::Decrypt)
        }
    }
}

/// BLAKE2b-512 (`crypto_generichash`, streaming).
struct Blake2bHash(Blake2b);

impl Hash for Blake2bHash {
    fn name(&self) -> &'static str {
        "BLAKE2b"
    }

    fn block_len(&self) -> usize {
        BLAKE2B_BLOCK_SIZE
    }

    fn hash_len(&self) -> usize {
        BLAKE2B_SIZE
    }

    fn reset(&mut self) {
        self.0.reset();
    }

    fn input(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        // snow always passes a buffer of at least `hash_len()` bytes; write
        // what fits rather than trust that.
        let mut digest = [0u8; BLAKE2B_SIZE];
        self.0.finalize(&mut digest);
        let len = out.len().min(BLAKE2B_SIZE);
        out[..len].copy_from_slice(&digest[..len]);
        sodium::wipe(&mut digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn resolves_only_the_v2_primitives() {
        let r = SodiumResolver;
        assert!(r.resolve_rng().is_some());
        assert!(r.resolve_dh(&DHChoice::Curve25519).is_some());
        assert!(r.resolve_dh(&DHChoice::Curve448).is_none());
        assert!(r.resolve_cipher(&CipherChoice::ChaChaPoly).is_some());
        assert!(r.resolve_cipher(&CipherChoice::AESGCM).is_none());
        assert!(r.resolve_hash(&HashChoice::Blake2b).is_some());
        assert!(r.resolve_hash(&HashChoice::Blake2s).is_none());
        assert!(r.resolve_hash(&HashChoice::SHA256).is_none());
    }

    #[test]
    fn blake2b_matches_rfc7693_abc() {
        let mut hash = Blake2bHash(Blake2b::new());
        // Streaming: input in two pieces; result resets for the next use.
        for _ in 0..2 {
            hash.input(b"a");
            hash.input(b"bc");
            let mut out = [0u8; 64];
            hash.result(&mut out);
            assert_eq!(
                hex(&out),
                "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
                 7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
            );
        }
        hash.input(b"junk");
        hash.reset();
        hash.input(b"abc");
        let mut out = [0u8; 64];
        hash.result(&mut out);
        assert!(hex(&out).starts_with("ba80a53f"));
    }

    #[test]
    fn x25519_matches_rfc7748_and_rejects_small_order_points() {
        // RFC 7748 section 6.1.
        let alice_sk: [u8; 32] = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
                        [2 * i..2 * i + 2],
                    16,
                )
                .expect("hex")
            })
            .collect::<Vec<_>>()
            .try_into()
            .expect("32 bytes");
        let mut alice = X25519::default();
        alice.set(&alice_sk);
        assert_eq!(
            hex(alice.pubkey()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let mut bob = X25519::default();
        bob.generate(&mut SodiumRandom).expect("rng");
        let (mut ab, mut ba) = ([0u8; 56], [0u8; 56]);
        alice.dh(bob.pubkey(), &mut ab).expect("dh");
        bob.dh(alice.pubkey(), &mut ba).expect("dh");
        assert_eq!(ab, ba);
        assert_ne!(ab[..32], [0u8; 32]);

        let mut out = [0u8; 32];
        assert_eq!(alice.dh(&[0u8; 32], &mut out), Err(snow::Error::Dh));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(alice.dh(&one, &mut out), Err(snow::Error::Dh));
        assert_eq!(alice.dh(&[9u8; 31], &mut out), Err(snow::Error::Dh));
    }

    #[test]
    fn chachapoly_uses_the_noise_nonce_and_authenticates() {
        let mut cipher = ChaChaPoly::default();
        cipher.set(&[7; 32]);
        let mut sealed = [0u8; 5 + 16];
        assert_eq!(cipher.encrypt(3, b"ad", b"hello", &mut sealed), 21);

        // The same bytes as libsodium with nonce 00000000 || 03 00 .. 00.
        let mut nonce = [0u8; 12];
        nonce[4] = 3;
        let mut raw = [0u8; 21];
        sodium::aead_encrypt(&mut raw, b"hello", b"ad", &nonce, &[7; 32]);
        assert_eq!(sealed, raw);

        let mut out = [0u8; 64];
        assert_eq!(cipher.decrypt(3, b"ad", &sealed, &mut out), Ok(5));
        assert_eq!(&out[..5], b"hello");
        assert_eq!(
            cipher.decrypt(4, b"ad", &sealed, &mut out),
            Err(snow::Error::Decrypt)
        );
        assert_eq!(
            cipher.decrypt(3, b"da", &sealed, &mut out),
            Err(snow::Error::Decrypt)
        );
        assert_eq!(
            cipher.decrypt(3, b"ad", &sealed[..15], &mut out),
            Err(snow::Error::Decrypt)
        );
        assert_eq!(
            cipher.decrypt(3, b"ad", &sealed, &mut out[..4]),
            Err(snow::Error::Decrypt)
        );
    }
}
