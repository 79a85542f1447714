//! Encryption v2: a Noise XX channel bound to the same Ed25519 identities,
//! negotiated beside v1 (normative description: `docs/encryption-v2.md`).
//!
//! ```text
//!   client (initiator)                                  server (responder)
//!   Initiator::new -> hello()  "mtgnet-noise-xx/1" || e  (49)   -> classify_first_payload: V2
//!                                                               Responder::new(hello) -> response()
//!   Initiator::finish(response) <- e, ee, s, es, payload (192)
//!     verifies signature + pin; on failure nothing is sent
//!   -> (message 3, Session)     -> s, se, payload (160)         Responder::finish -> Session
//!   Session::split -> (Sealer, Opener)                           Session::split -> (Sealer, Opener)
//! ```
//!
//! Each handshake message travels as one netstring+ frame (at most 256
//! bytes); the payload of messages 2 and 3 is `identity (32) || signature
//! (64)` (see [`NoiseIdentity`]). After the handshake every frame is one
//! *record*: a Noise transport message whose plaintext is a flag byte
//! ([`Flag`]) and data. [`Sealer`] splits messages into records (directly,
//! or through a [`Reservation`] of their counters, sealed later on any
//! thread) and [`Opener`] reassembles them; the two directions use separate
//! keys and counters, so a replayed, reordered, reflected or foreign record
//! fails to decrypt.
//!
//! The cryptography is libsodium's, through a `snow` resolver of our own;
//! `snow` is built without any other.
//!
//! # What v2 protects, and what it does not
//!
//! Against a network attacker v2 gives mutual authentication of the
//! Ed25519 identities (pins and authorized keys apply as in v1), a
//! handshake bound to its whole transcript, forward secrecy, encrypted
//! identities, and records that cannot be altered, replayed, reordered,
//! reflected, moved between sessions or cut off unnoticed (a stream that
//! ends without a close record is [`RecordError::Truncated`]).
//! It does not hide the server's identity from anyone who connects (Noise
//! XX sends it to the initiator), nor sizes, counts and timing of records,
//! and it cannot prevent an attacker from breaking connections. The full
//! argument is in `docs/encryption-v2.md`, section 8.
//!
//! [`RecordError::Truncated`]: crate::RecordError::Truncated
//!
//! # Example
//!
//! A whole session in memory:
//!
//! ```
//! use mtgnet_encryption::{AuthorizedKeys, IdentitySecret};
//! use mtgnet_encryption::v2::{
//!     classify_first_payload, FirstFrame, Initiator, NoiseIdentity, Opened, Responder,
//! };
//!
//! let server_id = IdentitySecret::generate();
//! let client_id = IdentitySecret::generate();
//! let server_noise = NoiseIdentity::new(&server_id);
//! let client_noise = NoiseIdentity::new(&client_id);
//!
//! // The client pins the server; the server accepts anyone.
//! let client = Initiator::new(&client_noise, AuthorizedKeys::only([server_id.public_key()]));
//! let hello = client.hello().to_vec();
//! assert_eq!(classify_first_payload(&hello), FirstFrame::V2);
//! let server = Responder::new(&server_noise, AuthorizedKeys::any(), &hello)?;
//! let (message3, client_session) = client.finish(server.response())?;
//! let server_session = server.finish(&message3)?;
//! assert_eq!(server_session.peer_identity(), &client_id.public_key());
//! assert_eq!(client_session.handshake_hash(), server_session.handshake_hash());
//!
//! let (mut client_sealer, _client_opener) = client_session.split();
//! let (_server_sealer, mut server_opener) = server_session.split();
//! let mut frames = client_sealer.seal_framed(br#"[{"service":"System","method":"rpcVersion","args":[],"id":1}]"#)?;
//! // The record is the frame's payload: strip the netstring+ header and "\n".
//! let colon = frames.iter().position(|&b| b == b':').expect("a header");
//! let end = frames.len() - 1;
//! let record = &mut frames[colon + 1..end];
//! match server_opener.open_in_place(record)? {
//!     Opened::InPlace(range) => assert!(record[range].starts_with(b"[{\"service\"")),
//!     other => panic!("expected a whole message, got {other:?}"),
//! }
//! # Ok::<(), mtgnet_encryption::Error>(())
//! ```

mod handshake;
mod identity;
mod opener;
pub(crate) mod record;
mod resolver;
mod sealer;
mod session;

pub use handshake::{Initiator, Responder};
pub use identity::NoiseIdentity;
pub use opener::{Opened, Opener};
pub use record::Flag;
pub use sealer::{Reservation, Sealer};
pub use session::Session;

#[cfg(test)]
mod tests;

/// The Noise protocol name.
pub const PROTOCOL_NAME: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2b";
/// The Noise prologue, which is also the prefix of the client's first frame.
pub const PROLOGUE: &[u8] = b"mtgnet-noise-xx/1";
/// What an identity signs before its static key: `identity` signs
/// `SIGNATURE_CONTEXT || static_public`.
pub const SIGNATURE_CONTEXT: &[u8] = b"mtgnet-noise-static-key:";
/// Length of the client's first frame payload: the prologue (17) then Noise
/// message 1 (its ephemeral key, 32; the payload is empty).
pub const HELLO_SIZE: usize = PROLOGUE.len() + 32;
/// Length of Noise message 2: e (32), encrypted s (48), encrypted payload (112).
pub const MESSAGE2_SIZE: usize = 32 + 48 + IDENTITY_PAYLOAD_SIZE + 16;
/// Length of Noise message 3: encrypted s (48), encrypted payload (112).
pub const MESSAGE3_SIZE: usize = 48 + IDENTITY_PAYLOAD_SIZE + 16;
/// Length of the handshake payload of messages 2 and 3: identity (32) || signature (64).
pub const IDENTITY_PAYLOAD_SIZE: usize = 32 + 64;
/// The largest frame payload a reader accepts while negotiating and
/// handshaking (the first frame, a v1 hello, and messages 2 and 3 fit).
pub const MAX_HANDSHAKE_FRAME: usize = 256;
/// The largest record: a Noise transport message.
pub const MAX_RECORD: usize = 65_535;
/// The Poly1305 tag at the end of every record.
pub const RECORD_TAG_SIZE: usize = 16;
/// The most data one record carries: 65,535 - 16 (tag) - 1 (flag). Writers
/// fill every non-final chunk of a message to exactly this size.
pub const MAX_CHUNK: usize = MAX_RECORD - RECORD_TAG_SIZE - 1;
/// The default limit on a reassembled message, the same as v1's default
/// maximum frame (16 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// What a server makes of the first frame payload a client sends.
///
/// ```
/// use mtgnet_encryption::v2::{classify_first_payload, FirstFrame};
///
/// assert_eq!(classify_first_payload(&[0; 128]), FirstFrame::V1);
/// assert_eq!(classify_first_payload(&[0; 49]), FirstFrame::Reject);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFrame {
    /// 128 bytes: a v1 handshake payload. Continue as v1 (if allowed).
    V1,
    /// The prologue `mtgnet-noise-xx/1` and exactly 49 bytes: Noise message 1.
    V2,
    /// Anything else, including a frame that starts with the prologue but
    /// has another length: close the connection without a reply.
    Reject,
}

/// Classifies a client's first frame payload for a server that accepts
/// both versions (or checks that a client speaks the one it accepts).
///
/// A pure function of the bytes; no v1 payload can be taken for v2 or the
/// reverse, since the lengths differ (128 and 49).
pub fn classify_first_payload(payload: &[u8]) -> FirstFrame {
    if payload.len() == crate::HANDSHAKE_PAYLOAD_SIZE {
        FirstFrame::V1
    } else if payload.len() == HELLO_SIZE && payload.starts_with(PROLOGUE) {
        FirstFrame::V2
    } else {
        FirstFrame::Reject
    }
}
