//! tests/vectors/encryption-v2.json: the project's own complete v2 session
//! with fixed keys, written by the ignored generator below and checked byte
//! for byte (writer side: regenerated; reader side: opened by our receiver).
//!
//! Regenerate (only when the protocol changes, which it must not):
//! `cargo test -p mtgnet-encryption --test it -- --ignored write_encryption_v2_vectors`

use mtgnet_encryption::v2::{
    Flag, Initiator, NoiseIdentity, Opened, PROLOGUE, PROTOCOL_NAME, Responder, SIGNATURE_CONTEXT,
    Sealer, Session,
};
use mtgnet_encryption::{AuthorizedKeys, EphemeralSecret, IdentitySecret};
use serde::{Deserialize, Serialize};

use crate::util::{assert_bytes_eq, frame, unhex, unhex_array, vectors};

const FILE: &str = "encryption-v2.json";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct V2Vectors {
    description: Vec<String>,
    protocol_name: String,
    prologue: String,
    signature_context: String,
    client: Party,
    server: Party,
    handshake: Vec<HandshakeFrame>,
    handshake_hash_hex: String,
    transport_keys: TransportKeys,
    records: Vec<RecordVector>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Party {
    identity_seed_hex: String,
    identity_secret_b64: String,
    identity_public_b64: String,
    static_private_hex: String,
    static_public_hex: String,
    ephemeral_private_hex: String,
    ephemeral_public_hex: String,
    signed_message_hex: String,
    signature_hex: String,
    handshake_payload_hex: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct HandshakeFrame {
    message: u8,
    direction: String,
    payload_hex: String,
    frame_hex: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TransportKeys {
    client_to_server_hex: String,
    server_to_client_hex: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RecordVector {
    direction: String,
    counter: u64,
    flag: u8,
    data: String,
    record_hex: String,
    frame_header: String,
}

const CLIENT_TO_SERVER: &str = "client->server";
const SERVER_TO_CLIENT: &str = "server->client";

/// Identity seeds: keys.json's A (client) and B (server).
const CLIENT_SEED: &str = "b51403c8a9955915944aa696643871ba4f66698966b4bdfb57c113cb9cb56c61";
const SERVER_SEED: &str = "2edf33c9e76230a353741d95368f3ea96e4acb1aceaa4af3591a08a8f6d1e213";

/// 32 consecutive byte values starting at `first`.
fn counting(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first + i as u8)
}

fn client_messages() -> Vec<String> {
    let prefix = r#"[{"service":"Test","method":"length","args":[""#;
    let suffix = r#""],"id":2}]"#;
    let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    let filler: String = alphabet
        .chars()
        .cycle()
        .take(65_600 - prefix.len() - suffix.len())
        .collect();
    vec![
        r#"[{"service":"System","method":"rpcVersion","args":[],"id":1}]"#.to_owned(),
        format!("{prefix}{filler}{suffix}"),
    ]
}

fn server_messages() -> Vec<String> {
    let filler_len = 65_600 - r#"[{"service":"Test","method":"length","args":[""#.len() - 11;
    vec![
        r#"[{"data":{"major":1,"minor":0,"patch":0},"id":1}]"#.to_owned(),
        format!(r#"[{{"data":{filler_len},"id":2}}]"#),
    ]
}

fn party(
    seed_hex: &str,
    static_first: u8,
    ephemeral_first: u8,
) -> (IdentitySecret, NoiseIdentity, Party) {
    let identity = IdentitySecret::from_seed(&unhex_array(seed_hex));
    let static_private = counting(static_first);
    let ephemeral_private = counting(ephemeral_first);
    let noise = NoiseIdentity::with_static_secret(&identity, &static_private);
    let signed = [SIGNATURE_CONTEXT, noise.static_public_key()].concat();
    let payload = [identity.public_key().as_bytes(), &noise.signature()[..]].concat();
    let party = Party {
        identity_seed_hex: seed_hex.to_owned(),
        identity_secret_b64: identity.to_base64().expose_secret().to_owned(),
        identity_public_b64: identity.public_key().to_base64(),
        static_private_hex: hex::encode(static_private),
        static_public_hex: hex::encode(noise.static_public_key()),
        ephemeral_private_hex: hex::encode(ephemeral_private),
        ephemeral_public_hex: hex::encode(
            EphemeralSecret::from_bytes(&ephemeral_private).public_key(),
        ),
        signed_message_hex: hex::encode(signed),
        signature_hex: hex::encode(noise.signature()),
        handshake_payload_hex: hex::encode(payload),
    };
    (identity, noise, party)
}

/// The payloads of consecutive netstring+ frames, with their headers.
fn split_frames(mut frames: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !frames.is_empty() {
        let colon = frames.iter().position(|&b| b == b':').expect("header");
        let header = std::str::from_utf8(&frames[..=colon])
            .expect("ASCII")
            .to_owned();
        let len = usize::from_str_radix(&header[..colon], 16).expect("hex");
        out.push((header, frames[colon + 1..colon + 1 + len].to_vec()));
        assert_eq!(frames[colon + 1 + len], b'\n');
        frames = &frames[colon + 2 + len..];
    }
    out
}

/// The records of `frames` (sealed by `sealer` from counter `counter`),
/// with the chunk each carries.
fn record_vectors(
    direction: &str,
    first_counter: u64,
    frames: &[u8],
    chunks: &[(Flag, &[u8])],
) -> Vec<RecordVector> {
    let frames = split_frames(frames);
    assert_eq!(frames.len(), chunks.len());
    frames
        .into_iter()
        .zip(chunks)
        .enumerate()
        .map(|(i, ((header, record), (flag, data)))| RecordVector {
            direction: direction.to_owned(),
            counter: first_counter + i as u64,
            flag: *flag as u8,
            data: String::from_utf8(data.to_vec()).expect("ASCII messages"),
            record_hex: hex::encode(record),
            frame_header: header,
        })
        .collect()
}

/// A message's chunks as the writer rule makes them.
fn chunks(message: &[u8]) -> Vec<(Flag, &[u8])> {
    let pieces: Vec<&[u8]> = message.chunks(mtgnet_encryption::v2::MAX_CHUNK).collect();
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, c)| (if i == last { Flag::Last } else { Flag::More }, c))
        .collect()
}

fn seal_messages(
    sealer: &mut Sealer,
    direction: &str,
    messages: &[String],
    records: &mut Vec<RecordVector>,
) {
    for message in messages {
        let first = sealer.records_sealed();
        let frames = sealer.seal_framed(message.as_bytes()).expect("seal");
        records.extend(record_vectors(
            direction,
            first,
            &frames,
            &chunks(message.as_bytes()),
        ));
    }
}

fn seal_close(sealer: &mut Sealer, direction: &str, records: &mut Vec<RecordVector>) {
    let first = sealer.records_sealed();
    let frames = sealer.close_framed().expect("close");
    records.extend(record_vectors(
        direction,
        first,
        &frames,
        &[(Flag::Close, b"")],
    ));
}

/// The whole session, computed with the production handshake and sealer
/// (fixed keys through the test hooks).
fn generate() -> V2Vectors {
    let (client_id, client_noise, client) = party(CLIENT_SEED, 0x40, 0x80);
    let (server_id, server_noise, server) = party(SERVER_SEED, 0x60, 0xa0);
    let initiator = Initiator::with_ephemeral_secret(
        &client_noise,
        AuthorizedKeys::only([server_id.public_key()]),
        &counting(0x80),
    );
    let hello = *initiator.hello();
    let responder = Responder::with_ephemeral_secret(
        &server_noise,
        AuthorizedKeys::only([client_id.public_key()]),
        &hello,
        &counting(0xa0),
    )
    .expect("hello");
    let response = *responder.response();
    let (message3, client_session) = initiator.finish(&response).expect("message 2");
    let server_session = responder.finish(&message3).expect("message 3");
    assert_eq!(
        client_session.handshake_hash(),
        server_session.handshake_hash()
    );
    let [c2s, s2c] = client_session.transport_keys_for_testing();
    assert_eq!(server_session.transport_keys_for_testing(), [c2s, s2c]);
    let handshake_hash_hex = hex::encode(client_session.handshake_hash());

    let handshake = [
        (1, CLIENT_TO_SERVER, &hello[..]),
        (2, SERVER_TO_CLIENT, &response[..]),
        (3, CLIENT_TO_SERVER, &message3[..]),
    ]
    .map(|(message, direction, payload)| HandshakeFrame {
        message,
        direction: direction.to_owned(),
        payload_hex: hex::encode(payload),
        frame_hex: hex::encode(frame(payload)),
    })
    .into();

    // Send order: request 1, response 1, request 2 (two chunks), response
    // 2, the client's close, the server's close.
    let (mut client_sealer, _) = client_session.split();
    let (mut server_sealer, _) = server_session.split();
    let (requests, responses) = (client_messages(), server_messages());
    let mut records = Vec::new();
    seal_messages(
        &mut client_sealer,
        CLIENT_TO_SERVER,
        &requests[..1],
        &mut records,
    );
    seal_messages(
        &mut server_sealer,
        SERVER_TO_CLIENT,
        &responses[..1],
        &mut records,
    );
    seal_messages(
        &mut client_sealer,
        CLIENT_TO_SERVER,
        &requests[1..],
        &mut records,
    );
    seal_messages(
        &mut server_sealer,
        SERVER_TO_CLIENT,
        &responses[1..],
        &mut records,
    );
    seal_close(&mut client_sealer, CLIENT_TO_SERVER, &mut records);
    seal_close(&mut server_sealer, SERVER_TO_CLIENT, &mut records);

    V2Vectors {
        description: [
            "Encryption v2 (docs/encryption-v2.md): one complete session, client = keys.json A, server = keys.json B.",
            "Noise static and ephemeral private keys are fixed: client static 40..5f, server static 60..7f, client ephemeral 80..9f, server ephemeral a0..bf.",
            "signed_message = signature_context || static_public; signature = Ed25519(identity, signed_message); handshake_payload = identity_public || signature.",
            "handshake[].payload_hex is the netstring+ payload, frame_hex the whole frame; message 1's payload is the prologue then Noise message 1 (49 bytes).",
            "transport_keys are Noise Split()'s two keys; counter is the record's Noise nonce n (ChaChaPoly nonce = 4 zero bytes || n as 64-bit little endian).",
            "records are in send order; data is the chunk's plaintext after the flag byte; the frame is frame_header || record || 0x0a.",
            "The second client message (65,600 bytes) is two records: a full 65,518-byte chunk (flag 0) and the last 82 bytes (flag 1).",
        ]
        .map(str::to_owned)
        .into(),
        protocol_name: PROTOCOL_NAME.to_owned(),
        prologue: String::from_utf8(PROLOGUE.to_vec()).expect("ASCII"),
        signature_context: String::from_utf8(SIGNATURE_CONTEXT.to_vec()).expect("ASCII"),
        client,
        server,
        handshake,
        handshake_hash_hex,
        transport_keys: TransportKeys {
            client_to_server_hex: hex::encode(c2s),
            server_to_client_hex: hex::encode(s2c),
        },
        records,
    }
}

fn path() -> String {
    format!("{}/../../tests/vectors/{FILE}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
#[ignore = "writes tests/vectors/encryption-v2.json; run only to regenerate it"]
fn write_encryption_v2_vectors() {
    let mut text = serde_json::to_string_pretty(&generate()).expect("serialize");
    text.push('\n');
    std::fs::write(path(), text).expect("write the vector file");
}

#[test]
fn our_v2_vectors_are_reproduced_byte_for_byte() {
    let expected: V2Vectors = vectors(FILE);
    let actual = generate();
    for (name, e, a) in [
        ("client", &expected.client, &actual.client),
        ("server", &expected.server, &actual.server),
    ] {
        for (field, e, a) in [
            (
                "static public key",
                &e.static_public_hex,
                &a.static_public_hex,
            ),
            (
                "ephemeral public key",
                &e.ephemeral_public_hex,
                &a.ephemeral_public_hex,
            ),
            (
                "signed message",
                &e.signed_message_hex,
                &a.signed_message_hex,
            ),
            ("signature", &e.signature_hex, &a.signature_hex),
            (
                "handshake payload",
                &e.handshake_payload_hex,
                &a.handshake_payload_hex,
            ),
        ] {
            assert_bytes_eq(&format!("{name} {field}"), &unhex(e), &unhex(a));
        }
    }
    assert_eq!(expected.handshake.len(), 3);
    for (e, a) in expected.handshake.iter().zip(&actual.handshake) {
        assert_eq!((e.message, &e.direction), (a.message, &a.direction));
        let name = format!("message {}", e.message);
        assert_bytes_eq(
            &format!("{name} payload"),
            &unhex(&e.payload_hex),
            &unhex(&a.payload_hex),
        );
        assert_bytes_eq(
            &format!("{name} frame"),
            &unhex(&e.frame_hex),
            &unhex(&a.frame_hex),
        );
    }
    assert_bytes_eq(
        "handshake hash",
        &unhex(&expected.handshake_hash_hex),
        &unhex(&actual.handshake_hash_hex),
    );
    assert_eq!(expected.records.len(), actual.records.len(), "record count");
    for (i, (e, a)) in expected.records.iter().zip(&actual.records).enumerate() {
        let name = format!("record {i} ({}, counter {})", e.direction, e.counter);
        assert_eq!(
            (&e.direction, e.counter, e.flag, &e.frame_header),
            (&a.direction, a.counter, a.flag, &a.frame_header),
            "{name}"
        );
        assert!(e.data == a.data, "{name}: data differs");
        assert_bytes_eq(&name, &unhex(&e.record_hex), &unhex(&a.record_hex));
    }
    // Everything else (descriptions, keys in text form) too.
    assert!(
        expected == actual,
        "the vector file differs from the generator"
    );
}

#[test]
fn our_v2_vectors_open_with_our_receiver() {
    let v: V2Vectors = vectors(FILE);
    let client_id: IdentitySecret = v.client.identity_secret_b64.parse().expect("client");
    let server_id: IdentitySecret = v.server.identity_secret_b64.parse().expect("server");
    let client_noise =
        NoiseIdentity::with_static_secret(&client_id, &unhex_array(&v.client.static_private_hex));
    let server_noise =
        NoiseIdentity::with_static_secret(&server_id, &unhex_array(&v.server.static_private_hex));
    // Each side reads the file's frames, not its own.
    let initiator = Initiator::with_ephemeral_secret(
        &client_noise,
        AuthorizedKeys::only([server_id.public_key()]),
        &unhex_array(&v.client.ephemeral_private_hex),
    );
    let responder = Responder::with_ephemeral_secret(
        &server_noise,
        AuthorizedKeys::only([client_id.public_key()]),
        &unhex(&v.handshake[0].payload_hex),
        &unhex_array(&v.server.ephemeral_private_hex),
    )
    .expect("hello");
    let (_, client_session) = initiator
        .finish(&unhex(&v.handshake[1].payload_hex))
        .expect("message 2");
    let server_session = responder
        .finish(&unhex(&v.handshake[2].payload_hex))
        .expect("message 3");
    let open_side = |session: Session| session.split().1;
    let (mut client_opener, mut server_opener) =
        (open_side(client_session), open_side(server_session));
    let mut pending = [Vec::new(), Vec::new()];
    let mut messages = [Vec::new(), Vec::new()];
    for r in &v.records {
        let (opener, side) = match r.direction.as_str() {
            CLIENT_TO_SERVER => (&mut server_opener, 0),
            _ => (&mut client_opener, 1),
        };
        let mut record = unhex(&r.record_hex);
        match opener.open_in_place(&mut record).expect("opens") {
            Opened::Partial => pending[side].extend_from_slice(r.data.as_bytes()),
            Opened::InPlace(range) => messages[side].push(record[range].to_vec()),
            Opened::Message(message) => {
                pending[side].extend_from_slice(r.data.as_bytes());
                assert_eq!(message, std::mem::take(&mut pending[side]));
                messages[side].push(message);
            }
            Opened::Closed => assert_eq!(r.flag, 2),
        }
    }
    let as_bytes = |m: Vec<String>| m.into_iter().map(String::into_bytes).collect::<Vec<_>>();
    assert!(
        messages[0] == as_bytes(client_messages()),
        "client messages"
    );
    assert!(
        messages[1] == as_bytes(server_messages()),
        "server messages"
    );
    assert_eq!(server_opener.finish_eof(), Ok(()));
    assert_eq!(client_opener.finish_eof(), Ok(()));
}
