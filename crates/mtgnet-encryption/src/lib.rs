//! The MTGNet encryption extension: v1, byte-compatible with the deployed
//! Common Lisp and PHP peers (PROTOCOL.md section 6), and v2, a Noise XX
//! channel bound to the same Ed25519 identities ([`v2`],
//! `docs/encryption-v2.md`) that a server negotiates beside v1.
//!
//! This crate does no IO. It turns bytes into bytes. In v1 a [`Handshake`]
//! produces the 128-byte payload to send and consumes the peer's, yielding
//! a [`Session`] that seals and opens frame payloads. In v2 an
//! [`Initiator`](v2::Initiator) or [`Responder`](v2::Responder) consumes
//! and produces the three handshake frame payloads, yielding a
//! [`v2::Session`] that splits into a [`Sealer`](v2::Sealer), which writes
//! whole netstring+ frames of records (in one call, or reserving the
//! counters first so that messages can be sealed on several threads at
//! once), and an [`Opener`](v2::Opener), which
//! opens records and reassembles messages. Reading frames and moving them
//! over a socket is the job of `mtgnet-proto` and `mtgnet`.
//!
//! ```text
//!                       v1                                       v2
//!   messages (JSON)     mtgnet-proto                             mtgnet-proto
//!   sealing             Session::seal/open:                      Sealer / Opener: records =
//!                       nonce (24) || MAC (16) || ciphertext     Noise transport messages of flag || chunk
//!   handshake           Handshake: identity_pk (32) ||           Initiator / Responder: Noise XX, payload
//!                       crypto_sign(e_pk) (96)                   identity_pk (32) || sig(static_pk) (64)
//!   negotiation         -                                        v2::classify_first_payload (server)
//!   framing             mtgnet-proto (netstring+)                netstring+ (the Sealer writes it too)
//!   transport           mtgnet (tokio, std::net)
//! ```
//!
//! Every primitive, the random number generator and the secret memory come
//! from libsodium, which is initialised on first use: there is no init call.
//! Secrets ([`IdentitySecret`], [`EphemeralSecret`], [`SessionKey`]) live in
//! `sodium_malloc` memory that is locked against swapping, surrounded by
//! guard pages, never writable after construction, never cloned, redacted
//! in `Debug`, and wiped when dropped.
//!
//! The identity secret, long-lived and used once per handshake, is also
//! inaccessible (`PROT_NONE`) except inside an `expose_secret` call
//! ([`Protection::NoAccess`]). The session key is the one secret used for
//! every frame, so it stays read-only for the session's lifetime instead
//! ([`Protection::ReadOnly`]): toggling the protection costs two `mprotect`
//! syscalls, TLB shootdowns and a lock per use, several times the
//! encryption of a small frame (sealing a 64-byte frame took about 3.1 µs
//! with per-frame toggling against 0.84 µs for the raw libsodium calls).
//! The ephemeral secret is read-only too: it lives for one handshake, which
//! is exactly when it is in use. The trade-off: while such a secret lives,
//! a stray read elsewhere in the process that reaches its page can see it.
//! Wiped secret regions are kept in a small pool and reused (still locked
//! and guarded), which spares every connection the `mmap`/`mlock`/`munmap`
//! of fresh allocations.
//!
//! # Example
//!
//! A client and a server handshake in memory, then exchange a message:
//!
//! ```
//! use mtgnet_encryption::{AuthorizedKeys, Handshake, IdentitySecret};
//!
//! let server_identity = IdentitySecret::generate();
//! let client_identity = IdentitySecret::generate();
//!
//! // The client pins the server's key; the server accepts only this client.
//! let client = Handshake::new(&client_identity, AuthorizedKeys::only([server_identity.public_key()]));
//! let server = Handshake::new(&server_identity, AuthorizedKeys::only([client_identity.public_key()]));
//!
//! // Both send their payload first, then read the peer's.
//! let to_server = client.payload().to_vec();
//! let to_client = server.payload().to_vec();
//! let client = client.finish(&to_client)?;
//! let server = server.finish(&to_server)?;
//! assert_eq!(server.peer_identity(), &client_identity.public_key());
//!
//! let request = client.seal(br#"[{"service":"System","method":"rpcVersion","args":[],"id":1}]"#);
//! let opened = server.open(&request)?;
//! assert!(opened.starts_with(b"[{\"service\""));
//! # Ok::<(), mtgnet_encryption::Error>(())
//! ```
//!
//! Encryption v2 runs its handshake through the `snow` crate, built without
//! any cryptography of its own: a resolver on libsodium supplies X25519,
//! ChaCha20-Poly1305 and BLAKE2b, so libsodium stays the only cryptographic
//! library. Its long-lived static key lives in protected memory like the
//! identity; its two transport keys like v1's session key.
//!
//! # Known weaknesses of v1
//!
//! v1 is what the deployed peers speak, so this crate implements it exactly,
//! gaps included:
//!
//! - **Replay, reordering and reflection go undetected.** One key serves
//!   both directions and nonces are random, not counters: a network attacker
//!   can resend an earlier frame, swap frames, or send a party's own frame
//!   back to it, and it opens fine.
//! - **The signature covers only the ephemeral key**, not the transcript:
//!   the two ephemeral keys are not bound together and there is no key
//!   confirmation, so a handshake "succeeds" before either side knows the
//!   other derived the same key (a mismatch shows up as a decryption error
//!   on the first frame).
//! - **Identities travel in the clear**: an observer learns both public keys.
//! - With [`AuthorizedKeys::any`] (the default), the handshake proves only
//!   that the peer holds *some* key; pin keys to authenticate anyone.
//!
//! v2 closes the first three gaps (directional keys and counters, a
//! transcript-bound handshake with key confirmation, identities encrypted)
//! and tells a truncated stream from a closed one; see [`v2`] for what it
//! protects against and what it does not.
//!
//! # Panics
//!
//! If libsodium fails to initialise (`sodium_init` returns -1), the first
//! operation panics: no cryptography is possible. Allocating secret memory
//! panics when `sodium_malloc` fails, like any failed allocation.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod authorized;
mod ephemeral;
mod error;
mod handshake;
mod keys;
mod nonce;
mod session;
#[allow(unsafe_code)]
mod sodium;
pub mod v2;

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod fuzzing;

pub use authorized::AuthorizedKeys;
pub use ephemeral::{EphemeralKeypair, EphemeralSecret, SessionKey};
pub use error::{
    AuthorizedKeysError, DecryptError, Error, HandshakeError, InvalidSignature, KeyError,
    RecordError, SealError,
};
pub use handshake::Handshake;
pub use keys::{EncodedSecret, IdentitySecret, PublicKey};
pub use session::Session;
pub use sodium::{Protection, SecretBytes};

/// Fills `buf` with random bytes from libsodium's CSPRNG
/// (`randombytes_buf`), the generator every nonce and key of this crate
/// comes from. For anything that needs unpredictable bytes without a
/// random number crate of its own (the `mtgnet` client jitters its
/// reconnect delays with it).
///
/// ```
/// let mut a = [0u8; 16];
/// let mut b = [0u8; 16];
/// mtgnet_encryption::random_bytes(&mut a);
/// mtgnet_encryption::random_bytes(&mut b);
/// assert_ne!(a, b);
/// ```
pub fn random_bytes(buf: &mut [u8]) {
    sodium::random_bytes(buf);
}

/// Size of an identity secret: libsodium's Ed25519 seed || public key.
pub const SECRET_SIZE: usize = 64;
/// Size of an identity public key (Ed25519).
pub const PUBLICKEY_SIZE: usize = 32;
/// Size of a handshake payload: identity public key (32) || signature (64) || ephemeral public key (32).
pub const HANDSHAKE_PAYLOAD_SIZE: usize = 128;
/// Size of the random nonce at the start of a sealed payload.
pub const NONCE_SIZE: usize = 24;
/// Size of the Poly1305 MAC after the nonce.
pub const MAC_SIZE: usize = 16;
/// How much longer a sealed payload is than its plaintext: nonce + MAC.
pub const SEAL_OVERHEAD: usize = NONCE_SIZE + MAC_SIZE;
