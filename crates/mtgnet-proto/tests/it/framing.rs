//! netstring+ framing against `tests/vectors/netstring.json`, plus limits,
//! zero-copy and any-split properties.

use bytes::BytesMut;
use mtgnet_proto::framing::{
    DEFAULT_MAX_FRAME, FrameDecoder, FrameError, HANDSHAKE_MAX_FRAME, decode_chunks, encode_frame,
    encode_header, frame_len,
};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    max_frame: usize,
    valid: Vec<Valid>,
    valid_lowercase: Vec<ValidLowercase>,
    invalid: Vec<Invalid>,
    streams: Vec<Stream>,
}

#[derive(Deserialize)]
struct Valid {
    name: String,
    header: String,
    payload_hex: String,
    frame_hex: String,
}

#[derive(Deserialize)]
struct ValidLowercase {
    name: String,
    payload_hex: String,
    frame_hex: String,
}

#[derive(Deserialize)]
struct Invalid {
    name: String,
    frame_hex: String,
    reason: String,
    kind: String,
    detect_at: usize,
    max_frame: Option<usize>,
}

#[derive(Deserialize)]
struct Stream {
    name: String,
    stream_hex: String,
    payloads_hex: Vec<String>,
    error_after: bool,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/netstring.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn unhex(name: &str, text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("{name}: bad hex in vector: {e}"))
}

#[track_caller]
fn assert_bytes_eq(context: &str, expected: &[u8], actual: &[u8]) {
    assert!(
        expected == actual,
        "{context}: bytes differ\n  expected: {}\n  actual:   {}",
        hex::encode(expected),
        hex::encode(actual)
    );
}

#[track_caller]
fn assert_payloads_eq(context: &str, expected: &[Vec<u8>], actual: &[Vec<u8>]) {
    let show = |ps: &[Vec<u8>]| ps.iter().map(hex::encode).collect::<Vec<_>>().join(" | ");
    assert!(
        expected == actual,
        "{context}: payloads differ\n  expected: [{}]\n  actual:   [{}]",
        show(expected),
        show(actual)
    );
}

/// The error an invalid vector's `reason` and offending byte call for.
fn expected_error(entry: &Invalid, frame: &[u8], max_frame: usize) -> FrameError {
    let reason = entry.reason.as_str();
    let byte = frame[entry.detect_at - 1];
    if reason.starts_with("empty header") {
        FrameError::EmptyHeader
    } else if reason.starts_with("non-hex") || reason.starts_with("non-ASCII") {
        FrameError::InvalidHeaderByte(byte)
    } else if reason.starts_with("leading zero") {
        FrameError::LeadingZero
    } else if reason.starts_with("terminator") || reason.starts_with("byte after the payload") {
        FrameError::BadTerminator(byte)
    } else if reason.starts_with("length exceeds") || reason.contains("the limit") {
        FrameError::TooLong { max: max_frame }
    } else {
        panic!(
            "{}: reason {reason:?} maps to no FrameError; extend this test",
            entry.name
        )
    }
}

#[test]
fn valid_vectors_encode_to_exact_uppercase_frame() {
    for v in vectors().valid {
        let payload = unhex(&v.name, &v.payload_hex);
        let frame = unhex(&v.name, &v.frame_hex);

        let mut encoded = BytesMut::new();
        encode_frame(&payload, &mut encoded);
        assert_bytes_eq(&format!("{}: encode_frame", v.name), &frame, &encoded);
        assert_eq!(
            frame_len(payload.len()),
            frame.len(),
            "{}: frame_len",
            v.name
        );

        let mut header = BytesMut::new();
        encode_header(payload.len(), &mut header);
        assert_bytes_eq(
            &format!("{}: encode_header", v.name),
            format!("{}:", v.header).as_bytes(),
            &header,
        );
    }
}

#[test]
fn valid_vectors_decode_whole_to_payload_with_nothing_left() {
    let vectors = vectors();
    for v in vectors.valid {
        let payload = unhex(&v.name, &v.payload_hex);
        let mut buf = BytesMut::from(&unhex(&v.name, &v.frame_hex)[..]);
        let mut decoder = FrameDecoder::new(vectors.max_frame);
        let decoded = decoder
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let decoded = decoded.unwrap_or_else(|| panic!("{}: whole frame not decoded", v.name));
        assert_bytes_eq(&v.name, &payload, &decoded);
        assert!(buf.is_empty(), "{}: {} bytes left over", v.name, buf.len());
        assert!(!decoder.is_mid_frame(), "{}", v.name);
        assert_eq!(decoder.decode_eof(&mut buf), Ok(None), "{}", v.name);
    }
}

#[test]
fn valid_vectors_fed_one_byte_at_a_time_complete_at_last_byte() {
    let vectors = vectors();
    for v in vectors.valid {
        let payload = unhex(&v.name, &v.payload_hex);
        let frame = unhex(&v.name, &v.frame_hex);
        let mut decoder = FrameDecoder::new(vectors.max_frame);
        let mut buf = BytesMut::new();
        for (i, &byte) in frame.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let result = decoder
                .decode(&mut buf)
                .unwrap_or_else(|e| panic!("{}: byte {}: {e}", v.name, i + 1));
            if i + 1 < frame.len() {
                assert!(
                    result.is_none(),
                    "{}: frame complete early, at byte {}",
                    v.name,
                    i + 1
                );
                assert!(decoder.is_mid_frame(), "{}: byte {}", v.name, i + 1);
            } else {
                let decoded =
                    result.unwrap_or_else(|| panic!("{}: not complete at last byte", v.name));
                assert_bytes_eq(&v.name, &payload, &decoded);
            }
        }
        assert!(buf.is_empty() && !decoder.is_mid_frame(), "{}", v.name);
    }
}

#[test]
fn lowercase_vectors_decode_but_encoder_writes_uppercase() {
    let vectors = vectors();
    assert!(!vectors.valid_lowercase.is_empty());
    for v in vectors.valid_lowercase {
        let payload = unhex(&v.name, &v.payload_hex);
        let frame = unhex(&v.name, &v.frame_hex);
        for chunks in [vec![&frame[..]], frame.chunks(1).collect()] {
            let (payloads, error) = decode_chunks(vectors.max_frame, &chunks);
            assert_eq!(error, None, "{}", v.name);
            assert_payloads_eq(&v.name, std::slice::from_ref(&payload), &payloads);
        }

        let mut encoded = BytesMut::new();
        encode_frame(&payload, &mut encoded);
        assert_ne!(
            &encoded[..],
            &frame[..],
            "{}: encoder reproduced a lower-case header",
            v.name
        );
        let colon = frame
            .iter()
            .position(|&b| b == b':')
            .expect("vector has a header");
        assert_bytes_eq(
            &v.name,
            &frame[..colon].to_ascii_uppercase(),
            &encoded[..colon],
        );
        assert_bytes_eq(&v.name, &frame[colon..], &encoded[colon..]);
    }
}

#[test]
fn invalid_framing_vectors_fail_exactly_at_detect_at_byte() {
    let vectors = vectors();
    let mut checked = 0;
    for v in vectors.invalid.iter().filter(|v| v.kind == "framing") {
        let frame = unhex(&v.name, &v.frame_hex);
        let max_frame = v.max_frame.unwrap_or(vectors.max_frame);
        let expected = expected_error(v, &frame, max_frame);
        let mut decoder = FrameDecoder::new(max_frame);
        let mut buf = BytesMut::new();
        for (i, &byte) in frame[..v.detect_at].iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let fed = i + 1;
            let result = decoder.decode(&mut buf);
            if fed < v.detect_at {
                assert_eq!(
                    result,
                    Ok(None),
                    "{}: must not fail before byte {}, fed {fed}",
                    v.name,
                    v.detect_at
                );
            } else {
                assert_eq!(
                    result,
                    Err(expected.clone()),
                    "{}: at byte {fed} ({})",
                    v.name,
                    v.reason
                );
            }
        }

        // All bytes at once: the same error, whatever follows.
        let (payloads, error) = decode_chunks(max_frame, &[&frame]);
        assert!(payloads.is_empty(), "{}", v.name);
        assert_eq!(error, Some(expected), "{}: whole input", v.name);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} framing vectors");
}

#[test]
fn truncated_vectors_wait_for_more_then_fail_at_eof() {
    let vectors = vectors();
    let mut checked = 0;
    for v in vectors.invalid.iter().filter(|v| v.kind == "truncated") {
        let frame = unhex(&v.name, &v.frame_hex);
        assert_eq!(
            frame.len(),
            v.detect_at,
            "{}: truncated vectors end at detect_at",
            v.name
        );
        let mut decoder = FrameDecoder::new(v.max_frame.unwrap_or(vectors.max_frame));
        let mut buf = BytesMut::new();
        for (i, &byte) in frame.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            assert_eq!(
                decoder.decode(&mut buf),
                Ok(None),
                "{}: byte {}",
                v.name,
                i + 1
            );
        }
        assert!(decoder.is_mid_frame(), "{}", v.name);
        assert_eq!(
            decoder.decode_eof(&mut buf),
            Err(FrameError::Truncated),
            "{}",
            v.name
        );

        let (payloads, error) = decode_chunks(vectors.max_frame, &[&frame]);
        assert!(payloads.is_empty(), "{}", v.name);
        assert_eq!(
            error,
            Some(FrameError::Truncated),
            "{}: whole input",
            v.name
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} truncated vectors");
}

#[test]
fn stream_vectors_decode_identically_under_every_split() {
    let vectors = vectors();
    for s in vectors.streams {
        let stream = unhex(&s.name, &s.stream_hex);
        let expected: Vec<Vec<u8>> = s.payloads_hex.iter().map(|p| unhex(&s.name, p)).collect();
        let check = |how: &str, chunks: &[&[u8]]| {
            let (payloads, error) = decode_chunks(vectors.max_frame, chunks);
            let context = format!("{} ({how})", s.name);
            assert_payloads_eq(&context, &expected, &payloads);
            if s.error_after {
                assert!(
                    matches!(error, Some(ref e) if *e != FrameError::Truncated),
                    "{context}: expected a framing error after the payloads, got {error:?}"
                );
            } else {
                assert_eq!(error, None, "{context}");
            }
        };
        check("whole", &[&stream]);
        check("one byte at a time", &stream.chunks(1).collect::<Vec<_>>());
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            check(&format!("split at {split}"), &[a, b]);
        }
    }
}

#[test]
fn huge_header_fails_before_payload_without_growing_buffer() {
    let frame = b"FFFFFFFFFFFF:";
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::with_capacity(16);
    let initial_capacity = buf.capacity();
    for (i, &byte) in frame.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        match decoder.decode(&mut buf) {
            Ok(None) => assert!(i + 1 < 7, "accepted 7 digits of F, over 16 MiB"),
            Err(e) => {
                assert_eq!(i + 1, 7, "failed at byte {}", i + 1);
                assert_eq!(
                    e,
                    FrameError::TooLong {
                        max: DEFAULT_MAX_FRAME
                    }
                );
                break;
            }
            Ok(Some(_)) => panic!("decoded a frame from a header alone"),
        }
    }
    assert_eq!(
        buf.capacity(),
        initial_capacity,
        "buffer grew while reading a header"
    );
}

#[test]
fn header_under_limit_reserves_bounded_capacity_not_announced_length() {
    // 0xFFFFFF = 16 MiB - 1: allowed, but nothing of it has arrived yet.
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::from(&b"FFFFFF:"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(decoder.is_mid_frame());
    assert!(
        buf.capacity() <= 256 * 1024,
        "reserved {} bytes for a bare header",
        buf.capacity()
    );
}

#[test]
fn handshake_limit_rejects_header_81_at_second_byte_and_accepts_80() {
    let mut decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
    let mut buf = BytesMut::from(&b"8"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"1");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(FrameError::TooLong { max: 128 })
    );

    let mut decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
    let mut buf = BytesMut::new();
    encode_frame(&[7; 128], &mut buf);
    let payload = decoder
        .decode(&mut buf)
        .expect("128 bytes is within the limit");
    assert_eq!(payload.as_deref(), Some(&[7u8; 128][..]));
}

#[test]
fn length_equal_to_limit_is_accepted_and_one_more_is_rejected() {
    let mut buf = BytesMut::new();
    encode_frame(&[1; 0x100], &mut buf);
    let decoded = FrameDecoder::new(0x100)
        .decode(&mut buf)
        .expect("at the limit");
    assert_eq!(decoded.map(|p| p.len()), Some(0x100));

    let mut buf = BytesMut::from(&b"101:"[..]);
    assert_eq!(
        FrameDecoder::new(0x100).decode(&mut buf),
        Err(FrameError::TooLong { max: 0x100 })
    );
}

#[test]
fn raised_limit_after_handshake_frame_applies_to_next_frame() {
    let mut stream = BytesMut::new();
    encode_frame(&[1; 128], &mut stream);
    encode_frame(&[2; 1000], &mut stream);
    let mut decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
    assert_eq!(decoder.max_frame(), HANDSHAKE_MAX_FRAME);
    let handshake = decoder.decode(&mut stream).expect("handshake frame");
    assert_eq!(handshake.map(|p| p.len()), Some(128));
    decoder.set_max_frame(DEFAULT_MAX_FRAME);
    let message = decoder
        .decode(&mut stream)
        .expect("message frame under the raised limit");
    assert_eq!(message.map(|p| p.len()), Some(1000));
}

#[test]
fn frame_split_across_reads_decodes_once() {
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::from(&b"18:My very"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b" excellent mother");
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n");
    let payload = decoder.decode(&mut buf).expect("valid frame");
    assert_eq!(payload.as_deref(), Some(&b"My very excellent mother"[..]));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.decode_eof(&mut buf), Ok(None));
}

#[test]
fn payload_is_split_off_input_buffer_without_copying() {
    let mut buf = BytesMut::from(&b"3:abc\n1:x\n"[..]);
    let start = buf.as_ptr();
    let payload = FrameDecoder::default()
        .decode(&mut buf)
        .expect("valid")
        .expect("complete");
    assert_eq!(&payload[..], b"abc");
    assert_eq!(
        payload.as_ptr(),
        start.wrapping_add(2),
        "payload was copied"
    );
    assert_eq!(&buf[..], b"1:x\n");
}

#[test]
fn decode_eof_drains_complete_frames_then_reports_partial_one() {
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::from(&b"1:a\n1:b\n2:c"[..]);
    assert_eq!(
        decoder.decode_eof(&mut buf).expect("a").as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(
        decoder.decode_eof(&mut buf).expect("b").as_deref(),
        Some(&b"b"[..])
    );
    assert_eq!(decoder.decode_eof(&mut buf), Err(FrameError::Truncated));
}

#[test]
fn frame_errors_display_offending_byte_and_limit() {
    let cases = [
        (
            FrameError::EmptyHeader,
            "frame header is empty (':' before any hex digit)",
        ),
        (
            FrameError::InvalidHeaderByte(b'z'),
            "frame header byte 0x7a ('z') is not a hex digit",
        ),
        (
            FrameError::InvalidHeaderByte(0xef),
            "frame header byte 0xef is not a hex digit",
        ),
        (
            FrameError::LeadingZero,
            "frame header has a leading zero (only the header \"0\" may start with '0')",
        ),
        (
            FrameError::TooLong { max: 128 },
            "frame length exceeds the maximum of 128 bytes",
        ),
        (
            FrameError::BadTerminator(b','),
            "frame terminator is 0x2c (',') instead of '\\n'",
        ),
        (
            FrameError::BadTerminator(b'\r'),
            "frame terminator is 0x0d ('\\r') instead of '\\n'",
        ),
        (FrameError::Truncated, "stream ended inside a frame"),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}

proptest! {
    #[test]
    fn any_payloads_under_any_splits_decode_to_same_payloads(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = BytesMut::new();
        for p in &payloads {
            encode_frame(p, &mut stream);
        }
        prop_assert_eq!(stream.len(), payloads.iter().map(|p| frame_len(p.len())).sum::<usize>());
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for to in points.into_iter().chain([stream.len()]) {
            chunks.push(&stream[from..to]);
            from = to;
        }
        let (decoded, error) = decode_chunks(DEFAULT_MAX_FRAME, &chunks);
        prop_assert_eq!(error, None);
        assert_payloads_eq("proptest", &payloads, &decoded);
    }

    #[test]
    fn header_is_shortest_uppercase_hex_of_any_length(len in any::<usize>()) {
        let mut header = BytesMut::new();
        encode_header(len, &mut header);
        let expected = format!("{len:X}:");
        prop_assert_eq!(&header[..], expected.as_bytes());
    }

    #[test]
    fn frame_len_counts_header_colon_payload_and_terminator(len in 0..=isize::MAX as usize) {
        prop_assert_eq!(frame_len(len), format!("{len:X}").len() + 1 + len + 1);
    }

    #[test]
    fn arbitrary_bytes_decode_consistently_without_panic(data in prop::collection::vec(any::<u8>(), 0..64)) {
        mtgnet_proto::fuzzing::frame_decoder(&data);
    }

    #[test]
    fn any_hex_header_is_judged_like_reference_parser(
        digits in "[0-9a-fA-F]{0,20}",
        max_frame in prop_oneof![0usize..0x1000, any::<usize>()],
    ) {
        let expected = if digits.is_empty() {
            Err(FrameError::EmptyHeader)
        } else if digits.len() > 1 && digits.starts_with('0') {
            Err(FrameError::LeadingZero)
        } else if u128::from_str_radix(&digits, 16).expect("hex") > max_frame as u128 {
            Err(FrameError::TooLong { max: max_frame })
        } else {
            Ok(None)
        };
        let mut buf = BytesMut::from(format!("{digits}:").as_bytes());
        let mut decoder = FrameDecoder::new(max_frame);
        let result = decoder.decode(&mut buf);
        prop_assert_eq!(&result, &expected, "header {:?}", digits);
        if result.is_ok() {
            // Header consumed; waiting for the payload and terminator.
            prop_assert!(decoder.is_mid_frame() && buf.is_empty());
            prop_assert!(buf.capacity() <= 256 * 1024, "reserved {}", buf.capacity());
        }
    }
}
