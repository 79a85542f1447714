//! Moving messages over a byte stream: framing, the handshake, sealing.
//!
//! Everything here is plumbing between a socket and the sans-IO cores: the
//! frame decoder, the [`Session`] that seals and opens, and buffers reused
//! from one frame to the next.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use mtgnet_encryption::v2::{self, Opened, Opener};
use mtgnet_encryption::{SEAL_OVERHEAD, Session};
use mtgnet_proto::framing::{self, FrameDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use crate::error::{AuthError, Error};
use crate::handshake::Channel;
use crate::race::{Either, first_of};
use crate::record_sealer::RecordSealer;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4 * 1024;

/// Upper bound on what the writer gathers from queued messages before one
/// write; a frame at least this large is written on its own, uncopied.
const WRITE_BATCH: usize = 256 * 1024;

/// A read buffer grown past this by a large frame is replaced by a small one.
const SHRINK_ABOVE: usize = 64 * 1024;

/// How the reader turns frames into messages.
pub(crate) enum Opening {
    Plain,
    V1(Arc<Session>),
    /// Owned by the reader: records are opened in order, one at a time.
    V2(Opener),
}

/// What the next buffered frames hold.
enum Buffered {
    Message(BytesMut),
    /// No complete message is buffered yet.
    NeedMore,
    /// The peer's v2 close record: it sends nothing more.
    Closed,
}

/// Reads messages: frames, opened when the connection is encrypted, and
/// (v2) records reassembled into messages.
pub(crate) struct MessageReader<R> {
    io: R,
    buf: BytesMut,
    decoder: FrameDecoder,
    opening: Opening,
    /// Set once the peer's close record has arrived.
    closed: bool,
    /// Set once the peer has ended its side cleanly: its v2 close record,
    /// or (plain, v1) the end of the stream between frames.
    ended: bool,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// A reader of messages of at most `max_frame` bytes (for v2: the
    /// reassembled message) over `io`, continuing with the bytes in `buf`.
    pub(crate) fn new(io: R, buf: BytesMut, max_frame: usize, opening: Opening) -> Self {
        let (opening, frame_limit) = match opening {
            Opening::Plain => (Opening::Plain, max_frame),
            // A sealed frame carries 40 bytes on top of the message.
            Opening::V1(session) => (
                Opening::V1(session),
                max_frame.saturating_add(SEAL_OVERHEAD),
            ),
            Opening::V2(opener) => (
                Opening::V2(opener.with_max_message(max_frame)),
                v2::MAX_RECORD,
            ),
        };
        MessageReader {
            io,
            buf,
            decoder: FrameDecoder::new(frame_limit),
            opening,
            closed: false,
            ended: false,
        }
    }

    /// The next message; `Ok(None)` when the peer ended the stream cleanly
    /// (between frames; with v2, after its close record).
    ///
    /// # Errors
    ///
    /// Framing, decryption, record rules, and for v2 [`PeerError::Truncated`](crate::PeerError::Truncated)
    /// when the stream ends without a close record.
    ///
    /// Cancel-safe: a partly read frame stays buffered for the next call.
    pub(crate) async fn next(&mut self) -> Result<Option<BytesMut>, Error> {
        loop {
            match self.poll_buffered()? {
                Buffered::Message(message) => return Ok(Some(message)),
                Buffered::Closed => return Ok(None),
                Buffered::NeedMore => {}
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                if let Some(payload) = self.decoder.decode_eof(&mut self.buf)? {
                    match self.open(payload)? {
                        Buffered::Message(message) => return Ok(Some(message)),
                        Buffered::Closed => return Ok(None),
                        Buffered::NeedMore => {}
                    }
                }
                if let Opening::V2(opener) = &self.opening {
                    if opener.records_opened() == 0 {
                        // What a v2 server does to a client it refuses.
                        return Err(Error::Auth(AuthError::EndedAfterHandshake));
                    }
                    opener.finish_eof()?;
                }
                self.ended = true;
                return Ok(None);
            }
        }
    }

    /// Whether the peer has ended its side cleanly ([`MessageReader::next`]
    /// returned `Ok(None)` at its close record or end of stream).
    pub(crate) fn peer_ended(&self) -> bool {
        self.closed || self.ended
    }

    /// The next message if it is already buffered whole; reads nothing.
    pub(crate) fn buffered(&mut self) -> Result<Option<BytesMut>, Error> {
        match self.poll_buffered()? {
            Buffered::Message(message) => Ok(Some(message)),
            Buffered::Closed | Buffered::NeedMore => Ok(None),
        }
    }

    fn poll_buffered(&mut self) -> Result<Buffered, Error> {
        if self.closed {
            return Ok(Buffered::Closed);
        }
        // With v2 a message may take several records: open them until one
        // completes it or no whole record is left.
        while let Some(payload) = self.decoder.decode(&mut self.buf)? {
            self.shrink();
            match self.open(payload)? {
                Buffered::NeedMore => {}
                done => return Ok(done),
            }
        }
        Ok(Buffered::NeedMore)
    }

    /// After a large frame, gives its buffer back instead of keeping it for
    /// the connection's lifetime: what is left (usually nothing) moves to a
    /// small buffer, and the large one is freed with the last frame using it.
    fn shrink(&mut self) {
        if self.buf.capacity() > SHRINK_ABOVE && self.buf.len() <= READ_CHUNK {
            let mut small = BytesMut::with_capacity(READ_CHUNK);
            small.extend_from_slice(&self.buf);
            self.buf = small;
        }
    }

    /// The read buffer's capacity, for tests of its shrinking.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn open(&mut self, mut payload: BytesMut) -> Result<Buffered, Error> {
        match &mut self.opening {
            Opening::Plain => Ok(Buffered::Message(payload)),
            Opening::V1(session) => {
                let base = payload.as_ptr() as usize;
                let plaintext = session.open_in_place(&mut payload)?;
                let (start, len) = (plaintext.as_ptr() as usize - base, plaintext.len());
                // Drop the bytes before and after the plaintext, in place.
                payload.advance(start);
                payload.truncate(len);
                Ok(Buffered::Message(payload))
            }
            Opening::V2(opener) => match opener.open_in_place(&mut payload)? {
                Opened::InPlace(range) => {
                    payload.truncate(range.end);
                    payload.advance(range.start);
                    Ok(Buffered::Message(payload))
                }
                // The reassembled message, without a copy.
                Opened::Message(message) => Ok(Buffered::Message(BytesMut::from(
                    bytes::Bytes::from(message),
                ))),
                Opened::Partial => Ok(Buffered::NeedMore),
                Opened::Closed => {
                    self.closed = true;
                    Ok(Buffered::Closed)
                }
                // Future variants: nothing this reader can deliver.
                #[allow(unreachable_patterns)]
                _ => Ok(Buffered::NeedMore),
            },
        }
    }
}

/// Turns messages into frames, sealed when the connection is encrypted,
/// and hands them to a queue.
///
/// Cheap to clone: every task that produces a message frames and seals it
/// itself, so the sealing of many calls runs on every core at once instead
/// of one after another in the connection's writer. v2 records carry
/// counters, so they must reach the socket in counter order: a v2 message
/// takes its counters under a short lock, is sealed outside it, and is
/// queued in counter order ([`RecordSealer`]).
#[derive(Clone)]
pub(crate) struct Framer {
    kind: FramerKind,
}

#[derive(Clone)]
enum FramerKind {
    Plain,
    V1(Arc<Session>),
    V2(Arc<RecordSealer>),
}

/// Splits what protects a connection into its reading half (for a
/// [`MessageReader`]) and its sending half.
pub(crate) fn split(channel: Channel) -> (Opening, Framer) {
    let (opening, kind) = match channel {
        Channel::Plain => (Opening::Plain, FramerKind::Plain),
        Channel::V1(session) => {
            let session = Arc::new(session);
            (Opening::V1(Arc::clone(&session)), FramerKind::V1(session))
        }
        Channel::V2(session) => {
            let (sealer, opener) = session.split();
            let records = Arc::new(RecordSealer::new(sealer));
            (Opening::V2(opener), FramerKind::V2(records))
        }
    };
    (opening, Framer { kind })
}

impl Framer {
    /// Frames one message and hands the frame to `send`; for v2 in counter
    /// order, under the lock that keeps that order, so `send` must not wait.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the v2 close record has been sealed already.
    pub(crate) fn send<T>(
        &self,
        message: &[u8],
        send: impl FnOnce(BytesMut) -> T,
    ) -> Result<T, Error> {
        match &self.kind {
            FramerKind::Plain => {
                let mut frame = BytesMut::with_capacity(framing::frame_len(message.len()));
                framing::encode_frame(message, &mut frame);
                Ok(send(frame))
            }
            FramerKind::V1(session) => {
                let sealed_len = message.len() + SEAL_OVERHEAD;
                let mut frame = BytesMut::with_capacity(framing::frame_len(sealed_len));
                framing::encode_header(sealed_len, &mut frame);
                let start = frame.len();
                frame.resize(start + sealed_len, 0);
                session.seal_into(message, &mut frame[start..]);
                frame.put_u8(b'\n');
                Ok(send(frame))
            }
            FramerKind::V2(records) => records.send(message, send).map_err(|_| Error::Closed),
        }
    }

    /// The v2 close record, framed; `None` for other channels, after a
    /// failure ([`Framer::abandon`]), or when it was sealed already.
    pub(crate) fn close_frame(&self) -> Option<BytesMut> {
        match &self.kind {
            FramerKind::V2(records) => records.close_frame(),
            FramerKind::Plain | FramerKind::V1(_) => None,
        }
    }

    /// The connection failed: it ends without a close record.
    pub(crate) fn abandon(&self) {
        if let FramerKind::V2(records) = &self.kind {
            records.abandon();
        }
    }
}

/// Writes every message from `messages` until all senders are gone, then
/// sends the v2 close record (unless `closing` was abandoned) and shuts the
/// write side down. Messages queued while a write is under way
/// go out together in the next write (one syscall for many frames); a
/// message of [`WRITE_BATCH`] bytes or more is written on its own, without
/// copying it.
///
/// Each message is dropped only once the write that carries it has
/// completed: whatever it holds (a call slot, bytes of the connection's
/// budget, a sender that tells its caller it was written) is given back
/// then, not when it was queued.
///
/// When `close` is notified, the queue is closed: the messages already in
/// it are written, then the write side is closed as when every sender is
/// gone.
///
/// A write that makes no progress for `stall_limit` (a peer that stopped
/// reading) fails with `TimedOut`; every byte the socket accepts restarts
/// the clock, so a large message over a slow but live link is not cut.
pub(crate) async fn write_messages<W, M>(
    mut io: W,
    mut messages: mpsc::Receiver<M>,
    writing: Writing,
    closing: Framer,
    close: Option<&Notify>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
    M: AsRef<[u8]>,
{
    let Writing {
        stall_limit,
        busy_poll,
    } = writing;
    // On a current-thread runtime the tasks that were ready when the first
    // message woke this one have all run before it: what they queued is
    // here already, and waiting another turn would only hold the batch back
    // behind the work that follows (the reader's next requests), so that
    // the peers take turns, each idle while the other works (see the
    // server's `DISPATCH_QUANTUM`). On a multi-thread runtime they run on
    // other workers at the same time: a turn lets their messages join.
    let gather_a_turn = matches!(
        tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()),
        Ok(tokio::runtime::RuntimeFlavor::MultiThread)
    );
    let mut batch = Batch::default();
    // A large message taken from the queue while gathering, written next.
    let mut next = None;
    let mut closing_now = false;
    loop {
        let first = match next.take() {
            Some(message) => message,
            None => {
                let received = match close {
                    // Closing first: a queue that never runs dry would
                    // otherwise keep it from being seen.
                    Some(close) if !closing_now => {
                        match first_of(close.notified(), messages.recv()).await {
                            Either::Left(()) => {
                                // No more messages; those queued still go out.
                                messages.close();
                                closing_now = true;
                                continue;
                            }
                            Either::Right(received) => received,
                        }
                    }
                    _ => messages.recv().await,
                };
                match received {
                    Some(message) => message,
                    None => break,
                }
            }
        };
        if first.as_ref().len() >= WRITE_BATCH {
            write_with_stall(&mut io, first.as_ref(), stall_limit).await?;
            continue;
        }
        batch.push(first);
        next = batch.gather(&mut messages);
        if gather_a_turn && next.is_none() && batch.bytes.len() < WRITE_BATCH {
            // The producers of the next messages are running on other
            // workers: one turn for them first saves a syscall per frame.
            tokio::task::yield_now().await;
            next = batch.gather(&mut messages);
        }
        write_with_stall(&mut io, &batch.bytes, stall_limit).await?;
        batch.clear();
        if let Some(spin) = busy_poll {
            poll_busily(&messages, spin).await;
        }
    }
    // Every sender is gone: a clean end, which v2 says with a close record.
    if let Some(close) = closing.close_frame() {
        write_with_stall(&mut io, &close, stall_limit).await?;
    }
    io.shutdown().await
}

/// How a connection's writer writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Writing {
    /// A write that makes no progress for this long fails (`None`: never).
    pub(crate) stall_limit: Option<Duration>,
    /// After a write that emptied the queue, keep the thread polling for
    /// this long before it may sleep (`None`: sleep at once).
    pub(crate) busy_poll: Option<Duration>,
}

/// Keeps the thread busy for up to `spin` while `messages` stays empty:
/// each turn lets the runtime poll its I/O driver without blocking, so
/// the peer's next message is read, and this thread's next message
/// produced, without the thread going to sleep and being woken again.
/// Bounded by `spin` (the configuration caps it), and ends as soon as a
/// message is queued or every sender is gone.
async fn poll_busily<M>(messages: &mpsc::Receiver<M>, spin: Duration) {
    let until = std::time::Instant::now() + spin;
    while messages.is_empty() && !messages.is_closed() && std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Messages gathered for one write: their bytes copied into one reusable
/// buffer, the messages themselves kept until that write completes.
struct Batch<M> {
    bytes: BytesMut,
    held: Vec<M>,
}

impl<M> Default for Batch<M> {
    fn default() -> Self {
        Batch {
            // Grows on first use: idle connections cost no write buffer.
            bytes: BytesMut::new(),
            held: Vec::new(),
        }
    }
}

impl<M: AsRef<[u8]>> Batch<M> {
    fn push(&mut self, message: M) {
        self.bytes.extend_from_slice(message.as_ref());
        self.held.push(message);
    }

    /// Adds the messages already queued, up to [`WRITE_BATCH`] bytes;
    /// returns a large message met on the way, to be written on its own.
    fn gather(&mut self, messages: &mut mpsc::Receiver<M>) -> Option<M> {
        while self.bytes.len() < WRITE_BATCH {
            match messages.try_recv() {
                Ok(message) if message.as_ref().len() >= WRITE_BATCH => return Some(message),
                Ok(message) => self.push(message),
                Err(_) => break,
            }
        }
        None
    }

    /// Forgets what was written, releasing the messages. The buffer never
    /// holds more than two batches' worth, so it is kept for reuse.
    fn clear(&mut self) {
        self.bytes.clear();
        self.held.clear();
    }
}

/// Why a write failed with `TimedOut`: the peer accepted no byte for the
/// write stall limit (as opposed to a timeout of the socket itself).
#[derive(Debug, thiserror::Error)]
#[error("the peer stopped reading")]
pub(crate) struct WriteStalled;

impl WriteStalled {
    /// Whether `e` is a write that stalled.
    pub(crate) fn is(e: &std::io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<WriteStalled>())
    }
}

/// Writes all of `bytes`, failing when no byte is accepted for `stall_limit`.
async fn write_with_stall<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut bytes: &[u8],
    stall_limit: Option<Duration>,
) -> std::io::Result<()> {
    let stalled = || std::io::Error::new(std::io::ErrorKind::TimedOut, WriteStalled);
    while !bytes.is_empty() {
        let written = match stall_limit {
            None => io.write(bytes).await?,
            Some(limit) => tokio::time::timeout(limit, io.write(bytes))
                .await
                .map_err(|_| stalled())??,
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[written..];
    }
    match stall_limit {
        None => io.flush().await,
        Some(limit) => tokio::time::timeout(limit, io.flush())
            .await
            .map_err(|_| stalled())?,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn read_buffer_shrinks_back_after_a_large_frame() {
        let (mut peer, io) = tokio::io::duplex(1 << 20);
        let big = vec![b'b'; 16 * 1024 * 1024];
        let writing = tokio::spawn(async move {
            let mut frames = BytesMut::new();
            framing::encode_frame(&big, &mut frames);
            framing::encode_frame(b"small", &mut frames);
            peer.write_all(&frames).await.expect("write");
            peer
        });
        let mut reader = MessageReader::new(io, BytesMut::new(), 32 * 1024 * 1024, Opening::Plain);
        let first = reader.next().await.expect("read").expect("a frame");
        assert_eq!(first.len(), 16 * 1024 * 1024);
        drop(first);
        assert!(
            reader.capacity() <= SHRINK_ABOVE,
            "the read buffer kept {} bytes after the large frame",
            reader.capacity()
        );
        let second = reader.next().await.expect("read").expect("a frame");
        assert_eq!(&second[..], b"small");
        drop(writing.await);
    }
}
