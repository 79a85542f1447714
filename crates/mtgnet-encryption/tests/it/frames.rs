//! frames.json: sealed payloads byte for byte, and tampered payloads rejected.

use mtgnet_encryption::{DecryptError, PublicKey, SEAL_OVERHEAD, Session};
use serde::Deserialize;

use crate::util::{assert_bytes_eq, frame, unhex, unhex_array, vectors};

#[derive(Deserialize)]
struct FramesFile {
    session_key_hex: String,
    cases: Vec<Case>,
    tampered: Vec<Tampered>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    plaintext: String,
    plaintext_hex: String,
    nonce_hex: String,
    mac_hex: String,
    ciphertext_hex: String,
    payload_hex: String,
    frame_hex: String,
}

#[derive(Deserialize)]
struct Tampered {
    name: String,
    payload_hex: String,
    reason: String,
}

fn session(file: &FramesFile) -> Session {
    Session::from_key_bytes(
        &unhex_array(&file.session_key_hex),
        PublicKey::from_bytes(&[0; 32]),
    )
}

#[test]
fn every_case_seals_to_its_payload_and_opens_back() {
    let file: FramesFile = vectors("frames.json");
    let session = session(&file);
    assert_eq!(file.cases.len(), 6);
    for case in &file.cases {
        let name = &case.name;
        let plaintext = unhex(&case.plaintext_hex);
        assert_eq!(plaintext, case.plaintext.as_bytes(), "{name}: plaintext");
        let sealed = session.seal_with_nonce(&plaintext, &unhex_array(&case.nonce_hex));
        assert_bytes_eq(
            &format!("{name}: payload"),
            &unhex(&case.payload_hex),
            &sealed,
        );
        assert_bytes_eq(
            &format!("{name}: nonce"),
            &unhex(&case.nonce_hex),
            &sealed[..24],
        );
        assert_bytes_eq(
            &format!("{name}: mac"),
            &unhex(&case.mac_hex),
            &sealed[24..40],
        );
        assert_bytes_eq(
            &format!("{name}: ciphertext"),
            &unhex(&case.ciphertext_hex),
            &sealed[40..],
        );
        assert_bytes_eq(
            &format!("{name}: frame"),
            &unhex(&case.frame_hex),
            &frame(&sealed),
        );
        assert_eq!(sealed.len(), Session::sealed_len(plaintext.len()));

        let opened = session
            .open(&unhex(&case.payload_hex))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_bytes_eq(&format!("{name}: opened"), &plaintext, &opened);
        let mut buf = unhex(&case.payload_hex);
        let in_place = session
            .open_in_place(&mut buf)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_bytes_eq(&format!("{name}: opened in place"), &plaintext, in_place);
    }
}

#[test]
fn empty_message_opens_to_empty() {
    let file: FramesFile = vectors("frames.json");
    let case = file
        .cases
        .iter()
        .find(|c| c.name == "empty message")
        .expect("empty case");
    let payload = unhex(&case.payload_hex);
    assert_eq!(payload.len(), SEAL_OVERHEAD);
    assert_eq!(session(&file).open(&payload), Ok(Vec::new()));
}

#[test]
fn every_tampered_payload_fails_to_open() {
    let file: FramesFile = vectors("frames.json");
    let session = session(&file);
    assert_eq!(file.tampered.len(), 13);
    for case in &file.tampered {
        let payload = unhex(&case.payload_hex);
        let expected = if payload.len() < SEAL_OVERHEAD {
            DecryptError::TooShort { len: payload.len() }
        } else {
            DecryptError::Authentication
        };
        assert_eq!(
            session.open(&payload),
            Err(expected),
            "{}: {}",
            case.name,
            case.reason
        );
        let mut buf = payload.clone();
        assert_eq!(
            session.open_in_place(&mut buf).map(|p| p.to_vec()),
            Err(expected),
            "{}",
            case.name
        );
    }
}

#[test]
fn random_nonces_differ_and_seal_into_matches_seal_len() {
    let session = Session::from_key_bytes(&[1; 32], PublicKey::from_bytes(&[0; 32]));
    let a = session.seal(b"same");
    let b = session.seal(b"same");
    assert_ne!(a[..24], b[..24], "two seals reused a nonce");
    let mut out = vec![0; Session::sealed_len(4)];
    session.seal_into(b"same", &mut out);
    assert_eq!(session.open(&out).expect("opens"), b"same");
}

#[test]
#[should_panic(expected = "40 bytes longer")]
fn seal_into_wrong_length_panics() {
    let session = Session::from_key_bytes(&[1; 32], PublicKey::from_bytes(&[0; 32]));
    session.seal_into(b"abc", &mut [0; 42]);
}
