//! encryption-v2-independent.json: an independent implementation's whole v2
//! session, reproduced byte for byte in both directions.

use mtgnet_encryption::v2::{
    Flag, Initiator, NoiseIdentity, Opened, Opener, PROLOGUE, PROTOCOL_NAME, Responder,
    SIGNATURE_CONTEXT, Sealer,
};
use mtgnet_encryption::{AuthorizedKeys, IdentitySecret};
use serde::Deserialize;

use crate::util::{assert_bytes_eq, frame, unhex, unhex_array, vectors};

#[derive(Deserialize)]
struct Independent {
    protocol_name: String,
    prologue: String,
    signature_context: String,
    client: Party,
    server: Party,
    handshake: Vec<HandshakeFrame>,
    handshake_hash_hex: String,
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Party {
    identity_secret_b64: String,
    identity_public_b64: String,
    static_private_hex: String,
    static_public_hex: String,
    ephemeral_private_hex: String,
    signature_hex: String,
}

#[derive(Deserialize)]
struct HandshakeFrame {
    direction: String,
    payload_hex: String,
    frame_hex: String,
}

#[derive(Deserialize)]
struct Record {
    direction: String,
    flag: u8,
    data: String,
    record_hex: String,
    frame_hex: String,
}

/// One side's identity, checked against the file.
fn noise_identity(name: &str, party: &Party) -> NoiseIdentity {
    let identity: IdentitySecret = party.identity_secret_b64.parse().expect("identity secret");
    assert_eq!(
        identity.public_key().to_base64(),
        party.identity_public_b64,
        "{name} identity public key"
    );
    let noise =
        NoiseIdentity::with_static_secret(&identity, &unhex_array(&party.static_private_hex));
    assert_bytes_eq(
        &format!("{name} static public key"),
        &unhex(&party.static_public_hex),
        noise.static_public_key(),
    );
    assert_bytes_eq(
        &format!("{name} signature"),
        &unhex(&party.signature_hex),
        noise.signature(),
    );
    assert!(noise.verify_signature());
    noise
}

/// One side's sender and receiver, and whether its last record left a
/// message unfinished (the next chunk continues it).
struct Side {
    sealer: Sealer,
    opener: Opener,
    sending_message: bool,
    receiving: Vec<u8>,
}

#[test]
fn independent_v2_session_reproduces_byte_for_byte() {
    let v: Independent = vectors("encryption-v2-independent.json");
    assert_eq!(v.protocol_name, PROTOCOL_NAME);
    assert_eq!(v.prologue.as_bytes(), PROLOGUE);
    assert_eq!(v.signature_context.as_bytes(), SIGNATURE_CONTEXT);

    let client = noise_identity("client", &v.client);
    let server = noise_identity("server", &v.server);
    let [m1, m2, m3] = &v.handshake[..] else {
        panic!("three handshake frames expected");
    };
    for (m, direction) in [
        (m1, "client->server"),
        (m2, "server->client"),
        (m3, "client->server"),
    ] {
        assert_eq!(m.direction, direction);
    }

    // Both sides pin each other, so the vectors exercise authorization.
    let initiator = Initiator::with_ephemeral_secret(
        &client,
        AuthorizedKeys::only([server.identity()]),
        &unhex_array(&v.client.ephemeral_private_hex),
    );
    assert_bytes_eq(
        "message 1 payload",
        &unhex(&m1.payload_hex),
        initiator.hello(),
    );
    assert_bytes_eq(
        "message 1 frame",
        &unhex(&m1.frame_hex),
        &frame(initiator.hello()),
    );

    // The server reads *their* hello, the client reads *their* message 2.
    let responder = Responder::with_ephemeral_secret(
        &server,
        AuthorizedKeys::only([client.identity()]),
        &unhex(&m1.payload_hex),
        &unhex_array(&v.server.ephemeral_private_hex),
    )
    .expect("server accepts the hello");
    assert_bytes_eq(
        "message 2 payload",
        &unhex(&m2.payload_hex),
        responder.response(),
    );
    assert_bytes_eq(
        "message 2 frame",
        &unhex(&m2.frame_hex),
        &frame(responder.response()),
    );

    let (message3, client_session) = initiator
        .finish(&unhex(&m2.payload_hex))
        .expect("client accepts message 2");
    assert_bytes_eq("message 3 payload", &unhex(&m3.payload_hex), &message3);
    assert_bytes_eq("message 3 frame", &unhex(&m3.frame_hex), &frame(&message3));
    let server_session = responder
        .finish(&unhex(&m3.payload_hex))
        .expect("server accepts message 3");

    let hash = unhex(&v.handshake_hash_hex);
    assert_bytes_eq(
        "client handshake hash",
        &hash,
        client_session.handshake_hash(),
    );
    assert_bytes_eq(
        "server handshake hash",
        &hash,
        server_session.handshake_hash(),
    );
    assert_eq!(client_session.peer_identity(), &server.identity());
    assert_eq!(server_session.peer_identity(), &client.identity());

    let side = |session: mtgnet_encryption::v2::Session| {
        let (sealer, opener) = session.split();
        Side {
            sealer,
            opener,
            sending_message: false,
            receiving: Vec::new(),
        }
    };
    let (mut client, mut server) = (side(client_session), side(server_session));
    for (i, r) in v.records.iter().enumerate() {
        let (sender, receiver) = match r.direction.as_str() {
            "client->server" => (&mut client, &mut server),
            "server->client" => (&mut server, &mut client),
            other => panic!("unknown direction {other}"),
        };
        let name = format!("record {i} ({}, flag {})", r.direction, r.flag);
        let flag = Flag::from_byte(r.flag).expect("a known flag");
        let data = r.data.as_bytes();

        // Ours: whole messages and close through the production calls, a
        // chunk of a message split by their writer through the test hook.
        let ours = match flag {
            Flag::Last if !sender.sending_message => {
                sender.sealer.seal_framed(data).expect("seal message")
            }
            Flag::Close => sender.sealer.close_framed().expect("seal close"),
            Flag::More | Flag::Last => {
                let mut record = vec![0u8; data.len() + 17];
                sender
                    .sealer
                    .seal_record_into(flag, data, &mut record)
                    .expect("seal chunk");
                frame(&record)
            }
        };
        sender.sending_message = flag == Flag::More;
        assert_bytes_eq(&format!("{name} frame"), &unhex(&r.frame_hex), &ours);
        assert_bytes_eq(
            &format!("{name} record"),
            &unhex(&r.record_hex),
            &ours[ours.iter().position(|&b| b == b':').expect("header") + 1..ours.len() - 1],
        );

        // Theirs, opened by our receiver.
        let mut record = unhex(&r.record_hex);
        let opened = receiver.opener.open_in_place(&mut record).expect("opens");
        match (flag, opened) {
            (Flag::More, Opened::Partial) => receiver.receiving.extend_from_slice(data),
            (Flag::Last, Opened::InPlace(range)) => {
                assert!(
                    receiver.receiving.is_empty(),
                    "{name}: a message was pending"
                );
                assert_eq!(&record[range], data, "{name}");
            }
            (Flag::Last, Opened::Message(message)) => {
                receiver.receiving.extend_from_slice(data);
                assert_eq!(message, std::mem::take(&mut receiver.receiving), "{name}");
            }
            (Flag::Close, Opened::Closed) => {}
            (flag, opened) => panic!("{name}: flag {flag:?} opened as {opened:?}"),
        }
    }
    for (name, side) in [("client", &client), ("server", &server)] {
        assert!(side.sealer.is_closed(), "{name} sent its close record");
        assert_eq!(
            side.opener.finish_eof(),
            Ok(()),
            "{name} saw the peer's close"
        );
    }
}
