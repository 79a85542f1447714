//! The v2 handshake: negotiation of the first frame, identities, and every
//! way a handshake message can be wrong.

use mtgnet_encryption::v2::{
    FirstFrame, HELLO_SIZE, Initiator, MESSAGE2_SIZE, MESSAGE3_SIZE, NoiseIdentity, PROLOGUE,
    Responder, Session, classify_first_payload,
};
use mtgnet_encryption::{AuthorizedKeys, Handshake, HandshakeError, IdentitySecret};

struct Party {
    identity: IdentitySecret,
    noise: NoiseIdentity,
}

fn party(seed: u8) -> Party {
    let identity = IdentitySecret::from_seed(&[seed; 32]);
    let noise = NoiseIdentity::new(&identity);
    Party { identity, noise }
}

/// A full handshake between `client` and `server` with the given
/// authorized keys, returning both sessions.
fn handshake(
    client: &NoiseIdentity,
    client_pins: AuthorizedKeys,
    server: &NoiseIdentity,
    server_accepts: AuthorizedKeys,
) -> Result<(Session, Session), HandshakeError> {
    let initiator = Initiator::new(client, client_pins);
    let responder = Responder::new(server, server_accepts, initiator.hello())?;
    let (message3, client_session) = initiator.finish(responder.response())?;
    let server_session = responder.finish(&message3)?;
    Ok((client_session, server_session))
}

#[test]
fn handshake_authenticates_both_identities_and_agrees_on_the_hash() {
    let (client, server) = (party(1), party(2));
    let (c, s) = handshake(
        &client.noise,
        AuthorizedKeys::only([server.identity.public_key()]),
        &server.noise,
        AuthorizedKeys::only([client.identity.public_key()]),
    )
    .expect("both authorized");
    assert_eq!(c.peer_identity(), &server.identity.public_key());
    assert_eq!(s.peer_identity(), &client.identity.public_key());
    assert_eq!(c.handshake_hash(), s.handshake_hash());

    // Fresh ephemeral keys: another handshake of the same parties differs.
    let (c2, _) = handshake(
        &client.noise,
        AuthorizedKeys::any(),
        &server.noise,
        AuthorizedKeys::any(),
    )
    .expect("any");
    assert_ne!(c.handshake_hash(), c2.handshake_hash());
}

#[test]
fn handshake_frames_have_their_fixed_sizes() {
    let (client, server) = (party(1), party(2));
    let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
    assert_eq!(initiator.hello().len(), 49);
    assert!(initiator.hello().starts_with(b"mtgnet-noise-xx/1"));
    let responder =
        Responder::new(&server.noise, AuthorizedKeys::any(), initiator.hello()).expect("hello");
    assert_eq!(responder.response().len(), 192);
    let (message3, _) = initiator.finish(responder.response()).expect("message 2");
    assert_eq!(message3.len(), 160);
}

#[test]
fn v1_handshake_payload_is_classified_v1() {
    let v1 = Handshake::new(&IdentitySecret::generate(), AuthorizedKeys::any());
    assert_eq!(classify_first_payload(v1.payload()), FirstFrame::V1);
    let hello = *Initiator::new(&party(1).noise, AuthorizedKeys::any()).hello();
    assert_eq!(classify_first_payload(&hello), FirstFrame::V2);
}

#[test]
fn first_frame_with_a_wrong_prefix_is_rejected() {
    let server = party(2);
    let mut hello = *Initiator::new(&party(1).noise, AuthorizedKeys::any()).hello();
    hello[0] = b'M';
    assert_eq!(hello.len(), 49);
    assert_eq!(classify_first_payload(&hello), FirstFrame::Reject);
    assert_eq!(
        Responder::new(&server.noise, AuthorizedKeys::any(), &hello).expect_err("must fail"),
        HandshakeError::Prologue
    );
    // A wrong version number in the prologue is a wrong prefix too.
    let mut other_version = *Initiator::new(&party(1).noise, AuthorizedKeys::any()).hello();
    other_version[16] = b'2';
    assert_eq!(classify_first_payload(&other_version), FirstFrame::Reject);
}

#[test]
fn first_frame_of_a_wrong_size_is_rejected() {
    let server = party(2);
    let hello = *Initiator::new(&party(1).noise, AuthorizedKeys::any()).hello();
    let longer = [&hello[..], &[0]].concat();
    for payload in [
        &hello[..48],
        &longer[..],
        PROLOGUE,
        &[][..],
        &[0u8; 127][..],
        &[0u8; 129][..],
    ] {
        assert_eq!(
            classify_first_payload(payload),
            FirstFrame::Reject,
            "{} bytes",
            payload.len()
        );
    }
    assert_eq!(
        Responder::new(&server.noise, AuthorizedKeys::any(), &longer).expect_err("must fail"),
        HandshakeError::MessageSize {
            message: 1,
            expected: HELLO_SIZE,
            len: 50
        }
    );
    assert_eq!(
        Responder::new(&server.noise, AuthorizedKeys::any(), &hello[..48]).expect_err("must fail"),
        HandshakeError::MessageSize {
            message: 1,
            expected: HELLO_SIZE,
            len: 48
        }
    );
}

#[test]
fn bad_signature_on_message_2_fails_without_message_3() {
    let (client, server) = (party(1), party(2));
    // The server's identity signed another static key, not the one it uses.
    let other = NoiseIdentity::new(&server.identity);
    let forged = NoiseIdentity::new(&server.identity).with_signature(*other.signature());
    let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
    let responder =
        Responder::new(&forged, AuthorizedKeys::any(), initiator.hello()).expect("hello");
    // `finish` yields message 3 only on success: there is nothing to send.
    assert_eq!(
        initiator.finish(responder.response()).map(|(m3, _)| m3),
        Err(HandshakeError::InvalidSignature)
    );
    assert!(forged.identity() == server.identity.public_key());
}

#[test]
fn bad_signature_on_message_3_is_refused_by_the_server() {
    let (client, server) = (party(1), party(2));
    let other = NoiseIdentity::new(&client.identity);
    let forged = NoiseIdentity::new(&client.identity).with_signature(*other.signature());
    let err = handshake(
        &forged,
        AuthorizedKeys::any(),
        &server.noise,
        AuthorizedKeys::any(),
    );
    assert_eq!(
        err.expect_err("must fail"),
        HandshakeError::InvalidSignature
    );
}

#[test]
fn unpinned_server_fails_at_message_2_with_its_key() {
    let (client, server, pinned) = (party(1), party(2), party(3));
    let initiator = Initiator::new(
        &client.noise,
        AuthorizedKeys::only([pinned.identity.public_key()]),
    );
    let responder =
        Responder::new(&server.noise, AuthorizedKeys::any(), initiator.hello()).expect("hello");
    assert_eq!(
        initiator.finish(responder.response()).map(|(m3, _)| m3),
        Err(HandshakeError::NotAuthorized(server.identity.public_key()))
    );
}

#[test]
fn unauthorized_client_is_refused_after_message_3_with_its_key() {
    let (client, server, other) = (party(1), party(2), party(3));
    let err = handshake(
        &client.noise,
        AuthorizedKeys::any(),
        &server.noise,
        AuthorizedKeys::only([other.identity.public_key()]),
    );
    assert_eq!(
        err.expect_err("must fail"),
        HandshakeError::NotAuthorized(client.identity.public_key())
    );
}

#[test]
fn tampered_message_2_fails_authentication() {
    let (client, server) = (party(1), party(2));
    // Each byte of the encrypted static key, the payload and its tag counts.
    for index in [32, 79, 80, 150, MESSAGE2_SIZE - 1] {
        let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
        let responder =
            Responder::new(&server.noise, AuthorizedKeys::any(), initiator.hello()).expect("hello");
        let mut response = *responder.response();
        response[index] ^= 0x01;
        assert_eq!(
            initiator.finish(&response).map(|(m3, _)| m3),
            Err(HandshakeError::Authentication),
            "byte {index}"
        );
    }
}

#[test]
fn tampered_message_3_fails_authentication() {
    let (client, server) = (party(1), party(2));
    for index in [0, 47, 48, MESSAGE3_SIZE - 1] {
        let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
        let responder =
            Responder::new(&server.noise, AuthorizedKeys::any(), initiator.hello()).expect("hello");
        let (mut message3, _) = initiator.finish(responder.response()).expect("message 2");
        message3[index] ^= 0x80;
        assert_eq!(
            responder.finish(&message3).expect_err("must fail"),
            HandshakeError::Authentication,
            "byte {index}"
        );
    }
}

#[test]
fn messages_2_and_3_of_a_wrong_size_are_rejected() {
    let (client, server) = (party(1), party(2));
    let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
    let responder =
        Responder::new(&server.noise, AuthorizedKeys::any(), initiator.hello()).expect("hello");
    let longer = [&responder.response()[..], &[0]].concat();
    assert_eq!(
        initiator.finish(&longer).map(|(m3, _)| m3),
        Err(HandshakeError::MessageSize {
            message: 2,
            expected: MESSAGE2_SIZE,
            len: MESSAGE2_SIZE + 1
        })
    );
    let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
    let responder =
        Responder::new(&server.noise, AuthorizedKeys::any(), initiator.hello()).expect("hello");
    let (message3, _) = initiator.finish(responder.response()).expect("message 2");
    assert_eq!(
        responder
            .finish(&message3[..MESSAGE3_SIZE - 1])
            .expect_err("must fail"),
        HandshakeError::MessageSize {
            message: 3,
            expected: MESSAGE3_SIZE,
            len: MESSAGE3_SIZE - 1
        }
    );
}

#[test]
fn v1_only_server_is_told_apart_from_a_bad_message_2() {
    let (client, server) = (party(1), party(2));
    let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
    // A v1-only server sends its 128-byte handshake frame on connect.
    let v1 = Handshake::new(&server.identity, AuthorizedKeys::any());
    assert_eq!(
        initiator.finish(v1.payload()).map(|(m3, _)| m3),
        Err(HandshakeError::OnlyV1)
    );
}

#[test]
fn small_order_ephemeral_keys_fail_the_key_exchange() {
    let (client, server) = (party(1), party(2));
    // Message 1 carrying the all-zero point.
    let hello = [PROLOGUE, &[0u8; 32]].concat();
    assert_eq!(classify_first_payload(&hello), FirstFrame::V2);
    assert_eq!(
        Responder::new(&server.noise, AuthorizedKeys::any(), &hello).expect_err("must fail"),
        HandshakeError::KeyExchange
    );
    // Message 2 whose ephemeral key is a point of order 1 (u = 1).
    let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
    let responder =
        Responder::new(&server.noise, AuthorizedKeys::any(), initiator.hello()).expect("hello");
    let mut response = *responder.response();
    response[..32].copy_from_slice(&[0; 32]);
    response[0] = 1;
    assert_eq!(
        initiator.finish(&response).map(|(m3, _)| m3),
        Err(HandshakeError::KeyExchange)
    );
}

#[test]
fn handshake_types_do_not_print_secrets() {
    let client = party(1);
    let initiator = Initiator::new(&client.noise, AuthorizedKeys::any());
    for text in [format!("{:?}", client.noise), format!("{initiator:?}")] {
        assert!(!text.contains("static_secret: ["), "{text}");
    }
    assert!(format!("{:?}", client.noise).contains("[REDACTED]"));
}
