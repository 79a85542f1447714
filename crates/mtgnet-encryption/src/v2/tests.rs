//! Counter exhaustion, which needs a counter moved close to its end.

use crate::error::{RecordError, SealError};

use super::record::TransportKey;
use super::{MAX_CHUNK, Opened, Opener, Sealer};

fn key_at(nonce: u64) -> TransportKey {
    let mut key = TransportKey::take(&mut [9; 32]);
    key.set_nonce(nonce);
    key
}

#[test]
fn sealer_stops_before_the_reserved_counter() {
    let mut sealer = Sealer::new(key_at(u64::MAX - 2));
    // Two records left: a three-record message is refused whole, and
    // nothing of it is written or counted.
    let message = vec![7u8; 2 * MAX_CHUNK + 1];
    let mut out = vec![0u8; Sealer::framed_len(message.len())];
    assert_eq!(
        sealer.seal_framed_into(&message, &mut out),
        Err(SealError::Exhausted)
    );
    assert!(out.iter().all(|&b| b == 0));
    assert_eq!(sealer.records_sealed(), u64::MAX - 2);

    sealer
        .seal_framed(b"one")
        .expect("second to last counter value");
    sealer.close_framed().expect("last usable counter value");
    assert_eq!(sealer.records_sealed(), u64::MAX);
    assert_eq!(sealer.close_framed(), Err(SealError::Closed));

    let mut sealer = Sealer::new(key_at(u64::MAX - 1));
    sealer.seal_framed(b"last").expect("u64::MAX - 1 is usable");
    assert_eq!(sealer.seal_framed(b"more"), Err(SealError::Exhausted));
    assert_eq!(sealer.close_framed(), Err(SealError::Exhausted));
}

#[test]
fn opener_stops_at_the_reserved_counter() {
    let mut sealer = Sealer::new(key_at(u64::MAX - 1));
    let mut opener = Opener::new(key_at(u64::MAX - 1));
    let mut frames = sealer.seal_framed(b"x").expect("seal");
    let end = frames.len() - 1;
    assert_eq!(
        opener.open_in_place(&mut frames[3..end]),
        Ok(Opened::InPlace(1..2))
    );
    assert_eq!(opener.records_opened(), u64::MAX);
    let mut any = [0u8; 17];
    assert_eq!(opener.open_in_place(&mut any), Err(RecordError::Exhausted));
}
