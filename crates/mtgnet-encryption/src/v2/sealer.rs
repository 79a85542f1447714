//! Sealing messages into records, written straight into the caller's frame
//! buffer.

use crate::error::SealError;

use super::record::{Flag, TransportKey, frame_header, frame_len};
use super::{MAX_CHUNK, RECORD_TAG_SIZE};

/// Length of a close record: flag (1) and tag (16).
const CLOSE_RECORD_LEN: usize = 1 + RECORD_TAG_SIZE;

/// The sending half of a [`Session`](super::Session): seals messages into
/// records, each a netstring+ frame, with this direction's key and counter.
///
/// A message of up to 65,518 bytes is one record; a longer one is split
/// into chunks of exactly 65,518 bytes and a last, shorter (or equally
/// full) one. Records are encrypted from the message straight into the
/// caller's frame buffer, in one pass and without an intermediate copy.
///
/// Sealing takes `&mut self` because every record uses up a counter value:
/// records must reach the peer in the order they were sealed. A caller that
/// seals from many tasks keeps the sealer behind a mutex and queues each
/// message's frames for writing before releasing it.
///
/// After [`close_framed_into`](Self::close_framed_into) nothing more may be
/// sealed.
///
/// ```
/// use mtgnet_encryption::v2::{MAX_CHUNK, Sealer};
///
/// // A message one byte longer than a record holds takes two frames.
/// let two_records = Sealer::framed_len(MAX_CHUNK + 1);
/// assert_eq!(two_records, "FFFF:".len() + 65_535 + 1 + "12:".len() + 18 + 1);
/// assert_eq!(Sealer::framed_len(0), "11:".len() + 17 + 1);
/// assert_eq!(Sealer::CLOSE_FRAMED_LEN, 21);
/// ```
#[derive(Debug)]
pub struct Sealer {
    key: TransportKey,
    closed: bool,
}

impl Sealer {
    /// Length of the frame [`close_framed_into`](Self::close_framed_into) writes.
    pub const CLOSE_FRAMED_LEN: usize = 3 + CLOSE_RECORD_LEN + 1;

    pub(crate) fn new(key: TransportKey) -> Sealer {
        Sealer { key, closed: false }
    }

    /// The total length of the frames that seal a message of `message_len`
    /// bytes.
    pub fn framed_len(message_len: usize) -> usize {
        let full = message_len / MAX_CHUNK;
        let rest = message_len % MAX_CHUNK;
        let full_len = full * frame_len(MAX_CHUNK + 1 + RECORD_TAG_SIZE);
        if rest == 0 && full > 0 {
            full_len
        } else {
            full_len + frame_len(rest + 1 + RECORD_TAG_SIZE)
        }
    }

    /// How many records a message of `message_len` bytes takes (at least one).
    pub fn record_count(message_len: usize) -> u64 {
        message_len.div_ceil(MAX_CHUNK).max(1) as u64
    }

    /// Seals `message` as one or more records, writing their netstring+
    /// frames into `out`, which must be exactly
    /// [`framed_len(message.len())`](Self::framed_len) bytes.
    ///
    /// On error nothing is written and no counter value is used.
    ///
    /// # Errors
    ///
    /// [`SealError::Closed`] after the close record;
    /// [`SealError::Exhausted`] if the counter would reach 2^64 - 1.
    ///
    /// # Panics
    ///
    /// Panics unless `out.len() == Sealer::framed_len(message.len())`.
    pub fn seal_framed_into(&mut self, message: &[u8], out: &mut [u8]) -> Result<(), SealError> {
        assert_eq!(
            out.len(),
            Sealer::framed_len(message.len()),
            "seal_framed_into: output must be exactly Sealer::framed_len(message.len()) bytes"
        );
        self.check(Sealer::record_count(message.len()))?;
        let mut rest = out;
        for (flag, chunk) in chunks(message) {
            let (frame, after) = rest.split_at_mut(frame_len(chunk.len() + 1 + RECORD_TAG_SIZE));
            self.seal_frame(flag as u8, chunk, frame);
            rest = after;
        }
        debug_assert!(rest.is_empty());
        Ok(())
    }

    /// [`seal_framed_into`](Self::seal_framed_into) into a new vector.
    ///
    /// # Errors
    ///
    /// As [`seal_framed_into`](Self::seal_framed_into).
    pub fn seal_framed(&mut self, message: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = vec![0u8; Sealer::framed_len(message.len())];
        self.seal_framed_into(message, &mut out)?;
        Ok(out)
    }

    /// Seals the close record into `out` as one frame of
    /// [`CLOSE_FRAMED_LEN`](Self::CLOSE_FRAMED_LEN) (21) bytes. After it the
    /// sealer refuses everything: send the frame, then shut the write half.
    ///
    /// # Errors
    ///
    /// [`SealError::Closed`] if the close record was already sealed;
    /// [`SealError::Exhausted`] as for messages.
    ///
    /// # Panics
    ///
    /// Panics unless `out.len() == Sealer::CLOSE_FRAMED_LEN`.
    pub fn close_framed_into(&mut self, out: &mut [u8]) -> Result<(), SealError> {
        assert_eq!(
            out.len(),
            Sealer::CLOSE_FRAMED_LEN,
            "close_framed_into: output must be exactly Sealer::CLOSE_FRAMED_LEN bytes"
        );
        self.check(1)?;
        self.seal_frame(Flag::Close as u8, &[], out);
        self.closed = true;
        Ok(())
    }

    /// [`close_framed_into`](Self::close_framed_into) into a new vector.
    ///
    /// # Errors
    ///
    /// As [`close_framed_into`](Self::close_framed_into).
    pub fn close_framed(&mut self) -> Result<Vec<u8>, SealError> {
        let mut out = vec![0u8; Sealer::CLOSE_FRAMED_LEN];
        self.close_framed_into(&mut out)?;
        Ok(out)
    }

    /// Whether the close record has been sealed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// How many records this sealer has sealed: the counter of the next one.
    pub fn records_sealed(&self) -> u64 {
        self.key.nonce()
    }

    /// Seals one record with any flag and any chunk, unframed, into `out`
    /// (exactly `data.len() + 17` bytes), for test vectors whose writer
    /// chose other chunk sizes than this one does. Production code seals
    /// whole messages with [`seal_framed_into`](Self::seal_framed_into),
    /// which keeps the writer rules (full non-final chunks, nothing after
    /// close).
    ///
    /// # Errors
    ///
    /// As [`seal_framed_into`](Self::seal_framed_into).
    ///
    /// # Panics
    ///
    /// Panics unless `out.len() == data.len() + 17` and `data` is at most
    /// 65,518 bytes.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn seal_record_into(
        &mut self,
        flag: Flag,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(), SealError> {
        self.check(1)?;
        self.seal_record(flag as u8, data, out);
        if flag == Flag::Close {
            self.closed = true;
        }
        Ok(())
    }

    /// Seals any plaintext as one record, flag byte included (or missing),
    /// ignoring every writer rule and the close state: for tests of what a
    /// receiver does with records a correct writer never makes.
    ///
    /// # Panics
    ///
    /// Panics if `plaintext` is longer than 65,519 bytes or the counter is
    /// exhausted.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn seal_plaintext(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.seal_raw(plaintext)
            .expect("a plaintext of at most 65,519 bytes and a counter left")
    }

    /// Seals any plaintext as one record, unless it is too long for one or
    /// the counter is exhausted. No writer rule is checked.
    pub(crate) fn seal_raw(&mut self, plaintext: &[u8]) -> Option<Vec<u8>> {
        if plaintext.len() > MAX_CHUNK + 1 || self.key.remaining() == 0 {
            return None;
        }
        let mut record = vec![0u8; plaintext.len() + RECORD_TAG_SIZE];
        self.key.seal_plaintext(plaintext, &mut record);
        Some(record)
    }

    #[cfg(feature = "test-hooks")]
    pub(crate) fn key_for_testing(&self) -> [u8; 32] {
        self.key.key_for_testing()
    }

    fn check(&self, records: u64) -> Result<(), SealError> {
        if self.closed {
            Err(SealError::Closed)
        } else if self.key.remaining() < records {
            Err(SealError::Exhausted)
        } else {
            Ok(())
        }
    }

    /// Writes `header || record || "\n"` into `frame`, which has exactly
    /// the room for it.
    fn seal_frame(&mut self, flag: u8, chunk: &[u8], frame: &mut [u8]) {
        let record_len = chunk.len() + 1 + RECORD_TAG_SIZE;
        let (header, header_len) = frame_header(record_len);
        let (head, rest) = frame.split_at_mut(header_len);
        head.copy_from_slice(&header[..header_len]);
        let (record, newline) = rest.split_at_mut(record_len);
        self.seal_record(flag, chunk, record);
        newline[0] = b'\n';
    }

    /// Writes `ciphertext(flag || chunk) || tag` into `record`, which is
    /// exactly `chunk.len() + 17` bytes, encrypting straight from the
    /// chunk: no intermediate copy.
    fn seal_record(&mut self, flag: u8, chunk: &[u8], record: &mut [u8]) {
        assert_eq!(
            record.len(),
            chunk.len() + 1 + RECORD_TAG_SIZE,
            "a record is exactly 17 bytes longer than its chunk"
        );
        assert!(
            chunk.len() <= MAX_CHUNK,
            "a chunk holds at most 65,518 bytes"
        );
        self.key.seal(flag, chunk, record);
    }
}

/// A message's chunks as the writer rule makes them: full chunks of
/// [`MAX_CHUNK`] bytes flagged [`Flag::More`], the last one flagged
/// [`Flag::Last`]; an empty message is one empty last chunk.
pub(crate) fn chunks(message: &[u8]) -> impl Iterator<Item = (Flag, &[u8])> {
    let count = message.len().div_ceil(MAX_CHUNK).max(1);
    (0..count).map(move |i| {
        let start = i * MAX_CHUNK;
        let end = (start + MAX_CHUNK).min(message.len());
        let flag = if i + 1 == count {
            Flag::Last
        } else {
            Flag::More
        };
        (flag, &message[start..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fill_every_record_but_the_last() {
        let lens = |n: usize| {
            let message = vec![0u8; n];
            chunks(&message)
                .map(|(f, c)| (f, c.len()))
                .collect::<Vec<_>>()
        };
        assert_eq!(lens(0), [(Flag::Last, 0)]);
        assert_eq!(lens(5), [(Flag::Last, 5)]);
        assert_eq!(lens(MAX_CHUNK), [(Flag::Last, MAX_CHUNK)]);
        assert_eq!(
            lens(MAX_CHUNK + 1),
            [(Flag::More, MAX_CHUNK), (Flag::Last, 1)]
        );
        assert_eq!(
            lens(2 * MAX_CHUNK),
            [(Flag::More, MAX_CHUNK), (Flag::Last, MAX_CHUNK)]
        );
    }

    #[test]
    fn framed_len_matches_the_chunks() {
        for n in [
            0,
            1,
            100,
            MAX_CHUNK - 1,
            MAX_CHUNK,
            MAX_CHUNK + 1,
            3 * MAX_CHUNK + 7,
        ] {
            let message = vec![0u8; n];
            let expected: usize = chunks(&message).map(|(_, c)| frame_len(c.len() + 17)).sum();
            assert_eq!(Sealer::framed_len(n), expected, "len {n}");
            assert_eq!(Sealer::record_count(n), chunks(&message).count() as u64);
        }
    }
}
