//! Sealing messages into records, written straight into the caller's frame
//! buffer: in one call, or in two steps (reserve the counters, then seal)
//! so that several messages can be sealed on several threads at once.

use std::fmt;
use std::sync::Arc;

use crate::error::SealError;

use super::record::{Flag, RecordKey, TransportKey, frame_header, frame_len};
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
/// Every record uses up a counter value, and records must reach the peer
/// in counter order. There are two ways to seal:
///
/// * [`seal_framed_into`](Self::seal_framed_into) takes the counters and
///   seals in one call through `&mut self`. A caller that seals from many
///   tasks keeps the sealer behind a mutex and queues each message's frames
///   for writing before releasing it, so messages are sealed one at a time.
/// * [`reserve`](Self::reserve) only takes the counters of one message (cheap:
///   do it under the lock) and returns a [`Reservation`], which seals that
///   message through a shared, read-only key (expensive: do it outside the
///   lock, on any thread, beside other reservations). The caller must then
///   hand the frames to the socket in the order of the reservations
///   ([`Reservation::first_counter`]), whatever order they were sealed in.
///
/// Either way a counter value is never used twice, and the bytes of a
/// message are the same.
///
/// After [`close_framed_into`](Self::close_framed_into) nothing more may be
/// sealed or reserved.
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
    /// Read-only key material, shared with the reservations not yet sealed.
    key: Arc<RecordKey>,
    /// The counter of the next record: every lower value has been used,
    /// sealed or reserved. Noise reserves `u64::MAX`, so the key is
    /// exhausted when this reaches it.
    next: u64,
    closed: bool,
}

impl Sealer {
    /// Length of the frame [`close_framed_into`](Self::close_framed_into) writes.
    pub const CLOSE_FRAMED_LEN: usize = 3 + CLOSE_RECORD_LEN + 1;

    pub(crate) fn new(key: TransportKey) -> Sealer {
        let (key, next) = key.into_parts();
        Sealer {
            key: Arc::new(key),
            next,
            closed: false,
        }
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
        let first = self.take(Sealer::record_count(message.len()))?;
        seal_message_into(&self.key, first, message, out);
        Ok(())
    }

    /// [`seal_framed_into`](Self::seal_framed_into) into a new vector.
    ///
    /// # Errors
    ///
    /// As [`seal_framed_into`](Self::seal_framed_into).
    pub fn seal_framed(&mut self, message: &[u8]) -> Result<Vec<u8>, SealError> {
        let first = self.take(Sealer::record_count(message.len()))?;
        let mut out = Vec::with_capacity(Sealer::framed_len(message.len()));
        seal_message_append(&self.key, first, message, &mut out);
        Ok(out)
    }

    /// Takes the counters of a message of `message_len` bytes, to be sealed
    /// later by the returned [`Reservation`], without `&mut` access to the
    /// sealer: on another thread, beside other reservations.
    ///
    /// The reservation's records take the next
    /// [`record_count(message_len)`](Self::record_count) counter values;
    /// the next reservation (or message, or close record) starts after
    /// them. The caller must write the frames of reservations in the order
    /// they were made.
    ///
    /// On error no counter value is used.
    ///
    /// # Errors
    ///
    /// As [`seal_framed_into`](Self::seal_framed_into):
    /// [`SealError::Closed`] after the close record;
    /// [`SealError::Exhausted`] if the counter would reach 2^64 - 1.
    ///
    /// ```
    /// use std::sync::Mutex;
    ///
    /// use mtgnet_encryption::{AuthorizedKeys, IdentitySecret};
    /// use mtgnet_encryption::v2::{Initiator, NoiseIdentity, Opened, Responder, Sealer};
    ///
    /// # let server = NoiseIdentity::new(&IdentitySecret::generate());
    /// # let client = NoiseIdentity::new(&IdentitySecret::generate());
    /// # let initiator = Initiator::new(&client, AuthorizedKeys::any());
    /// # let responder = Responder::new(&server, AuthorizedKeys::any(), initiator.hello())?;
    /// # let (message3, client_session) = initiator.finish(responder.response())?;
    /// # let server_session = responder.finish(&message3)?;
    /// let (sealer, _) = client_session.split();
    /// let (_, mut opener) = server_session.split();
    /// let sealer = Mutex::new(sealer);
    ///
    /// // Counters are taken in order under the lock, ...
    /// let first = sealer.lock().unwrap().reserve(b"[1]".len())?;
    /// let second = sealer.lock().unwrap().reserve(b"[2]".len())?;
    /// assert_eq!((first.first_counter(), second.first_counter()), (0, 1));
    ///
    /// // ... the messages are sealed outside it, in any order, on any thread ...
    /// let late = std::thread::spawn(move || {
    ///     let mut frame = Vec::with_capacity(second.framed_len());
    ///     second.seal_framed_append(b"[2]", &mut frame);
    ///     frame
    /// });
    /// let mut frames = vec![0u8; first.framed_len()];
    /// first.seal_framed_into(b"[1]", &mut frames);
    /// frames.extend(late.join().unwrap());
    ///
    /// // ... and written in counter order: the peer opens them in that order.
    /// let (one, two) = frames.split_at_mut(Sealer::framed_len(3));
    /// for frame in [one, two] {
    ///     // "14:", the 20-byte record, "\n"
    ///     assert_eq!(opener.open_in_place(&mut frame[3..23])?, Opened::InPlace(1..4));
    /// }
    /// assert_eq!(&frames[28..31], b"[2]");
    /// # Ok::<(), mtgnet_encryption::Error>(())
    /// ```
    pub fn reserve(&mut self, message_len: usize) -> Result<Reservation, SealError> {
        let first = self.take(Sealer::record_count(message_len))?;
        Ok(Reservation {
            key: Arc::clone(&self.key),
            first,
            message_len,
        })
    }

    /// Seals the close record into `out` as one frame of
    /// [`CLOSE_FRAMED_LEN`](Self::CLOSE_FRAMED_LEN) (21) bytes. After it the
    /// sealer refuses everything: send the frame, then shut the write half.
    ///
    /// It takes the counter after every record sealed or reserved so far,
    /// so it must be written after all of their frames: a caller using
    /// [`reserve`](Self::reserve) closes only once every reservation's
    /// frames have been handed to the socket.
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
        let counter = self.take(1)?;
        seal_frame_into(&self.key, counter, Flag::Close, &[], out);
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

    /// How many counter values this sealer has used, for records sealed or
    /// reserved: the counter of the next record.
    pub fn records_sealed(&self) -> u64 {
        self.next
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
        assert!(
            data.len() <= MAX_CHUNK,
            "a chunk holds at most 65,518 bytes"
        );
        let counter = self.take(1)?;
        self.key.seal(counter, flag as u8, data, out);
        if flag == Flag::Close {
            self.closed = true;
        }
        Ok(())
    }

    /// Seals any plaintext, flag byte included (or missing), as one record,
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
        if plaintext.len() > MAX_CHUNK + 1 || self.remaining() == 0 {
            return None;
        }
        let mut record = vec![0u8; plaintext.len() + RECORD_TAG_SIZE];
        self.key.seal_plaintext(self.next, plaintext, &mut record);
        self.next += 1;
        Some(record)
    }

    #[cfg(feature = "test-hooks")]
    pub(crate) fn key_for_testing(&self) -> [u8; 32] {
        self.key.key_for_testing()
    }

    /// How many more records this sealer may seal.
    fn remaining(&self) -> u64 {
        u64::MAX - self.next
    }

    /// Uses up the next `records` counter values and returns the first,
    /// unless the sealer is closed or they are not all left.
    fn take(&mut self, records: u64) -> Result<u64, SealError> {
        if self.closed {
            Err(SealError::Closed)
        } else if self.remaining() < records {
            Err(SealError::Exhausted)
        } else {
            let first = self.next;
            self.next += records;
            Ok(first)
        }
    }
}

/// The counters of one message, taken by [`Sealer::reserve`], with the
/// session's key: what it takes to seal that message, through `&self`
/// access to read-only key material, beside other reservations.
///
/// A reservation seals exactly one message of the length it was made for,
/// once: [`seal_framed_into`](Self::seal_framed_into) and
/// [`seal_framed_append`](Self::seal_framed_append) consume it, and it
/// cannot be cloned, so its counters are never used twice. They are used
/// up whether it is sealed or not: a reservation dropped unsealed leaves a
/// gap in the counters that the peer cannot open past (its next record
/// fails to decrypt), so drop one only on the way to abandoning the
/// connection.
///
/// Frames must reach the socket in the order of
/// [`first_counter`](Self::first_counter), which is the order the
/// reservations were made in; sealing may happen in any order.
///
/// Sealing consumes the reservation, so the same counters cannot be
/// sealed twice:
///
/// ```compile_fail
/// use mtgnet_encryption::v2::Reservation;
///
/// fn twice(reservation: Reservation, out: &mut Vec<u8>) {
///     reservation.seal_framed_append(b"[1]", out);
///     reservation.seal_framed_append(b"[1]", out); // use of a moved value
/// }
/// ```
///
/// nor copied first:
///
/// ```compile_fail
/// use mtgnet_encryption::v2::Reservation;
///
/// fn copy(reservation: &Reservation) -> Reservation {
///     reservation.clone() // Reservation is not Clone
/// }
/// ```
#[must_use = "a reservation's counters are used up: seal its message, or the peer fails at the gap"]
pub struct Reservation {
    key: Arc<RecordKey>,
    first: u64,
    message_len: usize,
}

impl Reservation {
    /// The counter of the message's first record; the others follow it.
    pub fn first_counter(&self) -> u64 {
        self.first
    }

    /// How many records (and counter values) the message takes.
    pub fn record_count(&self) -> u64 {
        Sealer::record_count(self.message_len)
    }

    /// The length of the message this reservation seals.
    pub fn message_len(&self) -> usize {
        self.message_len
    }

    /// The length of the message's frames:
    /// [`Sealer::framed_len`]`(self.message_len())`.
    pub fn framed_len(&self) -> usize {
        Sealer::framed_len(self.message_len)
    }

    /// Seals `message` into `out`, which must be exactly
    /// [`framed_len`](Self::framed_len) bytes: the very bytes
    /// [`Sealer::seal_framed_into`] would have written at this point.
    ///
    /// # Panics
    ///
    /// Panics unless `message` has the reserved length and `out` is
    /// exactly `framed_len()` bytes.
    pub fn seal_framed_into(self, message: &[u8], out: &mut [u8]) {
        self.check_len(message);
        assert_eq!(
            out.len(),
            self.framed_len(),
            "Reservation::seal_framed_into: output must be exactly framed_len() bytes"
        );
        seal_message_into(&self.key, self.first, message, out);
    }

    /// Seals `message`, appending its frames
    /// ([`framed_len`](Self::framed_len) bytes) to `out`. The ciphertext is
    /// written straight into `out`'s spare capacity: give it
    /// `Vec::with_capacity(reservation.framed_len())` and nothing is
    /// zero-filled, copied or reallocated.
    ///
    /// # Panics
    ///
    /// Panics unless `message` has the reserved length.
    pub fn seal_framed_append(self, message: &[u8], out: &mut Vec<u8>) {
        self.check_len(message);
        seal_message_append(&self.key, self.first, message, out);
    }

    fn check_len(&self, message: &[u8]) {
        assert_eq!(
            message.len(),
            self.message_len,
            "a reservation seals a message of exactly the length it was made for"
        );
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("first_counter", &self.first)
            .field("record_count", &self.record_count())
            .field("message_len", &self.message_len)
            .finish_non_exhaustive()
    }
}

/// Writes the frames of `message`, whose records take the counters from
/// `first` on, into `out`, exactly [`Sealer::framed_len`] bytes.
fn seal_message_into(key: &RecordKey, first: u64, message: &[u8], out: &mut [u8]) {
    let mut rest = out;
    for (i, (flag, chunk)) in chunks(message).enumerate() {
        let (frame, after) = rest.split_at_mut(frame_len(chunk.len() + 1 + RECORD_TAG_SIZE));
        seal_frame_into(key, first + i as u64, flag, chunk, frame);
        rest = after;
    }
    debug_assert!(rest.is_empty());
}

/// [`seal_message_into`], appending the frames to `out`.
fn seal_message_append(key: &RecordKey, first: u64, message: &[u8], out: &mut Vec<u8>) {
    out.reserve(Sealer::framed_len(message.len()));
    for (i, (flag, chunk)) in chunks(message).enumerate() {
        let (header, header_len) = frame_header(chunk.len() + 1 + RECORD_TAG_SIZE);
        out.extend_from_slice(&header[..header_len]);
        key.seal_append(first + i as u64, flag as u8, chunk, out);
        out.push(b'\n');
    }
}

/// Writes `header || record || "\n"` into `frame`, which has exactly the
/// room for it.
fn seal_frame_into(key: &RecordKey, counter: u64, flag: Flag, chunk: &[u8], frame: &mut [u8]) {
    debug_assert!(chunk.len() <= MAX_CHUNK);
    let record_len = chunk.len() + 1 + RECORD_TAG_SIZE;
    let (header, header_len) = frame_header(record_len);
    let (head, rest) = frame.split_at_mut(header_len);
    head.copy_from_slice(&header[..header_len]);
    let (record, newline) = rest.split_at_mut(record_len);
    key.seal(counter, flag as u8, chunk, record);
    newline[0] = b'\n';
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
