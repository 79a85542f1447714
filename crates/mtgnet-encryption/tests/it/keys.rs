//! keys.json: identity keys, their base64 form, and rejected encodings.

use mtgnet_encryption::{IdentitySecret, KeyError, PublicKey};
use serde::Deserialize;

use crate::util::{assert_bytes_eq, unhex, unhex_array, vectors};

#[derive(Deserialize)]
struct KeysFile {
    secret_size: usize,
    publickey_size: usize,
    keys: Vec<Key>,
    invalid_secrets: Vec<InvalidSecret>,
}

#[derive(Deserialize)]
struct Key {
    name: String,
    seed_hex: String,
    secret_hex: String,
    secret_b64: String,
    public_hex: String,
    public_b64: String,
}

#[derive(Deserialize)]
struct InvalidSecret {
    encoded: String,
    reason: String,
}

#[test]
fn sizes_match_vectors() {
    let file: KeysFile = vectors("keys.json");
    assert_eq!(file.secret_size, mtgnet_encryption::SECRET_SIZE);
    assert_eq!(file.publickey_size, mtgnet_encryption::PUBLICKEY_SIZE);
}

#[test]
fn seed_derives_secret_and_public_key_of_every_vector() {
    let file: KeysFile = vectors("keys.json");
    assert_eq!(file.keys.len(), 3);
    for key in &file.keys {
        let secret = IdentitySecret::from_seed(&unhex_array(&key.seed_hex));
        secret.expose_secret(|bytes| {
            assert_bytes_eq(
                &format!("{}: secret", key.name),
                &unhex(&key.secret_hex),
                bytes,
            )
        });
        let public = secret.public_key();
        assert_bytes_eq(
            &format!("{}: public", key.name),
            &unhex(&key.public_hex),
            public.as_bytes(),
        );
        assert_eq!(
            secret.to_base64().expose_secret(),
            key.secret_b64,
            "{}: secret base64",
            key.name
        );
        assert_eq!(
            public.to_string(),
            key.public_b64,
            "{}: public base64",
            key.name
        );
        assert_eq!(
            public.to_base64(),
            key.public_b64,
            "{}: public to_base64",
            key.name
        );
        assert_eq!(
            format!("{public:?}"),
            format!("PublicKey({})", key.public_b64)
        );
    }
}

#[test]
fn encoded_secrets_and_public_keys_decode_to_vector_bytes() {
    let file: KeysFile = vectors("keys.json");
    for key in &file.keys {
        let decoded = IdentitySecret::from_base64(&key.secret_b64)
            .unwrap_or_else(|e| panic!("{}: {e}", key.name));
        decoded.expose_secret(|bytes| {
            assert_bytes_eq(
                &format!("{}: decoded secret", key.name),
                &unhex(&key.secret_hex),
                bytes,
            )
        });
        let from_bytes =
            IdentitySecret::from_bytes(&unhex(&key.secret_hex)).expect("valid secret bytes");
        assert_eq!(from_bytes.public_key(), decoded.public_key());
        // A key file usually ends in a newline.
        let with_newline: IdentitySecret = format!("  {}\r\n", key.secret_b64)
            .parse()
            .expect("trimmed");
        assert_eq!(with_newline.public_key(), decoded.public_key());

        let public: PublicKey = key.public_b64.parse().expect("valid public key");
        assert_bytes_eq(
            &format!("{}: decoded public", key.name),
            &unhex(&key.public_hex),
            public.as_bytes(),
        );
        assert_eq!(public, decoded.public_key());
    }
}

/// The error each `invalid_secrets` entry must produce, by its reason.
fn expected_error(reason: &str) -> KeyError {
    let wrong = |len| KeyError::WrongLength { expected: 64, len };
    match reason {
        "87 characters" | "89 characters" | "86 characters (padding stripped)" => KeyError::Base64,
        "empty" => wrong(0),
        "a 44-character public key given as a secret" => wrong(32),
        // Hex digits are base64 characters too: 128 of them are 96 bytes.
        "128 hex digits, not base64" => wrong(96),
        "'!' is not a base64 character" => KeyError::Base64,
        r if r.contains("URL-safe alphabet") => KeyError::Base64,
        "line break inside" | "padding in the middle" => KeyError::Base64,
        "88 characters without padding: decodes to 66 bytes" => wrong(66),
        r if r.starts_with("non-canonical") => KeyError::NonCanonicalBase64,
        r if r.contains("public half") => KeyError::PublicHalfMismatch,
        other => panic!("no expected error for invalid secret {other:?}; update this test"),
    }
}

#[test]
fn every_invalid_secret_is_rejected_with_its_error() {
    let file: KeysFile = vectors("keys.json");
    assert_eq!(file.invalid_secrets.len(), 14);
    for case in &file.invalid_secrets {
        let expected = expected_error(&case.reason);
        match IdentitySecret::from_base64(&case.encoded) {
            Ok(_) => panic!("{}: decoded, expected {expected:?}", case.reason),
            Err(actual) => assert_eq!(actual, expected, "{}", case.reason),
        }
    }
}

#[test]
fn key_errors_have_distinct_messages() {
    let messages = [
        KeyError::WrongLength {
            expected: 64,
            len: 3,
        },
        KeyError::Base64,
        KeyError::NonCanonicalBase64,
        KeyError::PublicHalfMismatch,
    ]
    .map(|e| e.to_string());
    for (i, a) in messages.iter().enumerate() {
        for b in &messages[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert!(
        messages[0].contains("64") && messages[0].contains('3'),
        "{}",
        messages[0]
    );
}

#[test]
fn from_bytes_rejects_wrong_length_and_mismatched_half() {
    assert_eq!(
        IdentitySecret::from_bytes(&[0; 63]).expect_err("must be rejected"),
        KeyError::WrongLength {
            expected: 64,
            len: 63
        }
    );
    let a = IdentitySecret::from_seed(&[1; 32]);
    let b = IdentitySecret::from_seed(&[2; 32]);
    let mut mixed = a.expose_secret(|bytes| bytes.to_vec());
    mixed[32..].copy_from_slice(b.public_key().as_bytes());
    assert_eq!(
        IdentitySecret::from_bytes(&mixed).expect_err("must be rejected"),
        KeyError::PublicHalfMismatch
    );
}

#[test]
fn public_key_parse_rejects_wrong_length_and_non_canonical() {
    let file: KeysFile = vectors("keys.json");
    let err = file.keys[0]
        .secret_b64
        .parse::<PublicKey>()
        .expect_err("must be rejected");
    assert_eq!(
        err,
        KeyError::WrongLength {
            expected: 32,
            len: 64
        }
    );
    // 'U=' ends the A key; 'V=' sets an unused bit.
    let non_canonical = file.keys[0].public_b64.replace("U=", "V=");
    assert_eq!(
        non_canonical
            .parse::<PublicKey>()
            .expect_err("must be rejected"),
        KeyError::NonCanonicalBase64
    );
    assert_eq!(
        "not base64!"
            .parse::<PublicKey>()
            .expect_err("must be rejected"),
        KeyError::Base64
    );
}

#[test]
fn signatures_open_under_the_signer_only() {
    let a = IdentitySecret::from_seed(&[1; 32]);
    let b = IdentitySecret::from_seed(&[2; 32]);
    let signed = a.sign(b"message");
    assert_eq!(&signed[64..], b"message");
    assert_eq!(
        a.public_key().open_signed(&signed).expect("valid"),
        b"message"
    );
    assert!(b.public_key().open_signed(&signed).is_err());
    let mut flipped = signed.clone();
    flipped[3] ^= 1;
    assert!(a.public_key().open_signed(&flipped).is_err());
    assert!(a.public_key().open_signed(&signed[..63]).is_err());
    let empty = a.sign(b"");
    assert_eq!(a.public_key().open_signed(&empty).expect("valid"), b"");
}

#[test]
fn read_from_accepts_a_secret_file_and_rejects_oversized_or_bad_input() {
    let secret = mtgnet_encryption::IdentitySecret::generate();
    let text = format!("  {}\r\n", secret.to_base64().expose_secret());
    let read = mtgnet_encryption::IdentitySecret::read_from(text.as_bytes()).expect("valid file");
    assert_eq!(read.public_key(), secret.public_key());
    let huge = vec![b'A'; 4096];
    assert!(matches!(
        mtgnet_encryption::IdentitySecret::read_from(&huge[..]),
        Err(mtgnet_encryption::Error::Key(
            mtgnet_encryption::KeyError::WrongLength { .. }
        ))
    ));
    assert!(matches!(
        mtgnet_encryption::IdentitySecret::read_from(&b"\xff\xfe"[..]),
        Err(mtgnet_encryption::Error::Key(_))
    ));
    assert!(matches!(
        mtgnet_encryption::IdentitySecret::read_from(&b""[..]),
        Err(mtgnet_encryption::Error::Key(
            mtgnet_encryption::KeyError::WrongLength { len: 0, .. }
        ))
    ));
}
