//! netstring+ framing: the byte layer under every MTGNet message.
//!
//! A frame is `HEADER ':' PAYLOAD '\n'`, where `HEADER` is the payload length
//! in hexadecimal ASCII, shortest form (no leading `0` except the lone `0` of
//! the empty payload), and the terminator is exactly one `\n`:
//!
//! ```text
//!   payload "My very excellent mother" (24 bytes)
//!   frame   "18:My very excellent mother\n"
//!            ^^ ^                       ^^
//!            |  ':' ends the header     '\n' ends the frame
//!            0x18 = 24, upper-case hex, no leading zero
//! ```
//!
//! # Strict on input, canonical on output
//!
//! [`encode_frame`] and [`encode_header`] always write the canonical form
//! (upper-case digits, shortest header). [`FrameDecoder`] accepts upper-,
//! lower- and mixed-case digits, as the specification asks, but rejects
//! everything else the deployed Lisp and PHP readers let through: leading
//! zeros, an empty header, any other byte in the header, a terminator other
//! than `\n`, and lengths above its configured maximum. Every deployed writer
//! emits canonical headers, so the strictness costs no interoperability, and
//! a malformed header is reported at the very byte that makes it malformed.
//!
//! # Why the maximum frame size matters
//!
//! The header announces how many bytes the peer is about to send. A reader
//! that trusts it, allocates the announced length, or waits for it before
//! checking it, lets any peer make it reserve gigabytes with a dozen bytes
//! (`FFFFFFFFFFFF:`), or hold a connection open forever. The decoder
//! therefore checks the running length after **every** header digit and fails
//! as soon as it exceeds [`FrameDecoder::max_frame`], long before the `:` or
//! any payload byte, with overflow-checked arithmetic so that any number of
//! digits is safe. Use [`DEFAULT_MAX_FRAME`] (16 MiB) for messages and
//! [`HANDSHAKE_MAX_FRAME`] (128) while reading a handshake frame. Running
//! without a meaningful limit (`usize::MAX`) is a denial-of-service risk.
//!
//! # Decoding is sans-IO and resumable
//!
//! The decoder never reads a socket. The caller appends whatever bytes arrive
//! to a [`BytesMut`] and calls [`FrameDecoder::decode`] until it returns
//! `Ok(None)`. Header bytes are consumed as they arrive and their value is
//! kept in the decoder, so no byte is ever scanned twice; payload bytes stay
//! in the buffer until the whole frame is there and are then handed out with
//! [`BytesMut::split_to`], without copying. The split of the input into reads
//! never changes the result.

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};

/// Default maximum payload length accepted by [`FrameDecoder`]: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Maximum payload length while reading a handshake frame: 128 bytes.
///
/// A handshake payload is exactly 128 bytes (header `80`), so any longer
/// header fails at its second digit.
pub const HANDSHAKE_MAX_FRAME: usize = 128;

/// The most capacity the decoder reserves in the input buffer at once for a
/// payload that has not fully arrived.
///
/// Reserving the whole announced length (up to `max_frame`) as soon as the
/// header is read would let a peer make every connection allocate
/// `max_frame` bytes by sending a header alone. Reserving in bounded steps
/// means memory grows only with bytes the peer actually sends, while large
/// frames still avoid a reallocation per read.
const RESERVE_STEP: usize = 64 * 1024;

/// Where the decoder is inside the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    /// Reading header digits. `len` is the value of the `digits` hex digits
    /// consumed so far; invariant: `len <= max_frame` at the time each digit
    /// was read, and `digits == 0` implies `len == 0`.
    Head { len: usize, digits: usize },
    /// The header (including `:`) has been consumed; the payload of this
    /// length and then the terminator are expected at the front of the
    /// buffer. Nothing of them is consumed until the whole frame is there.
    Data(usize),
}

impl DecodeState {
    const START: Self = Self::Head { len: 0, digits: 0 };
}

/// Resumable, strict netstring+ decoder with a maximum frame size.
///
/// Feed it a buffer that the caller appends received bytes to; each call to
/// [`decode`](Self::decode) removes at most one frame from the front of the
/// buffer. Call it in a loop until it returns `Ok(None)`, then read more
/// bytes. At end of input, use [`decode_eof`](Self::decode_eof) so that a
/// partial frame is reported as [`FrameError::Truncated`].
///
/// Every [`FrameError`] is connection-fatal: the stream has lost its framing.
/// After an error the decoder is back at the start-of-frame state (so it may
/// be reused on a fresh stream), and the content of the buffer is
/// unspecified.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use mtgnet_proto::framing::{FrameDecoder, HANDSHAKE_MAX_FRAME};
///
/// let mut decoder = FrameDecoder::default();
/// let mut buf = BytesMut::new();
///
/// // Two frames, split across reads in the middle of the first header.
/// buf.extend_from_slice(b"1");
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// assert!(decoder.is_mid_frame());
/// buf.extend_from_slice(b"8:My very excellent mother\n0:\n");
/// assert_eq!(&decoder.decode(&mut buf)?.unwrap()[..], b"My very excellent mother");
/// assert_eq!(&decoder.decode(&mut buf)?.unwrap()[..], b"");
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// assert!(!decoder.is_mid_frame());
///
/// // While reading a handshake frame the limit is 128 bytes: "81" fails at its "1".
/// decoder.set_max_frame(HANDSHAKE_MAX_FRAME);
/// buf.extend_from_slice(b"81");
/// assert!(decoder.decode(&mut buf).is_err());
/// # Ok::<(), mtgnet_proto::framing::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: DecodeState,
    max_frame: usize,
}

impl Default for FrameDecoder {
    /// A decoder with the [`DEFAULT_MAX_FRAME`] limit (16 MiB).
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// Creates a decoder that rejects payloads longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            state: DecodeState::START,
            max_frame,
        }
    }

    /// The largest payload length this decoder accepts, in bytes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Changes the largest payload length accepted.
    ///
    /// Called between frames (the normal case: after the handshake frame has
    /// been decoded), the new limit governs the whole next header. Called in
    /// the middle of a header, it applies to the digits decoded from now on
    /// and to the `:` that ends the header. A frame whose header is already
    /// complete keeps the length it announced.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// Returns `true` when some bytes of a frame have been consumed and the
    /// frame is not complete yet (a header partly read, or a payload being
    /// waited for).
    ///
    /// After [`decode`](Self::decode) returned `Ok(None)`, this tells
    /// whether the bytes received so far end inside a frame.
    pub fn is_mid_frame(&self) -> bool {
        self.state != DecodeState::START
    }

    /// Decodes the next frame from the front of `src`, consuming its bytes.
    ///
    /// Returns `Ok(Some(payload))` for a complete frame (the payload is split
    /// off `src` without copying), or `Ok(None)` when more bytes are needed;
    /// header bytes are consumed even then, and their value kept. When a
    /// payload is pending, capacity for it is reserved in `src` in steps of
    /// at most 64 KiB, never the whole announced length at once.
    ///
    /// # Errors
    ///
    /// A [`FrameError`] (never [`FrameError::Truncated`]) as soon as the
    /// bytes in `src` make the frame invalid: an empty header, a byte in the
    /// header that is not a hex digit, a leading zero, a length above
    /// [`max_frame`](Self::max_frame) (detected at the digit that exceeds
    /// it), or a terminator other than `\n`. The connection must be dropped.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let result = self.decode_inner(src);
        if result.is_err() {
            self.state = DecodeState::START;
        }
        result
    }

    /// Like [`decode`](Self::decode), for when the input has ended: there
    /// will be no bytes after those in `src`.
    ///
    /// Returns `Ok(None)` only when the input ends cleanly between frames.
    /// Call it in a loop like `decode` to drain every complete frame.
    ///
    /// # Errors
    ///
    /// Those of [`decode`](Self::decode), and [`FrameError::Truncated`] when
    /// the input ends inside a frame.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if self.is_mid_frame() || !src.is_empty() => {
                self.state = DecodeState::START;
                Err(FrameError::Truncated)
            }
            None => Ok(None),
        }
    }

    fn decode_inner(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let len = match self.state {
            DecodeState::Head { len, digits } => match self.decode_head(src, len, digits)? {
                Some(len) => len,
                None => return Ok(None),
            },
            DecodeState::Data(len) => len,
        };
        // `src.len() <= len` rather than `src.len() < len + 1`: `len` may be
        // `usize::MAX` when the limit is.
        if src.len() <= len {
            let missing = len - src.len() + 1;
            src.reserve(missing.min(RESERVE_STEP));
            return Ok(None);
        }
        let terminator = src[len];
        if terminator != b'\n' {
            return Err(FrameError::BadTerminator(terminator));
        }
        let payload = src.split_to(len);
        src.advance(1);
        self.state = DecodeState::START;
        Ok(Some(payload))
    }

    /// Consumes header bytes from `src`, starting from the partial header
    /// `(len, digits)`. Returns the payload length once `:` is consumed
    /// (state is then `Data`), or `None` when `src` ran out (state saved).
    fn decode_head(
        &mut self,
        src: &mut BytesMut,
        mut len: usize,
        mut digits: usize,
    ) -> Result<Option<usize>, FrameError> {
        for (i, &byte) in src.iter().enumerate() {
            if byte == b':' {
                if digits == 0 {
                    return Err(FrameError::EmptyHeader);
                }
                if len > self.max_frame {
                    return Err(FrameError::TooLong {
                        max: self.max_frame,
                    });
                }
                src.advance(i + 1);
                self.state = DecodeState::Data(len);
                return Ok(Some(len));
            }
            let Some(value) = hex_value(byte) else {
                return Err(FrameError::InvalidHeaderByte(byte));
            };
            if digits == 1 && len == 0 {
                return Err(FrameError::LeadingZero);
            }
            len = len
                .checked_mul(16)
                .and_then(|l| l.checked_add(usize::from(value)))
                .filter(|&l| l <= self.max_frame)
                .ok_or(FrameError::TooLong {
                    max: self.max_frame,
                })?;
            digits += 1;
        }
        src.clear();
        self.state = DecodeState::Head { len, digits };
        Ok(None)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// Number of hex digits in the shortest header for `payload_len`.
fn header_digits(payload_len: usize) -> usize {
    if payload_len == 0 {
        1
    } else {
        (usize::BITS - payload_len.leading_zeros()).div_ceil(4) as usize
    }
}

/// Appends the header of a frame with a `payload_len`-byte payload to `dst`:
/// the length in shortest upper-case hex, then `:`.
///
/// For callers that write the payload in place; they must then append
/// exactly `payload_len` bytes and a `\n`.
///
/// # Example
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use mtgnet_proto::framing::encode_header;
///
/// let mut dst = BytesMut::new();
/// encode_header(4096, &mut dst);
/// assert_eq!(&dst[..], b"1000:");
/// dst.put_bytes(b'x', 4096);
/// dst.put_u8(b'\n');
/// ```
pub fn encode_header(payload_len: usize, dst: &mut BytesMut) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let n = header_digits(payload_len);
    let mut header = [0u8; (usize::BITS / 4) as usize + 1];
    for (i, slot) in header[..n].iter_mut().enumerate() {
        let shift = 4 * (n - 1 - i);
        *slot = DIGITS[(payload_len >> shift) & 0xF];
    }
    header[n] = b':';
    dst.extend_from_slice(&header[..=n]);
}

/// Appends the frame carrying `payload` to `dst`: canonical header
/// (upper-case hex, no leading zero), `:`, the payload, `\n`.
///
/// The encoder does not enforce a maximum; the receiving peer does.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use mtgnet_proto::framing::encode_frame;
///
/// let mut dst = BytesMut::new();
/// encode_frame(b"My very excellent mother", &mut dst);
/// encode_frame(b"", &mut dst);
/// assert_eq!(&dst[..], b"18:My very excellent mother\n0:\n");
/// ```
pub fn encode_frame(payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(frame_len(payload.len()));
    encode_header(payload.len(), dst);
    dst.extend_from_slice(payload);
    dst.put_u8(b'\n');
}

/// Total encoded size of a frame with a `payload_len`-byte payload: header,
/// `:`, payload and `\n`.
///
/// # Example
///
/// ```
/// use mtgnet_proto::framing::frame_len;
///
/// assert_eq!(frame_len(0), 3); // "0:\n"
/// assert_eq!(frame_len(128), 132); // "80:" + 128 bytes + "\n"
/// ```
pub fn frame_len(payload_len: usize) -> usize {
    header_digits(payload_len) + 1 + payload_len + 1
}

/// Why a byte stream is not valid netstring+.
///
/// All variants but [`Truncated`](Self::Truncated) mean the peer sent bytes
/// that break the framing; `Truncated` means the stream ended inside a frame.
/// Either way the connection cannot continue.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use mtgnet_proto::framing::{FrameDecoder, FrameError};
///
/// let mut buf = BytesMut::from(&b"zz:"[..]);
/// let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
/// assert_eq!(err, FrameError::InvalidHeaderByte(b'z'));
/// assert_eq!(err.to_string(), "frame header byte 0x7a ('z') is not a hex digit");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame starts with `:`: the header has no digit.
    #[error("frame header is empty (':' before any hex digit)")]
    EmptyHeader,
    /// A header byte is neither a hex digit nor the `:` ending the header.
    #[error("frame header byte {} is not a hex digit", ByteDisplay(*.0))]
    InvalidHeaderByte(u8),
    /// The header starts with `0` and goes on (only the lone `0` of an empty
    /// payload may start with `0`).
    #[error("frame header has a leading zero (only the header \"0\" may start with '0')")]
    LeadingZero,
    /// The announced length exceeds the reader's maximum frame size.
    #[error("frame length exceeds the maximum of {max} bytes")]
    TooLong {
        /// The limit in force, in bytes.
        max: usize,
    },
    /// The byte after the payload is not `\n`.
    #[error("frame terminator is {} instead of '\\n'", ByteDisplay(*.0))]
    BadTerminator(u8),
    /// The input ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// Shows a byte as `0x7a ('z')`, or `0xef` when it is not printable ASCII.
struct ByteDisplay(u8);

impl fmt::Display for ByteDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)?;
        if self.0.is_ascii() {
            write!(f, " ('{}')", self.0.escape_ascii())?;
        }
        Ok(())
    }
}

/// Fuzzing entry point: decodes `data` whole and split in two, and panics if
/// the two runs disagree or a decoded payload does not round-trip.
///
/// The first byte chooses the split point and the maximum frame size (so
/// that [`FrameError::TooLong`] is reachable with short inputs). Reached
/// through `mtgnet_proto::fuzzing::frame_decoder`.
pub(crate) fn fuzz_decode(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max_frame = 1usize << (control % 24);
    let split = usize::from(control) * stream.len() / 256;

    let whole = feed_chunks(max_frame, &[stream]);
    let (head, tail) = stream.split_at(split);
    let split_run = feed_chunks(max_frame, &[head, tail]);
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    let bytewise_run = feed_chunks(max_frame, &bytewise);
    assert_eq!(whole, split_run, "split at {split} changed the result");
    assert_eq!(whole, bytewise_run, "one byte at a time changed the result");

    let (payloads, _) = whole;
    for payload in payloads {
        assert!(payload.len() <= max_frame);
        let mut encoded = BytesMut::new();
        encode_frame(&payload, &mut encoded);
        assert_eq!(encoded.len(), frame_len(payload.len()));
        let mut decoder = FrameDecoder::new(max_frame);
        let decoded = decoder.decode(&mut encoded);
        assert_eq!(decoded, Ok(Some(BytesMut::from(&payload[..]))));
        assert!(encoded.is_empty() && !decoder.is_mid_frame());
    }
}

/// Feeds `chunks` one after the other, then signals end of input; returns
/// the payloads decoded and the error that ended the stream, if any
/// (`Truncated` included). For fuzzing and tests; not part of the API
/// (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn decode_chunks(max_frame: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<FrameError>) {
    feed_chunks(max_frame, chunks)
}

/// Decodes `chunks` fed one after the other (what `decode_chunks` does),
/// for the fuzz entry point.
fn feed_chunks(max_frame: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = BytesMut::new();
    let mut payloads = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(payload)) => payloads.push(payload.to_vec()),
                Ok(None) => break,
                Err(e) => return (payloads, Some(e)),
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(payload)) => payloads.push(payload.to_vec()),
            Ok(None) => return (payloads, None),
            Err(e) => return (payloads, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(decoder: &mut FrameDecoder, buf: &mut BytesMut, bytes: &[u8]) -> Option<BytesMut> {
        buf.extend_from_slice(bytes);
        decoder.decode(buf).expect("valid bytes")
    }

    #[test]
    fn header_digits_are_consumed_and_remembered_across_calls() {
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        assert_eq!(feed(&mut decoder, &mut buf, b"1"), None);
        assert_eq!(decoder.state, DecodeState::Head { len: 1, digits: 1 });
        assert!(
            buf.is_empty(),
            "header bytes must be consumed, not rescanned"
        );
        assert_eq!(feed(&mut decoder, &mut buf, b"a"), None);
        assert_eq!(
            decoder.state,
            DecodeState::Head {
                len: 0x1a,
                digits: 2
            }
        );
        assert_eq!(feed(&mut decoder, &mut buf, b":"), None);
        assert_eq!(decoder.state, DecodeState::Data(0x1a));
        assert!(decoder.is_mid_frame());
    }

    #[test]
    fn payload_stays_buffered_until_terminator_arrives() {
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        assert_eq!(feed(&mut decoder, &mut buf, b"3:abc"), None);
        assert_eq!(decoder.state, DecodeState::Data(3));
        assert_eq!(&buf[..], b"abc");
        let payload = feed(&mut decoder, &mut buf, b"\n").expect("complete frame");
        assert_eq!(&payload[..], b"abc");
        assert_eq!(decoder.state, DecodeState::START);
        assert!(buf.is_empty());
    }

    #[test]
    fn empty_input_at_frame_start_needs_more_and_is_not_mid_frame() {
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(!decoder.is_mid_frame());
        assert_eq!(decoder.decode_eof(&mut buf), Ok(None));
    }

    #[test]
    fn lone_zero_then_colon_is_empty_frame() {
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        assert_eq!(feed(&mut decoder, &mut buf, b"0"), None);
        assert_eq!(decoder.state, DecodeState::Head { len: 0, digits: 1 });
        assert_eq!(
            feed(&mut decoder, &mut buf, b":\n").as_deref(),
            Some(&b""[..])
        );
    }

    #[test]
    fn zero_then_non_hex_is_invalid_byte_not_leading_zero() {
        let mut buf = BytesMut::from(&b"0x"[..]);
        assert_eq!(
            FrameDecoder::default().decode(&mut buf),
            Err(FrameError::InvalidHeaderByte(b'x'))
        );
    }

    #[test]
    fn error_resets_decoder_to_frame_start() {
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::from(&b"3:abcX"[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::BadTerminator(b'X'))
        );
        assert_eq!(decoder.state, DecodeState::START);
        let mut fresh = BytesMut::from(&b"1:a\n"[..]);
        assert_eq!(
            decoder.decode(&mut fresh).expect("valid").as_deref(),
            Some(&b"a"[..])
        );
    }

    #[test]
    fn limit_at_usize_max_does_not_overflow() {
        let mut decoder = FrameDecoder::new(usize::MAX);
        let mut buf = BytesMut::from(&b"FFFFFFFFFFFFFFFF"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(
            decoder.state,
            DecodeState::Head {
                len: usize::MAX,
                digits: 16
            }
        );
        buf.extend_from_slice(b"F");
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::TooLong { max: usize::MAX })
        );
        // A header equal to usize::MAX is accepted; waiting for its payload
        // must not overflow either.
        let mut buf = BytesMut::from(&b"FFFFFFFFFFFFFFFF:ab"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(
            buf.capacity() <= RESERVE_STEP + 64,
            "capacity {}",
            buf.capacity()
        );
    }

    #[test]
    fn lowered_limit_mid_header_applies_to_next_digit_and_colon() {
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::from(&b"10"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        decoder.set_max_frame(8);
        buf.extend_from_slice(b":");
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::TooLong { max: 8 })
        );
    }

    #[test]
    fn header_digits_match_shortest_hex() {
        for (len, digits) in [
            (0, 1),
            (1, 1),
            (15, 1),
            (16, 2),
            (255, 2),
            (256, 3),
            (usize::MAX, 16),
        ] {
            assert_eq!(header_digits(len), digits, "len {len:#x}");
            assert_eq!(header_digits(len), format!("{len:X}").len());
        }
    }

    #[test]
    fn byte_display_escapes_non_printable() {
        assert_eq!(
            FrameError::BadTerminator(b'\r').to_string(),
            "frame terminator is 0x0d ('\\r') instead of '\\n'"
        );
        assert_eq!(
            FrameError::InvalidHeaderByte(0xef).to_string(),
            "frame header byte 0xef is not a hex digit"
        );
    }

    #[test]
    fn fuzz_decode_accepts_valid_and_garbage_inputs() {
        fuzz_decode(b"");
        fuzz_decode(b"\x80");
        fuzz_decode(b"\x0518:My very excellent mother\n0:\n3:ab");
        fuzz_decode(b"\x03FFFFFFFFFFFF:");
        fuzz_decode(b"\xff3:abc,zz");
    }
}
