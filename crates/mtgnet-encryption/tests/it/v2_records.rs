//! v2 records: sealing, reassembly, and the attacks and malformed records
//! a receiver must detect (each test fails if its check is removed).

use mtgnet_encryption::v2::{
    Flag, Initiator, MAX_CHUNK, NoiseIdentity, Opened, Opener, Responder, Sealer,
};
use mtgnet_encryption::{AuthorizedKeys, IdentitySecret, RecordError, SealError};

/// Both halves of both sides of a fresh session.
struct Pair {
    client_sealer: Sealer,
    client_opener: Opener,
    server_sealer: Sealer,
    server_opener: Opener,
}

fn pair() -> Pair {
    let client = NoiseIdentity::new(&IdentitySecret::generate());
    let server = NoiseIdentity::new(&IdentitySecret::generate());
    let initiator = Initiator::new(&client, AuthorizedKeys::any());
    let responder =
        Responder::new(&server, AuthorizedKeys::any(), initiator.hello()).expect("hello");
    let (message3, client_session) = initiator.finish(responder.response()).expect("message 2");
    let server_session = responder.finish(&message3).expect("message 3");
    let (client_sealer, client_opener) = client_session.split();
    let (server_sealer, server_opener) = server_session.split();
    Pair {
        client_sealer,
        client_opener,
        server_sealer,
        server_opener,
    }
}

/// Splits netstring+ frames into their payloads (the records), checking the
/// header is shortest upper-case hex.
fn records(mut frames: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !frames.is_empty() {
        let colon = frames.iter().position(|&b| b == b':').expect("a header");
        let header = std::str::from_utf8(&frames[..colon]).expect("ASCII header");
        let len = usize::from_str_radix(header, 16).expect("hex length");
        assert_eq!(header, format!("{len:X}"), "shortest upper-case header");
        let payload = &frames[colon + 1..colon + 1 + len];
        assert_eq!(frames[colon + 1 + len], b'\n');
        out.push(payload.to_vec());
        frames = &frames[colon + 2 + len..];
    }
    out
}

/// Seals `message` and returns its records.
fn seal(sealer: &mut Sealer, message: &[u8]) -> Vec<Vec<u8>> {
    records(&sealer.seal_framed(message).expect("seal"))
}

/// The close record.
fn close(sealer: &mut Sealer) -> Vec<u8> {
    let mut records = records(&sealer.close_framed().expect("close"));
    assert_eq!(records.len(), 1);
    records.remove(0)
}

/// Opens records in order; returns each outcome with an in-place message
/// copied out.
fn open(opener: &mut Opener, record: &[u8]) -> Result<Option<Vec<u8>>, RecordError> {
    let mut record = record.to_vec();
    Ok(match opener.open_in_place(&mut record)? {
        Opened::InPlace(range) => Some(record[range].to_vec()),
        Opened::Message(message) => Some(message),
        Opened::Partial => None,
        Opened::Closed => Some(b"<closed>".to_vec()),
    })
}

fn chunk(sealer: &mut Sealer, flag: Flag, data: &[u8]) -> Vec<u8> {
    let mut record = vec![0u8; data.len() + 17];
    sealer
        .seal_record_into(flag, data, &mut record)
        .expect("seal chunk");
    record
}

#[test]
fn messages_round_trip_both_ways_in_place() {
    let mut p = pair();
    let request = seal(&mut p.client_sealer, b"[1]");
    assert_eq!(request.len(), 1);
    assert_eq!(request[0].len(), 3 + 1 + 16);
    let mut record = request[0].clone();
    assert_eq!(
        p.server_opener.open_in_place(&mut record),
        Ok(Opened::InPlace(1..4))
    );
    assert_eq!(&record[1..4], b"[1]");
    let response = seal(&mut p.server_sealer, b"[2]");
    assert_eq!(
        open(&mut p.client_opener, &response[0]),
        Ok(Some(b"[2]".to_vec()))
    );
    assert_eq!(p.client_sealer.records_sealed(), 1);
    assert_eq!(p.server_opener.records_opened(), 1);
}

#[test]
fn long_message_is_split_into_full_chunks_and_reassembled() {
    let mut p = pair();
    let message: Vec<u8> = (0..2 * MAX_CHUNK + 100).map(|i| (i % 251) as u8).collect();
    let sealed = seal(&mut p.client_sealer, &message);
    let lens: Vec<usize> = sealed.iter().map(Vec::len).collect();
    assert_eq!(lens, [65_535, 65_535, 100 + 17]);
    assert_eq!(open(&mut p.server_opener, &sealed[0]), Ok(None));
    assert_eq!(open(&mut p.server_opener, &sealed[1]), Ok(None));
    assert_eq!(open(&mut p.server_opener, &sealed[2]), Ok(Some(message)));
    // A message of exactly one full chunk is one record.
    let full = vec![1u8; MAX_CHUNK];
    let sealed = seal(&mut p.client_sealer, &full);
    assert_eq!(sealed.len(), 1);
    assert_eq!(open(&mut p.server_opener, &sealed[0]), Ok(Some(full)));
}

#[test]
fn replayed_record_fails_to_open() {
    let mut p = pair();
    let first = seal(&mut p.client_sealer, b"[1]").remove(0);
    assert!(open(&mut p.server_opener, &first).is_ok());
    assert_eq!(
        open(&mut p.server_opener, &first),
        Err(RecordError::Decrypt)
    );
}

#[test]
fn swapped_records_fail_to_open() {
    let mut p = pair();
    let _first = seal(&mut p.client_sealer, b"[1]").remove(0);
    let second = seal(&mut p.client_sealer, b"[2]").remove(0);
    assert_eq!(
        open(&mut p.server_opener, &second),
        Err(RecordError::Decrypt)
    );
}

#[test]
fn reflected_record_fails_to_open() {
    let mut p = pair();
    // The client's first record sent back to the client: same counter (0),
    // but the client opens with the server's key.
    let record = seal(&mut p.client_sealer, b"[1]").remove(0);
    assert_eq!(
        open(&mut p.client_opener, &record),
        Err(RecordError::Decrypt)
    );
    let record = seal(&mut p.server_sealer, b"[1]").remove(0);
    assert_eq!(
        open(&mut p.server_opener, &record),
        Err(RecordError::Decrypt)
    );
}

#[test]
fn record_from_another_session_fails_to_open() {
    let (mut one, mut other) = (pair(), pair());
    let record = seal(&mut one.client_sealer, b"[1]").remove(0);
    assert_eq!(
        open(&mut other.server_opener, &record),
        Err(RecordError::Decrypt)
    );
}

#[test]
fn tampered_or_short_records_fail_to_open() {
    let mut p = pair();
    let mut record = seal(&mut p.client_sealer, b"[1]").remove(0);
    record[0] ^= 1;
    assert_eq!(
        open(&mut p.server_opener, &record),
        Err(RecordError::Decrypt)
    );
    let mut p = pair();
    assert_eq!(
        open(&mut p.server_opener, &[0u8; 15]),
        Err(RecordError::Decrypt)
    );
    let mut p = pair();
    assert_eq!(
        open(&mut p.server_opener, &vec![0u8; 65_536]),
        Err(RecordError::TooLong { len: 65_536 })
    );
}

#[test]
fn record_without_a_flag_byte_is_an_error() {
    let mut p = pair();
    let record = p.client_sealer.seal_plaintext(b"");
    assert_eq!(record.len(), 16);
    assert_eq!(
        open(&mut p.server_opener, &record),
        Err(RecordError::MissingFlag)
    );
}

#[test]
fn unknown_flag_is_an_error() {
    let mut p = pair();
    let record = p.client_sealer.seal_plaintext(b"\x03[1]");
    assert_eq!(
        open(&mut p.server_opener, &record),
        Err(RecordError::UnknownFlag(3))
    );
}

#[test]
fn close_record_with_data_is_an_error() {
    let mut p = pair();
    let record = p.client_sealer.seal_plaintext(b"\x02x");
    assert_eq!(
        open(&mut p.server_opener, &record),
        Err(RecordError::CloseWithData { len: 1 })
    );
}

#[test]
fn close_in_the_middle_of_a_message_is_an_error() {
    let mut p = pair();
    let first = chunk(&mut p.client_sealer, Flag::More, b"[1");
    let close = close(&mut p.client_sealer);
    assert_eq!(open(&mut p.server_opener, &first), Ok(None));
    assert_eq!(
        open(&mut p.server_opener, &close),
        Err(RecordError::CloseMidMessage)
    );
    // An empty chunk starts a message too.
    let mut p = pair();
    let first = chunk(&mut p.client_sealer, Flag::More, b"");
    let close = self::close(&mut p.client_sealer);
    assert_eq!(open(&mut p.server_opener, &first), Ok(None));
    assert_eq!(
        open(&mut p.server_opener, &close),
        Err(RecordError::CloseMidMessage)
    );
}

#[test]
fn truncated_and_closed_are_told_apart() {
    // Closed: a close record, then end of file.
    let mut p = pair();
    let message = seal(&mut p.client_sealer, b"[1]").remove(0);
    let close = close(&mut p.client_sealer);
    assert!(open(&mut p.server_opener, &message).is_ok());
    assert_eq!(p.server_opener.finish_eof(), Err(RecordError::Truncated));
    assert_eq!(
        open(&mut p.server_opener, &close),
        Ok(Some(b"<closed>".to_vec()))
    );
    assert!(p.server_opener.is_closed());
    assert_eq!(p.server_opener.finish_eof(), Ok(()));

    // Truncated: the stream cut after a complete record, or inside a message.
    let mut p = pair();
    let message = seal(&mut p.client_sealer, b"[1]").remove(0);
    assert!(open(&mut p.server_opener, &message).is_ok());
    assert_eq!(p.server_opener.finish_eof(), Err(RecordError::Truncated));
    let first = chunk(&mut p.client_sealer, Flag::More, b"[2");
    assert_eq!(open(&mut p.server_opener, &first), Ok(None));
    assert_eq!(p.server_opener.finish_eof(), Err(RecordError::Truncated));
}

#[test]
fn nothing_is_sealed_or_opened_after_close() {
    let mut p = pair();
    let close = close(&mut p.client_sealer);
    assert!(p.client_sealer.is_closed());
    assert_eq!(p.client_sealer.seal_framed(b"[1]"), Err(SealError::Closed));
    assert_eq!(p.client_sealer.close_framed(), Err(SealError::Closed));
    // A writer that ignores the rule: the record after close is refused.
    let after = p.client_sealer.seal_plaintext(b"\x01[1]");
    assert!(open(&mut p.server_opener, &close).is_ok());
    assert_eq!(
        open(&mut p.server_opener, &after),
        Err(RecordError::AfterClose)
    );
}

#[test]
fn max_message_exactly_at_the_limit_is_accepted_one_over_is_rejected() {
    // One record.
    let mut p = pair();
    let mut opener = p.server_opener.with_max_message(100);
    let at_limit = seal(&mut p.client_sealer, &[b'x'; 100]).remove(0);
    assert_eq!(open(&mut opener, &at_limit), Ok(Some(vec![b'x'; 100])));
    let over = seal(&mut p.client_sealer, &[b'x'; 101]).remove(0);
    assert_eq!(
        open(&mut opener, &over),
        Err(RecordError::MessageTooLarge { max: 100 })
    );

    // Several records: the limit counts the reassembled message.
    let limit = MAX_CHUNK + 10;
    let mut p = pair();
    let mut opener = p.server_opener.with_max_message(limit);
    for record in seal(&mut p.client_sealer, &vec![b'y'; limit]) {
        let _ = open(&mut opener, &record).expect("at the limit");
    }
    let over = seal(&mut p.client_sealer, &vec![b'y'; limit + 1]);
    assert_eq!(open(&mut opener, &over[0]), Ok(None));
    assert_eq!(
        open(&mut opener, &over[1]),
        Err(RecordError::MessageTooLarge { max: limit })
    );

    // Small chunks: detected at the chunk that crosses the limit.
    let mut p = pair();
    let mut opener = p.server_opener.with_max_message(4);
    let a = chunk(&mut p.client_sealer, Flag::More, b"ab");
    let b = chunk(&mut p.client_sealer, Flag::More, b"cd");
    let c = chunk(&mut p.client_sealer, Flag::Last, b"e");
    assert_eq!(open(&mut opener, &a), Ok(None));
    assert_eq!(open(&mut opener, &b), Ok(None));
    assert_eq!(
        open(&mut opener, &c),
        Err(RecordError::MessageTooLarge { max: 4 })
    );
}

#[test]
fn empty_chunks_and_short_chunks_are_accepted() {
    let mut p = pair();
    let records = [
        chunk(&mut p.client_sealer, Flag::More, b""),
        chunk(&mut p.client_sealer, Flag::More, b"[1"),
        chunk(&mut p.client_sealer, Flag::More, b""),
        chunk(&mut p.client_sealer, Flag::Last, b"]"),
        chunk(&mut p.client_sealer, Flag::Last, b""),
    ];
    let opened: Vec<_> = records
        .iter()
        .map(|r| open(&mut p.server_opener, r))
        .collect();
    assert_eq!(
        opened,
        [
            Ok(None),
            Ok(None),
            Ok(None),
            Ok(Some(b"[1]".to_vec())),
            Ok(Some(Vec::new())),
        ]
    );
    // The empty message the sealer itself writes: one record, flag only.
    let empty = seal(&mut p.client_sealer, b"");
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].len(), 17);
    assert_eq!(open(&mut p.server_opener, &empty[0]), Ok(Some(Vec::new())));
}

#[test]
fn opener_refuses_everything_after_an_error() {
    let mut p = pair();
    let good = seal(&mut p.client_sealer, b"[1]").remove(0);
    assert_eq!(
        open(&mut p.server_opener, &[0u8; 40]),
        Err(RecordError::Decrypt)
    );
    // The genuine record still carries the expected counter, but the
    // session is over.
    assert_eq!(open(&mut p.server_opener, &good), Err(RecordError::Failed));
    assert_eq!(p.server_opener.finish_eof(), Err(RecordError::Truncated));
}

#[test]
fn sealing_into_a_caller_buffer_writes_exactly_the_frames() {
    let mut p = pair();
    let message = vec![b'z'; MAX_CHUNK + 3];
    let mut out = vec![0u8; Sealer::framed_len(message.len()) + 2];
    let (head, rest) = out.split_at_mut(1);
    let (frames, tail) = rest.split_at_mut(Sealer::framed_len(message.len()));
    p.client_sealer
        .seal_framed_into(&message, frames)
        .expect("seal");
    assert_eq!((head[0], tail), (0, &mut [0u8][..]));
    let sealed = records(frames);
    assert_eq!(sealed.len(), 2);
    assert_eq!(open(&mut p.server_opener, &sealed[0]), Ok(None));
    assert_eq!(open(&mut p.server_opener, &sealed[1]), Ok(Some(message)));
    let mut close = [0u8; Sealer::CLOSE_FRAMED_LEN];
    p.client_sealer
        .close_framed_into(&mut close)
        .expect("close");
    assert!(close.starts_with(b"11:") && close.ends_with(b"\n"));
}
