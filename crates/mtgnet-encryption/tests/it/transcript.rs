//! transcript.json: a whole encrypted session between A and B, byte for byte.

use mtgnet_encryption::{AuthorizedKeys, Handshake, IdentitySecret};
use serde::Deserialize;

use crate::util::{assert_bytes_eq, frame, unhex, unhex_array, vectors};

#[derive(Deserialize)]
struct Transcript {
    session_key_hex: String,
    request: String,
    response: String,
    request_nonce_hex: String,
    response_nonce_hex: String,
    client_to_server_hex: String,
    server_to_client_hex: String,
    frames: Vec<Frame>,
    plain: Plain,
}

#[derive(Deserialize)]
struct Frame {
    from: String,
    what: String,
    payload_hex: Option<String>,
    frame_hex: String,
}

#[derive(Deserialize)]
struct Plain {
    client_to_server_hex: String,
    server_to_client_hex: String,
}

#[derive(Deserialize)]
struct HandshakeFile {
    #[serde(rename = "A")]
    a: Party,
    #[serde(rename = "B")]
    b: Party,
}

#[derive(Deserialize)]
struct Party {
    identity_seed_hex: String,
    ephemeral_secret_hex: String,
}

fn start(party: &Party, peer: &Party) -> Handshake {
    let identity = IdentitySecret::from_seed(&unhex_array(&party.identity_seed_hex));
    let peer_key = IdentitySecret::from_seed(&unhex_array(&peer.identity_seed_hex)).public_key();
    Handshake::with_ephemeral_secret(
        &identity,
        AuthorizedKeys::only([peer_key]),
        &unhex_array(&party.ephemeral_secret_hex),
    )
}

#[test]
fn encrypted_session_reproduces_transcript() {
    let t: Transcript = vectors("transcript.json");
    let keys: HandshakeFile = vectors("handshake.json");
    let client = start(&keys.a, &keys.b);
    let server = start(&keys.b, &keys.a);
    let client_hello = frame(client.payload());
    let server_hello = frame(server.payload());
    let (client_payload, server_payload) = (*client.payload(), *server.payload());
    let client = client
        .finish(&server_payload)
        .expect("client accepts server");
    let server = server
        .finish(&client_payload)
        .expect("server accepts client");

    let request = client.seal_with_nonce(t.request.as_bytes(), &unhex_array(&t.request_nonce_hex));
    let response =
        server.seal_with_nonce(t.response.as_bytes(), &unhex_array(&t.response_nonce_hex));
    assert_eq!(
        server.open(&request).expect("server opens request"),
        t.request.as_bytes()
    );
    assert_eq!(
        client.open(&response).expect("client opens response"),
        t.response.as_bytes()
    );

    let ours = [
        ("client", "handshake", client_hello.clone(), None),
        ("server", "handshake", server_hello.clone(), None),
        ("client", "request", frame(&request), Some(request.clone())),
        (
            "server",
            "response",
            frame(&response),
            Some(response.clone()),
        ),
    ];
    assert_eq!(t.frames.len(), ours.len());
    for (expected, (from, what, frame_bytes, payload)) in t.frames.iter().zip(&ours) {
        assert_eq!(
            (expected.from.as_str(), expected.what.as_str()),
            (*from, *what)
        );
        let name = format!("{from} {what}");
        assert_bytes_eq(
            &format!("{name} frame"),
            &unhex(&expected.frame_hex),
            frame_bytes,
        );
        if let (Some(expected_payload), Some(payload)) = (&expected.payload_hex, payload) {
            assert_bytes_eq(
                &format!("{name} payload"),
                &unhex(expected_payload),
                payload,
            );
        }
    }

    let client_stream = [client_hello, frame(&request)].concat();
    let server_stream = [server_hello, frame(&response)].concat();
    assert_bytes_eq(
        "client to server stream",
        &unhex(&t.client_to_server_hex),
        &client_stream,
    );
    assert_bytes_eq(
        "server to client stream",
        &unhex(&t.server_to_client_hex),
        &server_stream,
    );

    // The transcript's session key is the one both sides hold.
    let expected = mtgnet_encryption::Session::from_key_bytes(
        &unhex_array(&t.session_key_hex),
        *client.peer_identity(),
    );
    assert_eq!(
        expected.open(&request).expect("transcript key opens"),
        t.request.as_bytes()
    );
}

#[test]
fn plain_session_frames_the_same_messages() {
    let t: Transcript = vectors("transcript.json");
    assert_bytes_eq(
        "plain client to server",
        &unhex(&t.plain.client_to_server_hex),
        &frame(t.request.as_bytes()),
    );
    assert_bytes_eq(
        "plain server to client",
        &unhex(&t.plain.server_to_client_hex),
        &frame(t.response.as_bytes()),
    );
}
