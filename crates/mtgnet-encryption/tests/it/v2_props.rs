//! v2 properties: any split of a message into chunks reassembles the same,
//! any bit flip in a record is caught, and the fuzz entry points never
//! panic.

use mtgnet_encryption::RecordError;
use mtgnet_encryption::bench::{v2_opener, v2_sealer};
use mtgnet_encryption::v2::{Flag, Opened, Opener, Sealer};
use proptest::prelude::*;

const KEY: [u8; 32] = [0x24; 32];

fn open_all(
    opener: &mut Opener,
    records: Vec<Vec<u8>>,
) -> Vec<Result<Option<Vec<u8>>, RecordError>> {
    records
        .into_iter()
        .map(|mut record| {
            opener
                .open_in_place(&mut record)
                .map(|opened| match opened {
                    Opened::InPlace(range) => Some(record[range].to_vec()),
                    Opened::Message(message) => Some(message),
                    Opened::Partial | Opened::Closed => None,
                })
        })
        .collect()
}

fn seal_chunk(sealer: &mut Sealer, flag: Flag, data: &[u8]) -> Vec<u8> {
    let mut record = vec![0u8; data.len() + 17];
    sealer
        .seal_record_into(flag, data, &mut record)
        .expect("seal");
    record
}

proptest! {
    #[test]
    fn any_split_into_chunks_reassembles_the_message(
        message in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(message.len() + 1)).collect();
        cuts.push(message.len());
        cuts.sort_unstable();
        let mut sealer = v2_sealer(&KEY);
        let mut start = 0;
        let mut records = Vec::new();
        for (i, &end) in cuts.iter().enumerate() {
            let flag = if i + 1 == cuts.len() { Flag::Last } else { Flag::More };
            records.push(seal_chunk(&mut sealer, flag, &message[start..end]));
            start = end;
        }
        let mut opener = v2_opener(&KEY);
        let opened = open_all(&mut opener, records);
        let (last, partial) = opened.split_last().expect("at least one record");
        prop_assert!(partial.iter().all(|r| r == &Ok(None)));
        prop_assert_eq!(last, &Ok(Some(message)));
    }

    #[test]
    fn sealed_messages_round_trip(message in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut sealer = v2_sealer(&KEY);
        let frames = sealer.seal_framed(&message).expect("seal");
        prop_assert_eq!(frames.len(), Sealer::framed_len(message.len()));
        let colon = frames.iter().position(|&b| b == b':').expect("header");
        let record = frames[colon + 1..frames.len() - 1].to_vec();
        let mut opener = v2_opener(&KEY);
        prop_assert_eq!(open_all(&mut opener, vec![record]), vec![Ok(Some(message))]);
    }

    #[test]
    fn any_single_bit_flip_fails_to_open(
        message in proptest::collection::vec(any::<u8>(), 0..256),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut sealer = v2_sealer(&KEY);
        let mut record = seal_chunk(&mut sealer, Flag::Last, &message);
        let index = position.index(record.len());
        record[index] ^= 1 << bit;
        let mut opener = v2_opener(&KEY);
        prop_assert_eq!(opener.open_in_place(&mut record), Err(RecordError::Decrypt));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_v2_readers(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        mtgnet_encryption::fuzzing::v2_record_opener(&data);
        mtgnet_encryption::fuzzing::v2_handshake_reader(&data);
    }
}

#[test]
fn fuzz_seeds_run_clean() {
    for target in ["v2_handshake_reader", "v2_record_opener"] {
        let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.expect("dir entry").path();
            let data = std::fs::read(&path).expect("seed");
            match target {
                "v2_handshake_reader" => mtgnet_encryption::fuzzing::v2_handshake_reader(&data),
                _ => mtgnet_encryption::fuzzing::v2_record_opener(&data),
            }
            seeds += 1;
        }
        assert!(seeds >= 5, "{target}: {seeds} seeds");
    }
}
