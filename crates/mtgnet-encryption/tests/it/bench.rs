//! The benchmark baselines compute what a session does, and the throughput
//! comparison returns sane numbers.

use std::time::Duration;

use mtgnet_encryption::bench::{crypto_throughput, random_nonce, raw_open_in_place, raw_seal};
use mtgnet_encryption::{NONCE_SIZE, PublicKey, Session};

#[test]
fn raw_calls_match_the_session_byte_for_byte() {
    let key = [5u8; 32];
    let session = Session::from_key_bytes(&key, PublicKey::from_bytes(&[0; 32]));
    let nonce = random_nonce();
    assert_ne!(nonce, random_nonce(), "nonces are random");
    for len in [0, 1, 64, 1000] {
        let message: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let sealed = session.seal_with_nonce(&message, &nonce);
        let mut raw = vec![0u8; len + 16];
        raw_seal(&mut raw, &message, &nonce, &key);
        assert_eq!(&sealed[..NONCE_SIZE], &nonce);
        assert_eq!(&sealed[NONCE_SIZE..], &raw[..], "len {len}");

        assert!(raw_open_in_place(&mut raw, &nonce, &key));
        assert_eq!(&raw[..len], &message[..]);
        let mut tampered = sealed[NONCE_SIZE..].to_vec();
        tampered[0] ^= 1;
        assert!(!raw_open_in_place(&mut tampered, &nonce, &key));
    }
    assert!(!raw_open_in_place(&mut [0u8; 15], &nonce, &key));
}

#[test]
fn crypto_throughput_reports_positive_rates() {
    for size in [64, 4096] {
        let t = crypto_throughput(size, Duration::from_millis(100));
        assert_eq!(t.size, size);
        for rate in [t.seal_mb_s, t.raw_seal_mb_s, t.open_mb_s, t.raw_open_mb_s] {
            assert!(rate.is_finite() && rate > 0.0, "{t:?}");
        }
        assert!(t.seal_ratio() > 0.0 && t.open_ratio() > 0.0, "{t:?}");
    }
}

#[test]
fn record_throughput_reports_positive_rates() {
    for size in [64, 70_000] {
        let t = mtgnet_encryption::bench::record_throughput(size, Duration::from_millis(100));
        assert_eq!(t.size, size);
        for rate in [t.seal_mb_s, t.raw_seal_mb_s, t.open_mb_s, t.raw_open_mb_s] {
            assert!(rate.is_finite() && rate > 0.0, "{t:?}");
        }
        assert!(t.seal_ratio() > 0.0 && t.open_ratio() > 0.0, "{t:?}");
    }
}

#[test]
fn raw_aead_matches_a_single_record_message() {
    use mtgnet_encryption::bench::{raw_aead_open_in_place, raw_aead_seal, v2_opener, v2_sealer};
    use mtgnet_encryption::v2::Opened;

    let key = [6u8; 32];
    // The raw AEAD of flag || message under counter 0 is the record.
    let message = b"[{\"id\":1}]";
    let plaintext = [&[1u8][..], message].concat();
    let mut raw = vec![0u8; plaintext.len() + 16];
    raw_aead_seal(&mut raw, &plaintext, 0, &key);
    let frames = v2_sealer(&key).seal_framed(message).expect("seal");
    assert_eq!(
        &frames[frames.len() - 1 - raw.len()..frames.len() - 1],
        &raw[..]
    );
    let mut record = raw.clone();
    assert_eq!(
        v2_opener(&key).open_in_place(&mut record),
        Ok(Opened::InPlace(1..1 + message.len()))
    );
    assert!(raw_aead_open_in_place(&mut raw, 0, &key));
    assert_eq!(&raw[..plaintext.len()], &plaintext[..]);
    assert!(!raw_aead_open_in_place(&mut raw[..20], 0, &key));
}
