//! handshake.json: payloads byte for byte, the shared key, every peer-payload case.

use mtgnet_encryption::{
    AuthorizedKeys, EphemeralKeypair, EphemeralSecret, Handshake, HandshakeError, IdentitySecret,
    PublicKey, Session,
};
use serde::Deserialize;

use crate::util::{assert_bytes_eq, frame, unhex, unhex_array, vectors};

#[derive(Deserialize)]
struct HandshakeFile {
    #[serde(rename = "A")]
    a: Party,
    #[serde(rename = "B")]
    b: Party,
    x25519_shared_hex: String,
    session_key_hex: String,
    #[serde(rename = "session_key_A_hex")]
    session_key_a_hex: String,
    #[serde(rename = "session_key_B_hex")]
    session_key_b_hex: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Party {
    identity_seed_hex: String,
    identity_secret_b64: String,
    identity_public_hex: String,
    identity_public_b64: String,
    ephemeral_secret_hex: String,
    ephemeral_public_hex: String,
    signature_hex: String,
    signed_hex: String,
    payload_hex: String,
    frame_hex: String,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    payload_hex: String,
    authorized_b64: Authorized,
    expect: String,
    peer_identity_b64: Option<String>,
    peer_ephemeral_hex: Option<String>,
    key_b64: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Authorized {
    Any(String),
    List(Vec<String>),
}

impl Authorized {
    fn to_keys(&self) -> AuthorizedKeys {
        match self {
            Authorized::Any(any) => {
                assert_eq!(any, "any");
                AuthorizedKeys::any()
            }
            Authorized::List(keys) => AuthorizedKeys::only(
                keys.iter()
                    .map(|k| k.parse::<PublicKey>().expect("vector key")),
            ),
        }
    }
}

fn identity(party: &Party) -> IdentitySecret {
    let secret = IdentitySecret::from_seed(&unhex_array(&party.identity_seed_hex));
    let decoded = IdentitySecret::from_base64(&party.identity_secret_b64).expect("vector secret");
    assert_eq!(secret.public_key(), decoded.public_key());
    assert_eq!(secret.public_key().to_base64(), party.identity_public_b64);
    secret
}

fn handshake(party: &Party, authorized: AuthorizedKeys) -> Handshake {
    Handshake::with_ephemeral_secret(
        &identity(party),
        authorized,
        &unhex_array(&party.ephemeral_secret_hex),
    )
}

/// A session with the expected key, to compare sessions by what they seal.
fn expected_session(key_hex: &str) -> Session {
    Session::from_key_bytes(&unhex_array(key_hex), PublicKey::from_bytes(&[0; 32]))
}

fn assert_same_key(what: &str, expected: &Session, actual: &Session) {
    let nonce = [0x5a; 24];
    assert_bytes_eq(
        what,
        &expected.seal_with_nonce(b"key check", &nonce),
        &actual.seal_with_nonce(b"key check", &nonce),
    );
}

#[test]
fn payloads_of_a_and_b_match_byte_for_byte() {
    let file: HandshakeFile = vectors("handshake.json");
    for (name, party) in [("A", &file.a), ("B", &file.b)] {
        let id = identity(party);
        assert_bytes_eq(
            &format!("{name} identity"),
            &unhex(&party.identity_public_hex),
            id.public_key().as_bytes(),
        );
        let ephemeral = EphemeralSecret::from_bytes(&unhex_array(&party.ephemeral_secret_hex));
        assert_bytes_eq(
            &format!("{name} ephemeral public"),
            &unhex(&party.ephemeral_public_hex),
            &ephemeral.public_key(),
        );

        let signed = id.sign(&unhex(&party.ephemeral_public_hex));
        assert_bytes_eq(
            &format!("{name} signature"),
            &unhex(&party.signature_hex),
            &signed[..64],
        );
        assert_bytes_eq(
            &format!("{name} signed"),
            &unhex(&party.signed_hex),
            &signed,
        );

        let hs = handshake(party, AuthorizedKeys::any());
        assert_bytes_eq(
            &format!("{name} payload"),
            &unhex(&party.payload_hex),
            hs.payload(),
        );
        assert_bytes_eq(
            &format!("{name} frame"),
            &unhex(&party.frame_hex),
            &frame(hs.payload()),
        );
    }
}

#[test]
fn both_directions_derive_the_vector_session_key() {
    let file: HandshakeFile = vectors("handshake.json");
    assert_eq!(file.session_key_hex, file.session_key_a_hex);
    assert_eq!(file.session_key_hex, file.session_key_b_hex);
    // The X25519 shared secret itself is not exposed; crypto_box_beforenm is
    // HSalsa20 of it, so the key check below covers it.
    assert_eq!(file.x25519_shared_hex.len(), 64);
    let expected = expected_session(&file.session_key_hex);

    let a = handshake(&file.a, AuthorizedKeys::any());
    let b = handshake(&file.b, AuthorizedKeys::any());
    let (a_payload, b_payload) = (*a.payload(), *b.payload());
    let a_session = a.finish(&b_payload).expect("A accepts B");
    let b_session = b.finish(&a_payload).expect("B accepts A");
    assert_eq!(
        a_session.peer_identity().to_base64(),
        file.b.identity_public_b64
    );
    assert_eq!(
        b_session.peer_identity().to_base64(),
        file.a.identity_public_b64
    );
    assert_same_key("A's session key", &expected, &a_session);
    assert_same_key("B's session key", &expected, &b_session);

    let key = EphemeralKeypair::from_secret(EphemeralSecret::from_bytes(&unhex_array(
        &file.a.ephemeral_secret_hex,
    )))
    .into_session_key(&unhex_array(&file.b.ephemeral_public_hex))
    .expect("valid key exchange");
    key.expose_secret(|k| assert_bytes_eq("session key", &unhex(&file.session_key_hex), k));
}

#[test]
fn every_case_gives_its_expected_outcome() {
    let file: HandshakeFile = vectors("handshake.json");
    assert_eq!(file.cases.len(), 18);
    let b_ephemeral: [u8; 32] = unhex_array(&file.b.ephemeral_secret_hex);
    for case in &file.cases {
        let receiver = handshake(&file.b, case.authorized_b64.to_keys());
        let payload = unhex(&case.payload_hex);
        let result = receiver.finish(&payload);
        let name = &case.name;
        match (case.expect.as_str(), result) {
            ("ok", Ok(session)) => {
                let identity = case
                    .peer_identity_b64
                    .as_deref()
                    .expect("ok case names the peer");
                assert_eq!(session.peer_identity().to_base64(), identity, "{name}");
                let peer_ephemeral: [u8; 32] = unhex_array(
                    case.peer_ephemeral_hex
                        .as_deref()
                        .expect("ok case names the ephemeral"),
                );
                assert_bytes_eq(
                    &format!("{name}: ephemeral"),
                    &peer_ephemeral,
                    &payload[96..],
                );
                let key = EphemeralKeypair::from_secret(EphemeralSecret::from_bytes(&b_ephemeral))
                    .into_session_key(&peer_ephemeral)
                    .expect("ok case key exchange");
                let expected = key
                    .expose_secret(|k| Session::from_key_bytes(k, PublicKey::from_bytes(&[0; 32])));
                assert_same_key(name, &expected, &session);
            }
            ("invalid-signature", Err(HandshakeError::InvalidSignature)) => {}
            ("not-authorized", Err(HandshakeError::NotAuthorized(key))) => {
                assert_eq!(
                    Some(key.to_base64().as_str()),
                    case.key_b64.as_deref(),
                    "{name}"
                );
            }
            ("handshake-size", Err(HandshakeError::Size { len })) => {
                assert_eq!(len, payload.len(), "{name}")
            }
            ("key-exchange", Err(HandshakeError::KeyExchange)) => {}
            (expect, actual) => panic!("{name}: expected {expect}, got {actual:?}"),
        }
    }
}

#[test]
fn empty_authorized_list_rejects_everyone() {
    let file: HandshakeFile = vectors("handshake.json");
    let receiver = handshake(&file.b, AuthorizedKeys::only([]));
    let err = receiver
        .finish(&unhex(&file.a.payload_hex))
        .expect_err("nobody authorized");
    assert_eq!(
        err,
        HandshakeError::NotAuthorized(file.a.identity_public_b64.parse().expect("key"))
    );
}

#[test]
fn random_identities_agree_on_a_session() {
    for _ in 0..8 {
        let alice = IdentitySecret::generate();
        let bob = IdentitySecret::generate();
        assert_ne!(alice.public_key(), bob.public_key());
        let a = Handshake::new(&alice, AuthorizedKeys::only([bob.public_key()]));
        let b = Handshake::new(&bob, AuthorizedKeys::only([alice.public_key()]));
        let (a_payload, b_payload) = (*a.payload(), *b.payload());
        assert_ne!(a_payload[32..], b_payload[32..]);
        let a = a.finish(&b_payload).expect("alice accepts bob");
        let b = b.finish(&a_payload).expect("bob accepts alice");
        assert_eq!(b.open(&a.seal(b"ping")).expect("same key"), b"ping");
        assert_eq!(a.open(&b.seal(b"pong")).expect("same key"), b"pong");
        // A fresh ephemeral key every time: the same identity's next payload differs.
        assert_ne!(
            Handshake::new(&alice, AuthorizedKeys::any()).payload(),
            &a_payload
        );
    }
}
