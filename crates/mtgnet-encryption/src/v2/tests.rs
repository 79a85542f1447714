//! Counter exhaustion, which needs a counter moved close to its end.

use crate::error::{RecordError, SealError};

use super::record::TransportKey;
use super::{MAX_CHUNK, Opened, Opener, Reservation, Sealer};

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

/// Message lengths around the chunk boundaries: one record, full records,
/// several records with a short last one, and the empty message.
const LENGTHS: [usize; 8] = [
    0,
    1,
    100,
    MAX_CHUNK - 1,
    MAX_CHUNK,
    MAX_CHUNK + 1,
    2 * MAX_CHUNK,
    3 * MAX_CHUNK + 7,
];

fn message(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7) % 251) as u8)
        .collect()
}

/// Opens every frame of `frames` (whole messages, back to back) in order
/// and returns the messages.
fn open_all(opener: &mut Opener, frames: &mut [u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut rest = frames;
    while let Some(colon) = rest.iter().position(|&b| b == b':') {
        let header = std::str::from_utf8(&rest[..colon]).expect("hex");
        let len = usize::from_str_radix(header, 16).expect("hex length");
        let (frame, after) = rest.split_at_mut(colon + 1 + len + 1);
        let record = &mut frame[colon + 1..colon + 1 + len];
        match opener
            .open_in_place(record)
            .expect("opens in counter order")
        {
            Opened::InPlace(range) => messages.push(record[range].to_vec()),
            Opened::Message(message) => messages.push(message),
            Opened::Partial => {}
            other => panic!("unexpected {other:?}"),
        }
        rest = after;
    }
    messages
}

#[test]
fn reservations_sealed_out_of_order_write_the_bytes_of_sealing_in_order() {
    let messages: Vec<Vec<u8>> = LENGTHS
        .iter()
        .enumerate()
        .map(|(seed, &len)| message(len, seed))
        .collect();
    // The reference: one sealer sealing every message in turn.
    let mut in_order = Sealer::new(key_at(5));
    let expected: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| in_order.seal_framed(m).expect("seal"))
        .collect();

    // Its twin (same key, same counter) reserves all of them in order ...
    let mut twin = Sealer::new(key_at(5));
    let reservations: Vec<Reservation> = messages
        .iter()
        .map(|m| twin.reserve(m.len()).expect("reserve"))
        .collect();
    let mut counter = 5;
    for (reservation, m) in reservations.iter().zip(&messages) {
        assert_eq!(reservation.first_counter(), counter);
        assert_eq!(reservation.record_count(), Sealer::record_count(m.len()));
        assert_eq!(reservation.message_len(), m.len());
        counter += reservation.record_count();
    }
    assert_eq!(twin.records_sealed(), counter);
    assert_eq!(in_order.records_sealed(), counter);

    // ... then seals them last first, into slices and into vectors that
    // already hold something.
    let mut sealed: Vec<Vec<u8>> = vec![Vec::new(); messages.len()];
    for (i, reservation) in reservations.into_iter().enumerate().rev() {
        if i % 2 == 0 {
            let mut out = vec![0u8; reservation.framed_len()];
            reservation.seal_framed_into(&messages[i], &mut out);
            sealed[i] = out;
        } else {
            let mut out = b"before".to_vec();
            reservation.seal_framed_append(&messages[i], &mut out);
            assert_eq!(&out[..6], b"before");
            sealed[i] = out.split_off(6);
        }
    }
    for (i, (got, want)) in sealed.iter().zip(&expected).enumerate() {
        assert!(
            got == want,
            "message {i} ({} bytes) differs",
            messages[i].len()
        );
    }

    // The close records agree too, and the peer opens everything.
    assert_eq!(twin.close_framed(), in_order.close_framed());
    let mut opener = Opener::new(key_at(5));
    let mut wire = sealed.concat();
    assert_eq!(open_all(&mut opener, &mut wire), messages);
}

#[test]
fn reservations_sealed_on_many_threads_at_once_match_the_sealer() {
    let messages: Vec<Vec<u8>> = (0..32)
        .map(|i| message(LENGTHS[i % LENGTHS.len()], i))
        .collect();
    let mut in_order = Sealer::new(key_at(0));
    let expected: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| in_order.seal_framed(m).expect("seal"))
        .collect();
    let mut twin = Sealer::new(key_at(0));
    let reservations: Vec<Reservation> = messages
        .iter()
        .map(|m| twin.reserve(m.len()).expect("reserve"))
        .collect();
    let sealed: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = reservations
            .into_iter()
            .zip(&messages)
            .map(|(reservation, m)| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(reservation.framed_len());
                    reservation.seal_framed_append(m, &mut out);
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("seals"))
            .collect()
    });
    assert!(sealed == expected);
}

#[test]
fn reserving_refuses_a_closed_or_exhausted_sealer_and_uses_no_counter() {
    let mut sealer = Sealer::new(key_at(u64::MAX - 2));
    // Two counters left: a three-record message is refused whole.
    assert_eq!(
        sealer.reserve(2 * MAX_CHUNK + 1).map(|_| ()),
        Err(SealError::Exhausted)
    );
    assert_eq!(sealer.records_sealed(), u64::MAX - 2);
    // A two-record message takes both; nothing is left, not even for the
    // close record.
    let last = sealer.reserve(MAX_CHUNK + 1).expect("two counters left");
    assert_eq!(last.first_counter(), u64::MAX - 2);
    assert_eq!(sealer.records_sealed(), u64::MAX);
    assert_eq!(sealer.reserve(0).map(|_| ()), Err(SealError::Exhausted));
    assert_eq!(sealer.close_framed(), Err(SealError::Exhausted));
    // The reservation still seals, with the counters it holds.
    let message = message(MAX_CHUNK + 1, 1);
    let mut opener = Opener::new(key_at(u64::MAX - 2));
    let mut frames = Vec::new();
    last.seal_framed_append(&message, &mut frames);
    assert_eq!(open_all(&mut opener, &mut frames), [message]);

    // After the close record nothing can be reserved.
    let mut sealer = Sealer::new(key_at(0));
    let early = sealer.reserve(3).expect("reserve");
    sealer.close_framed().expect("close");
    assert_eq!(sealer.reserve(3).map(|_| ()), Err(SealError::Closed));
    assert_eq!(sealer.records_sealed(), 2);
    // A reservation made before the close keeps its counter, before it.
    assert_eq!(early.first_counter(), 0);
}

#[test]
fn counters_are_handed_out_once_whatever_the_mix_of_calls() {
    let mut sealer = Sealer::new(key_at(0));
    let mut used: Vec<(u64, u64)> = Vec::new();
    let mut kept = Vec::new();
    for (i, &len) in LENGTHS.iter().cycle().take(40).enumerate() {
        let before = sealer.records_sealed();
        if i % 3 == 0 {
            sealer.seal_framed(&message(len, i)).expect("seal");
        } else {
            let reservation = sealer.reserve(len).expect("reserve");
            assert_eq!(reservation.first_counter(), before);
            // Some are sealed, some dropped unsealed: either way their
            // counters are gone.
            if i % 3 == 1 {
                kept.push(reservation);
            }
        }
        used.push((before, sealer.records_sealed()));
    }
    let close = sealer.records_sealed();
    sealer.close_framed().expect("close");
    used.push((close, close + 1));
    // Consecutive ranges: no counter skipped, none given twice.
    for pair in used.windows(2) {
        assert!(pair[0].0 < pair[0].1, "every message takes a counter");
        assert_eq!(pair[0].1, pair[1].0, "ranges are consecutive");
    }
    assert_eq!(used[0].0, 0);
    assert_eq!(sealer.records_sealed(), close + 1);
    drop(kept);
}

#[test]
fn reservations_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Reservation>();
    send_and_sync::<Sealer>();
}

#[test]
#[should_panic(expected = "exactly the length it was made for")]
fn a_reservation_refuses_a_message_of_another_length() {
    let mut sealer = Sealer::new(key_at(0));
    let reservation = sealer.reserve(3).expect("reserve");
    reservation.seal_framed_append(b"four", &mut Vec::new());
}
