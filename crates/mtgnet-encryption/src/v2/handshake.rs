//! The v2 handshake, sans IO: Noise XX driven by whole frame payloads,
//! ending in a [`Session`].
//!
//! ```text
//!   Initiator::new          -> hello (49)            prologue || e
//!                              Responder::new(hello)  -> response (192)   e, ee, s, es, payload
//!   Initiator::finish(resp) -> message 3 (160), Session    s, se, payload
//!                              Responder::finish(m3)  -> Session
//! ```
//!
//! Both types are consumed by the step that can fail, so a [`Session`]
//! exists only once the peer's signature and authorization have been
//! checked; a failed step drops the Noise state (ephemeral secrets
//! included) with it.

use std::fmt;
use std::sync::OnceLock;

use snow::params::NoiseParams;
use snow::{Builder, HandshakeState};

use crate::authorized::AuthorizedKeys;
use crate::error::HandshakeError;
use crate::keys::PublicKey;

use super::identity::{NoiseIdentity, verify_peer};
use super::resolver::SodiumResolver;
use super::session::Session;
use super::{
    HELLO_SIZE, IDENTITY_PAYLOAD_SIZE, MESSAGE2_SIZE, MESSAGE3_SIZE, PROLOGUE, PROTOCOL_NAME,
};

/// Length of Noise message 1: the initiator's ephemeral key.
const MESSAGE1_SIZE: usize = HELLO_SIZE - PROLOGUE.len();

/// The client's side of the handshake (the Noise initiator).
///
/// Call order: [`new`](Self::new); send [`hello`](Self::hello) as the first
/// frame; read one frame (at most 256 bytes) and pass its payload to
/// [`finish`](Self::finish), which checks the server's signature and pin
/// and only then returns message 3, to send as one frame, and the
/// [`Session`]. When `finish` fails there is no message 3: close the
/// connection without sending anything.
///
/// ```
/// use mtgnet_encryption::{AuthorizedKeys, HandshakeError, IdentitySecret};
/// use mtgnet_encryption::v2::{Initiator, NoiseIdentity, Responder};
///
/// let server = NoiseIdentity::new(&IdentitySecret::generate());
/// let client = NoiseIdentity::new(&IdentitySecret::generate());
/// // The client pins a key the server does not have.
/// let pin = AuthorizedKeys::only([IdentitySecret::generate().public_key()]);
/// let initiator = Initiator::new(&client, pin);
/// let responder = Responder::new(&server, AuthorizedKeys::any(), initiator.hello())?;
/// let err = initiator.finish(responder.response()).unwrap_err();
/// assert_eq!(err, HandshakeError::NotAuthorized(server.identity()));
/// # Ok::<(), HandshakeError>(())
/// ```
pub struct Initiator {
    noise: HandshakeState,
    authorized: AuthorizedKeys,
    payload: [u8; IDENTITY_PAYLOAD_SIZE],
    hello: [u8; HELLO_SIZE],
}

impl Initiator {
    /// Starts a handshake as `identity`, accepting the servers in
    /// `authorized` (a pin, or [`AuthorizedKeys::any`]), with a fresh
    /// ephemeral key.
    pub fn new(identity: &NoiseIdentity, authorized: AuthorizedKeys) -> Initiator {
        Initiator::build(identity, authorized, None)
    }

    /// [`new`](Self::new) with a fixed ephemeral secret, for test vectors.
    /// Never reuse an ephemeral secret across connections.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn with_ephemeral_secret(
        identity: &NoiseIdentity,
        authorized: AuthorizedKeys,
        ephemeral: &[u8; 32],
    ) -> Initiator {
        Initiator::build(identity, authorized, Some(ephemeral))
    }

    pub(crate) fn build(
        identity: &NoiseIdentity,
        authorized: AuthorizedKeys,
        ephemeral: Option<&[u8; 32]>,
    ) -> Initiator {
        let mut noise = identity
            .expose_static_secret(|static_secret| {
                builder(static_secret, ephemeral).and_then(Builder::build_initiator)
            })
            .expect("a Noise_XX initiator with a static key always builds");
        // Message 1 is `e` with an empty payload; nothing of the peer's is
        // involved, so it cannot fail. (snow wants room for a tag even where
        // there is no key yet to make one.)
        let mut message1 = [0u8; MESSAGE1_SIZE + 16];
        let len = noise
            .write_message(&[], &mut message1)
            .expect("Noise message 1 is 32 bytes");
        debug_assert_eq!(len, MESSAGE1_SIZE);
        let mut hello = [0u8; HELLO_SIZE];
        hello[..PROLOGUE.len()].copy_from_slice(PROLOGUE);
        hello[PROLOGUE.len()..].copy_from_slice(&message1[..MESSAGE1_SIZE]);
        Initiator {
            noise,
            authorized,
            payload: identity.payload(),
            hello,
        }
    }

    /// The first frame's payload, 49 bytes: the prologue
    /// `mtgnet-noise-xx/1` then Noise message 1.
    pub fn hello(&self) -> &[u8; HELLO_SIZE] {
        &self.hello
    }

    /// Reads the server's message 2 (a frame payload), checks the server's
    /// identity, and returns message 3 (160 bytes, to send as one frame)
    /// with the session.
    ///
    /// The checks run in this order: size, Noise (decryption and key
    /// exchange), signature, authorization. Message 3 is made only when all
    /// pass.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::OnlyV1`] if `response` is 128 bytes (a v1-only
    /// server's handshake frame, which it sends without waiting);
    /// [`HandshakeError::MessageSize`] unless `response` is 192 bytes;
    /// [`HandshakeError::KeyExchange`] if a key in it has small order;
    /// [`HandshakeError::Authentication`] if it does not decrypt;
    /// [`HandshakeError::InvalidSignature`] if the identity did not sign
    /// the static key the server authenticated;
    /// [`HandshakeError::NotAuthorized`] (with the server's identity) if it
    /// is not in the authorized keys.
    pub fn finish(
        mut self,
        response: &[u8],
    ) -> Result<([u8; MESSAGE3_SIZE], Session), HandshakeError> {
        if response.len() == crate::HANDSHAKE_PAYLOAD_SIZE {
            return Err(HandshakeError::OnlyV1);
        }
        check_size(2, MESSAGE2_SIZE, response)?;
        let peer = read_peer(&mut self.noise, response, &self.authorized)?;
        let mut message3 = [0u8; MESSAGE3_SIZE];
        let len = self
            .noise
            .write_message(&self.payload, &mut message3)
            .map_err(noise_error)?;
        debug_assert_eq!(len, MESSAGE3_SIZE);
        Ok((message3, Session::initiator(self.noise, peer)))
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("authorized", &self.authorized)
            .finish_non_exhaustive()
    }
}

/// The server's side of the handshake (the Noise responder).
///
/// Call order: read the first frame (at most 256 bytes); if
/// [`classify_first_payload`](super::classify_first_payload) says
/// [`V2`](super::FirstFrame::V2), pass it to [`new`](Self::new); send
/// [`response`](Self::response) as one frame; read one frame and pass it to
/// [`finish`](Self::finish). When `finish` fails, close the connection
/// without sending anything: the client then learns nothing about why.
///
/// ```
/// use mtgnet_encryption::{AuthorizedKeys, HandshakeError, IdentitySecret};
/// use mtgnet_encryption::v2::{Initiator, NoiseIdentity, Responder};
///
/// let server = NoiseIdentity::new(&IdentitySecret::generate());
/// let client = NoiseIdentity::new(&IdentitySecret::generate());
/// let initiator = Initiator::new(&client, AuthorizedKeys::any());
/// // The server accepts only one client, and it is not this one.
/// let only = AuthorizedKeys::only([IdentitySecret::generate().public_key()]);
/// let responder = Responder::new(&server, only, initiator.hello())?;
/// let (message3, _client_session) = initiator.finish(responder.response())?;
/// let err = responder.finish(&message3).unwrap_err();
/// assert_eq!(err, HandshakeError::NotAuthorized(client.identity()));
/// # Ok::<(), HandshakeError>(())
/// ```
pub struct Responder {
    noise: HandshakeState,
    authorized: AuthorizedKeys,
    response: [u8; MESSAGE2_SIZE],
}

impl Responder {
    /// Reads the client's first frame payload and makes message 2, as
    /// `identity`, accepting the clients in `authorized`, with a fresh
    /// ephemeral key.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Prologue`] unless `hello` starts with
    /// `mtgnet-noise-xx/1`; [`HandshakeError::MessageSize`] (message 1)
    /// unless it is 49 bytes; [`HandshakeError::KeyExchange`] if the
    /// client's ephemeral key has small order.
    pub fn new(
        identity: &NoiseIdentity,
        authorized: AuthorizedKeys,
        hello: &[u8],
    ) -> Result<Responder, HandshakeError> {
        Responder::build(identity, authorized, hello, None)
    }

    /// [`new`](Self::new) with a fixed ephemeral secret, for test vectors.
    /// Never reuse an ephemeral secret across connections.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn with_ephemeral_secret(
        identity: &NoiseIdentity,
        authorized: AuthorizedKeys,
        hello: &[u8],
        ephemeral: &[u8; 32],
    ) -> Result<Responder, HandshakeError> {
        Responder::build(identity, authorized, hello, Some(ephemeral))
    }

    pub(crate) fn build(
        identity: &NoiseIdentity,
        authorized: AuthorizedKeys,
        hello: &[u8],
        ephemeral: Option<&[u8; 32]>,
    ) -> Result<Responder, HandshakeError> {
        let Some(message1) = hello.strip_prefix(PROLOGUE) else {
            return Err(HandshakeError::Prologue);
        };
        check_size(1, HELLO_SIZE, hello)?;
        let mut noise = identity
            .expose_static_secret(|static_secret| {
                builder(static_secret, ephemeral).and_then(Builder::build_responder)
            })
            .expect("a Noise_XX responder with a static key always builds");
        let len = noise.read_message(message1, &mut []).map_err(noise_error)?;
        debug_assert_eq!(len, 0);
        let mut response = [0u8; MESSAGE2_SIZE];
        let len = noise
            .write_message(&identity.payload(), &mut response)
            .map_err(noise_error)?;
        debug_assert_eq!(len, MESSAGE2_SIZE);
        Ok(Responder {
            noise,
            authorized,
            response,
        })
    }

    /// Message 2, 192 bytes, to send as one frame.
    pub fn response(&self) -> &[u8; MESSAGE2_SIZE] {
        &self.response
    }

    /// Reads the client's message 3 (a frame payload) and checks the
    /// client's identity.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::MessageSize`] unless `message3` is 160 bytes;
    /// [`HandshakeError::KeyExchange`] if the client's static key has
    /// small order; [`HandshakeError::Authentication`] if it does not
    /// decrypt; [`HandshakeError::InvalidSignature`] and
    /// [`HandshakeError::NotAuthorized`] as for the initiator.
    pub fn finish(mut self, message3: &[u8]) -> Result<Session, HandshakeError> {
        check_size(3, MESSAGE3_SIZE, message3)?;
        let peer = read_peer(&mut self.noise, message3, &self.authorized)?;
        Ok(Session::responder(self.noise, peer))
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("authorized", &self.authorized)
            .finish_non_exhaustive()
    }
}

/// The parsed protocol name, once per process.
fn params() -> NoiseParams {
    static PARAMS: OnceLock<NoiseParams> = OnceLock::new();
    PARAMS
        .get_or_init(|| {
            PROTOCOL_NAME
                .parse()
                .expect("Noise_XX_25519_ChaChaPoly_BLAKE2b is a valid protocol name")
        })
        .clone()
}

/// A snow builder with our resolver, prologue and static key; `ephemeral`
/// fixes the ephemeral key (test vectors only).
fn builder<'a>(
    static_secret: &'a [u8; 32],
    ephemeral: Option<&'a [u8; 32]>,
) -> Result<Builder<'a>, snow::Error> {
    let builder = Builder::with_resolver(params(), Box::new(SodiumResolver))
        .prologue(PROLOGUE)?
        .local_private_key(static_secret)?;
    Ok(match ephemeral {
        Some(key) => builder.fixed_ephemeral_key_for_testing_only(key),
        None => builder,
    })
}

/// Reads a handshake message carrying the peer's identity payload (message
/// 2 for the initiator, 3 for the responder) and checks the identity's
/// signature over the static key Noise authenticated, then `authorized`.
fn read_peer(
    noise: &mut HandshakeState,
    message: &[u8],
    authorized: &AuthorizedKeys,
) -> Result<PublicKey, HandshakeError> {
    let mut payload = [0u8; IDENTITY_PAYLOAD_SIZE];
    let len = noise
        .read_message(message, &mut payload)
        .map_err(noise_error)?;
    verify_peer(&payload[..len], noise.get_remote_static(), authorized)
}

fn check_size(message: u8, expected: usize, bytes: &[u8]) -> Result<(), HandshakeError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(HandshakeError::MessageSize {
            message,
            expected,
            len: bytes.len(),
        })
    }
}

/// What a snow failure on a message of the right size means. With sizes
/// checked first and the typestate fixing the order of calls, snow reports
/// only `Dh` (a small-order key) and `Decrypt` for the peer's bytes; any
/// other error is reported as an authentication failure rather than a panic.
fn noise_error(err: snow::Error) -> HandshakeError {
    match err {
        snow::Error::Dh => HandshakeError::KeyExchange,
        _ => HandshakeError::Authentication,
    }
}
