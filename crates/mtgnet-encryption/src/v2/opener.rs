//! Opening records and reassembling messages.

use std::ops::Range;

use crate::error::RecordError;

use super::record::{Flag, TransportKey};
use super::{DEFAULT_MAX_MESSAGE, MAX_RECORD, RECORD_TAG_SIZE};

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
    max_message: usize,
    state: State,
    /// The chunks received of an incomplete message.
    pending: Vec<u8>,
}

impl Opener {
    pub(crate) fn new(key: TransportKey) -> Opener {
        Opener {
            key,
            max_message: DEFAULT_MAX_MESSAGE,
            state: State::Idle,
            pending: Vec::new(),
        }
    }

    /// Sets the largest reassembled message accepted, in bytes (the
    /// connection's `max_frame`); the default is
    /// [`DEFAULT_MAX_MESSAGE`] (16 MiB).
    pub fn with_max_message(mut self, max_message: usize) -> Opener {
        self.max_message = max_message;
        self
    }

    /// The largest reassembled message accepted, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Whether the peer's close record has arrived.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// How many records this opener has opened: the counter of the next one.
    pub fn records_opened(&self) -> u64 {
        self.key.nonce()
    }

    /// Opens the next record (a frame payload), decrypting it in place.
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
            self.state = State::Failed;
            // The partial message goes with the session.
            self.pending = Vec::new();
        }
        result
    }

    fn open(&mut self, record: &mut [u8]) -> Result<Opened, RecordError> {
        match self.state {
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
        let (plaintext, tag) = record.split_at_mut(plaintext_len);
        let tag: &[u8; RECORD_TAG_SIZE] = (&*tag).try_into().map_err(|_| RecordError::Decrypt)?;
        if !self.key.open_in_place(plaintext, tag) {
            return Err(RecordError::Decrypt);
        }
        let Some((&flag, data)) = plaintext.split_first() else {
            return Err(RecordError::MissingFlag);
        };
        match Flag::from_byte(flag) {
            None => Err(RecordError::UnknownFlag(flag)),
            Some(Flag::Close) if !data.is_empty() => {
                Err(RecordError::CloseWithData { len: data.len() })
            }
            Some(Flag::Close) if self.state == State::InMessage => {
                Err(RecordError::CloseMidMessage)
            }
            Some(Flag::Close) => {
                self.state = State::Closed;
                Ok(Opened::Closed)
            }
            Some(Flag::More) => {
                self.append(data)?;
                self.state = State::InMessage;
                Ok(Opened::Partial)
            }
            Some(Flag::Last) if self.state == State::InMessage => {
                self.append(data)?;
                self.state = State::Idle;
                Ok(Opened::Message(std::mem::take(&mut self.pending)))
            }
            Some(Flag::Last) => {
                if data.len() > self.max_message {
                    return Err(RecordError::MessageTooLarge {
                        max: self.max_message,
                    });
                }
                Ok(Opened::InPlace(1..plaintext_len))
            }
        }
    }

    /// Adds a chunk to the message being reassembled, within the limit.
    fn append(&mut self, data: &[u8]) -> Result<(), RecordError> {
        if data.len() > self.max_message.saturating_sub(self.pending.len()) {
            return Err(RecordError::MessageTooLarge {
                max: self.max_message,
            });
        }
        self.pending.extend_from_slice(data);
        Ok(())
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
        if self.state == State::Closed {
            Ok(())
        } else {
            Err(RecordError::Truncated)
        }
    }
}
