//! Property tests: sealing round-trips, and any single-bit flip is caught.

use mtgnet_encryption::{DecryptError, PublicKey, Session};
use proptest::prelude::*;

fn session() -> Session {
    Session::from_key_bytes(&[0x42; 32], PublicKey::from_bytes(&[0; 32]))
}

proptest! {
    #[test]
    fn seal_then_open_round_trips(plaintext in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let session = session();
        let sealed = session.seal(&plaintext);
        prop_assert_eq!(sealed.len(), Session::sealed_len(plaintext.len()));
        prop_assert_eq!(session.open(&sealed), Ok(plaintext.clone()));
        let mut buf = sealed.clone();
        prop_assert_eq!(session.open_in_place(&mut buf).map(|p| p.to_vec()), Ok(plaintext));
    }

    #[test]
    fn any_single_bit_flip_fails_to_open(
        plaintext in proptest::collection::vec(any::<u8>(), 0..256),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let session = session();
        let mut sealed = session.seal(&plaintext);
        let index = position.index(sealed.len());
        sealed[index] ^= 1 << bit;
        prop_assert_eq!(session.open(&sealed), Err(DecryptError::Authentication));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        mtgnet_encryption::fuzzing::session_open(&data);
        mtgnet_encryption::fuzzing::handshake_finish(&data);
    }
}
