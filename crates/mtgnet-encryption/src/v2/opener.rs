//! Opening records and reassembling messages.

use std::ops::Range;

use crate::error::RecordError;

use super::record::{Flag, HEAD, TransportKey};
use super::{DEFAULT_MAX_MESSAGE, MAX_CHUNK, MAX_RECORD, RECORD_TAG_SIZE};

/// What one record contributed, from [`Opener::open_in_place`].
///
/// ```
/// use mtgnet_encryption::v2::Opened;
///
/// let opened = Opened::InPlace(1..6);
/// let record = b"\x01hello";
/// if let Opened::InPlace(range) = opened {
///     assert_eq!(&record[range], b"hello");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The record held a whole message, decrypted in place: it is
    /// `record[range]`. No copy was made.
    InPlace(Range<usize>),
    /// The record's chunk completed a message of several records: here it
    /// is, handed over (the reassembly buffer, not a copy of it).
    Message(Vec<u8>),
    /// The record's chunk was buffered; the message continues in the next
    /// record.
    Partial,
    /// The peer's close record: it sends nothing more. Answer what is in
    /// flight, send your own close record if you have not, and close.
    Closed,
}

/// What a valid record does to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The close record.
    Close,
    /// A whole message in one record.
    Whole,
    /// A chunk of a message of several records; `last` completes it.
    Append { last: bool },
}

/// Where the opener is in the stream of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages.
    Idle,
    /// Some chunks of a message have arrived (possibly all empty).
    InMessage,
    /// The close record has arrived.
    Closed,
    /// A record failed; nothing more is accepted.
    Failed,
}

/// The receiving half of a [`Session`](super::Session): opens records with
/// this direction's key and counter, and reassembles messages split over
/// several records.
///
/// Call order: pass each frame payload after the handshake, in order, to
/// [`open_in_place`](Self::open_in_place). When the stream ends (end of
/// file), call [`finish_eof`](Self::finish_eof): it tells a clean end
/// (after the peer's close record) from a truncated stream. After any error
/// the opener refuses every later record; drop the connection.
///
/// Counters make replays, reordering, reflection (a side's own records sent
/// back to it: the other direction's key) and records of another session
/// fail as [`RecordError::Decrypt`]. Chunks of any size are accepted,
/// including empty ones; the reassembled message is limited to
/// [`max_message`](Self::max_message) bytes (exactly the limit is
/// accepted).
///
/// ```
/// use mtgnet_encryption::RecordError;
/// # use mtgnet_encryption::{AuthorizedKeys, IdentitySecret};
/// # use mtgnet_encryption::v2::{Initiator, NoiseIdentity, Responder};
/// # let server = NoiseIdentity::new(&IdentitySecret::generate());
/// # let client = NoiseIdentity::new(&IdentitySecret::generate());
/// # let initiator = Initiator::new(&client, AuthorizedKeys::any());
/// # let responder = Responder::new(&server, AuthorizedKeys::any(), initiator.hello())?;
/// # let (message3, client_session) = initiator.finish(responder.response())?;
/// # let server_session = responder.finish(&message3)?;
/// let (mut sealer, _) = client_session.split();
/// let (_, opener) = server_session.split();
/// let mut opener = opener.with_max_message(4);
///
/// let frames = sealer.seal_framed(b"hello")?;
/// let mut record = frames[3..frames.len() - 1].to_vec(); // strip "16:" and "\n"
/// assert_eq!(opener.open_in_place(&mut record), Err(RecordError::MessageTooLarge { max: 4 }));
/// // The opener is unusable now, and the stream did not end cleanly.
/// assert_eq!(opener.finish_eof(), Err(RecordError::Truncated));
/// # Ok::<(), mtgnet_encryption::Error>(())
/// ```
#[derive(Debug)]
pub struct Opener {
    key: TransportKey,
    stream: Stream,
}

/// The opener's view of the stream of plaintexts: flags, state and
/// reassembly, apart from the key so that both can be borrowed at once.
#[derive(Debug)]
struct Stream {
    max_message: usize,
    state: State,
    /// The chunks received of an incomplete message.
    pending: Vec<u8>,
}

impl Opener {
    pub(crate) fn new(key: TransportKey) -> Opener {
        Opener {
            key,
            stream: Stream {
                max_message: DEFAULT_MAX_MESSAGE,
                state: State::Idle,
                pending: Vec::new(),
            },
        }
    }

    /// Sets the largest reassembled message accepted, in bytes (the
    /// connection's `max_frame`); the default is
    /// [`DEFAULT_MAX_MESSAGE`] (16 MiB).
    pub fn with_max_message(mut self, max_message: usize) -> Opener {
        self.stream.max_message = max_message;
        self
    }

    /// The largest reassembled message accepted, in bytes.
    pub fn max_message(&self) -> usize {
        self.stream.max_message
    }

    /// Whether the peer's close record has arrived.
    pub fn is_closed(&self) -> bool {
        self.stream.state == State::Closed
    }

    /// How many records this opener has opened: the counter of the next one.
    pub fn records_opened(&self) -> u64 {
        self.key.nonce()
    }

    /// Opens the next record (a frame payload). A whole message is
    /// decrypted in place, in `record`; a chunk of a longer message is
    /// decrypted into the opener's reassembly buffer. The tag is checked
    /// before anything is decrypted.
    ///
    /// The checks run in this order: record length, decryption (key and
    /// counter), flag byte, flag rules, message size.
    ///
    /// # Errors
    ///
    /// [`RecordError::TooLong`] for more than 65,535 bytes;
    /// [`RecordError::Decrypt`] if it does not decrypt (altered, replayed,
    /// reordered, reflected, foreign, or shorter than its tag);
    /// [`RecordError::MissingFlag`] if the plaintext is empty;
    /// [`RecordError::UnknownFlag`]; [`RecordError::CloseWithData`];
    /// [`RecordError::CloseMidMessage`]; [`RecordError::AfterClose`] for any
    /// record after the close record; [`RecordError::MessageTooLarge`] when
    /// the message would exceed [`max_message`](Self::max_message);
    /// [`RecordError::Exhausted`] after 2^64 - 1 records;
    /// [`RecordError::Failed`] after any earlier error. `record` may have
    /// been decrypted in place even when an error is returned.
    pub fn open_in_place(&mut self, record: &mut [u8]) -> Result<Opened, RecordError> {
        let result = self.open(record);
        if result.is_err() {
            self.stream.state = State::Failed;
            // The partial message goes with the session.
            self.stream.pending = Vec::new();
        }
        result
    }

    fn open(&mut self, record: &mut [u8]) -> Result<Opened, RecordError> {
        match self.stream.state {
            State::Failed => return Err(RecordError::Failed),
            State::Closed => return Err(RecordError::AfterClose),
            State::Idle | State::InMessage => {}
        }
        if record.len() > MAX_RECORD {
            return Err(RecordError::TooLong { len: record.len() });
        }
        let Some(plaintext_len) = record.len().checked_sub(RECORD_TAG_SIZE) else {
            return Err(RecordError::Decrypt);
        };
        if self.key.remaining() == 0 {
            return Err(RecordError::Exhausted);
        }
        let (ciphertext, tag) = record.split_at_mut(plaintext_len);
        let tag: &[u8; RECORD_TAG_SIZE] = (&*tag).try_into().map_err(|_| RecordError::Decrypt)?;
        let verified = self
            .key
            .verify(ciphertext, tag)
            .ok_or(RecordError::Decrypt)?;
        let stream = &mut self.stream;
        // Authentic. The data is decrypted once, straight to where it ends
        // up: in the record for a whole message, in the reassembly buffer
        // for a chunk of a longer one.
        let opened = if stream.state == State::Idle && plaintext_len <= MAX_CHUNK {
            // Not a full record, so (from a writer that follows the rules)
            // a whole message or a close: decrypt it where it is, in one call.
            verified.decrypt_in_place(ciphertext, 0);
            let (&flag, data) = ciphertext.split_first().ok_or(RecordError::MissingFlag)?;
            match stream.next(flag, data.len())? {
                Step::Close => Opened::Closed,
                Step::Whole => Opened::InPlace(1..plaintext_len),
                // A short first chunk: legal, if no writer of ours sends it.
                Step::Append { last } => stream.append(data, last),
            }
        } else {
            // Learn the flag from the head (the flag and up to 511 data
            // bytes, decrypted on the stack), then decrypt the rest to its
            // place.
            let head_len = plaintext_len.min(HEAD);
            let mut head = [0u8; HEAD];
            verified.decrypt(&mut head[..head_len], &ciphertext[..head_len], 0);
            let (&flag, head_data) = head[..head_len]
                .split_first()
                .ok_or(RecordError::MissingFlag)?;
            let (head_in_record, rest) = ciphertext.split_at_mut(head_len);
            match stream.next(flag, plaintext_len - 1)? {
                Step::Close => Opened::Closed,
                Step::Whole => {
                    verified.decrypt_in_place(rest, HEAD);
                    head_in_record.copy_from_slice(&head[..head_len]);
                    Opened::InPlace(1..plaintext_len)
                }
                Step::Append { last } => {
                    if stream.pending.capacity() == 0 {
                        // A message's first chunk, so at least two
                        // records: room for two full ones (within the
                        // limit) saves growing the buffer, and copying
                        // the first chunk, when the second arrives.
                        let room = (2 * MAX_CHUNK).min(stream.max_message);
                        stream.pending.reserve(room);
                    }
                    stream.pending.extend_from_slice(head_data);
                    // Straight into the buffer's spare capacity: nothing
                    // is zero-filled first.
                    verified.decrypt_append(&mut stream.pending, rest, HEAD);
                    stream.append(&[], last)
                }
            }
        };
        // The record was authentic and valid: its counter value is used up.
        self.key.advance();
        Ok(opened)
    }

    #[cfg(feature = "test-hooks")]
    pub(crate) fn key_for_testing(&self) -> [u8; 32] {
        self.key.key_for_testing()
    }

    /// Reports the end of the stream (end of file from the transport).
    ///
    /// # Errors
    ///
    /// [`RecordError::Truncated`] unless the peer's close record arrived
    /// first: the stream may have been cut, and a message or a whole
    /// exchange may be missing.
    pub fn finish_eof(&self) -> Result<(), RecordError> {
        if self.stream.state == State::Closed {
            Ok(())
        } else {
            Err(RecordError::Truncated)
        }
    }
}

impl Stream {
    /// Checks a record's flag and data length against the state and the
    /// size limit, and moves the state on.
    fn next(&mut self, flag: u8, data_len: usize) -> Result<Step, RecordError> {
        let in_message = self.state == State::InMessage;
        let step = match Flag::from_byte(flag) {
            None => return Err(RecordError::UnknownFlag(flag)),
            Some(Flag::Close) if data_len > 0 => {
                return Err(RecordError::CloseWithData { len: data_len });
            }
            Some(Flag::Close) if in_message => return Err(RecordError::CloseMidMessage),
            Some(Flag::Close) => Step::Close,
            Some(Flag::Last) if !in_message => Step::Whole,
            Some(Flag::Last) => Step::Append { last: true },
            Some(Flag::More) => Step::Append { last: false },
        };
        let so_far = if in_message { self.pending.len() } else { 0 };
        if step != Step::Close && data_len > self.max_message.saturating_sub(so_far) {
            return Err(RecordError::MessageTooLarge {
                max: self.max_message,
            });
        }
        self.state = match step {
            Step::Close => State::Closed,
            Step::Whole | Step::Append { last: true } => State::Idle,
            Step::Append { last: false } => State::InMessage,
        };
        Ok(step)
    }

    /// Adds `data` to the message being reassembled; hands the message over
    /// if this was its last chunk.
    fn append(&mut self, data: &[u8], last: bool) -> Opened {
        self.pending.extend_from_slice(data);
        if last {
            Opened::Message(std::mem::take(&mut self.pending))
        } else {
            Opened::Partial
        }
    }
}
