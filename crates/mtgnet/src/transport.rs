//! Moving messages over a byte stream: framing, the handshake, sealing.
//!
//! Everything here is plumbing between a socket and the sans-IO cores: the
//! frame decoder, the [`Session`] that seals and opens, and buffers reused
//! from one frame to the next.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use mtgnet_encryption::{Handshake, SEAL_OVERHEAD, Session};
use mtgnet_proto::framing::{self, FrameDecoder, HANDSHAKE_MAX_FRAME};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::config::Encryption;
use crate::error::{Error, HandshakeFailure};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4 * 1024;

/// Upper bound on what the writer gathers from queued messages before one
/// write; a frame at least this large is written on its own, uncopied.
const WRITE_BATCH: usize = 256 * 1024;

/// A read buffer grown past this by a large frame is replaced by a small one.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Runs the handshake (PROTOCOL.md 6.2) on a fresh connection: send our
/// 128-byte frame, then read the peer's, within the configured time.
///
/// Bytes that arrive after the peer's handshake frame stay in `buf` for the
/// message reader.
pub(crate) async fn handshake<S>(
    io: &mut S,
    buf: &mut BytesMut,
    encryption: &Encryption,
) -> Result<Session, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = Handshake::new(encryption.identity(), encryption.authorized_keys().clone());
    let exchange = async {
        let mut frame = BytesMut::with_capacity(framing::frame_len(HANDSHAKE_MAX_FRAME));
        framing::encode_frame(handshake.payload(), &mut frame);
        io.write_all(&frame).await?;
        io.flush().await?;
        let mut decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
        loop {
            match decoder.decode(buf) {
                Ok(Some(payload)) => return Ok(payload),
                Ok(None) => {}
                Err(e) => return Err(Error::Handshake(HandshakeFailure::Frame(e))),
            }
            buf.reserve(READ_CHUNK);
            if io.read_buf(buf).await? == 0 {
                return Err(Error::Handshake(HandshakeFailure::Closed));
            }
        }
    };
    let payload = tokio::time::timeout(encryption.handshake_time_limit(), exchange)
        .await
        .map_err(|_| Error::Handshake(HandshakeFailure::Timeout))??;
    Ok(handshake.finish(&payload)?)
}

/// Reads messages: frames, opened when the connection is encrypted.
pub(crate) struct MessageReader<R> {
    io: R,
    buf: BytesMut,
    decoder: FrameDecoder,
    session: Option<Arc<Session>>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub(crate) fn new(
        io: R,
        buf: BytesMut,
        max_frame: usize,
        session: Option<Arc<Session>>,
    ) -> Self {
        // A sealed frame carries 40 bytes on top of the message.
        let overhead = if session.is_some() { SEAL_OVERHEAD } else { 0 };
        MessageReader {
            io,
            buf,
            decoder: FrameDecoder::new(max_frame.saturating_add(overhead)),
            session,
        }
    }

    /// The next message; `Ok(None)` when the peer closed the stream between frames.
    ///
    /// Cancel-safe: a partly read frame stays buffered for the next call.
    pub(crate) async fn next(&mut self) -> Result<Option<BytesMut>, Error> {
        loop {
            if let Some(payload) = self.buffered()? {
                return Ok(Some(payload));
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return match self.decoder.decode_eof(&mut self.buf)? {
                    Some(payload) => self.open(payload).map(Some),
                    None => Ok(None),
                };
            }
        }
    }

    /// The next message if it is already buffered whole; reads nothing.
    pub(crate) fn buffered(&mut self) -> Result<Option<BytesMut>, Error> {
        let Some(payload) = self.decoder.decode(&mut self.buf)? else {
            return Ok(None);
        };
        self.shrink();
        self.open(payload).map(Some)
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

    fn open(&self, mut payload: BytesMut) -> Result<BytesMut, Error> {
        let Some(session) = &self.session else {
            return Ok(payload);
        };
        let base = payload.as_ptr() as usize;
        let plaintext = session.open_in_place(&mut payload)?;
        let (start, len) = (plaintext.as_ptr() as usize - base, plaintext.len());
        // Drop the bytes before and after the plaintext, in place.
        payload.advance(start);
        payload.truncate(len);
        Ok(payload)
    }
}

/// Turns messages into frames, sealed when the connection is encrypted.
///
/// Cheap to clone: every task that produces a message frames (and seals)
/// it itself, so the sealing of many calls runs on every core at once
/// instead of one after another in the connection's writer.
#[derive(Clone)]
pub(crate) struct Framer {
    session: Option<Arc<Session>>,
}

impl Framer {
    pub(crate) fn new(session: Option<Arc<Session>>) -> Framer {
        Framer { session }
    }

    /// One message as one complete frame.
    pub(crate) fn frame(&self, message: &[u8]) -> BytesMut {
        match &self.session {
            None => {
                let mut frame = BytesMut::with_capacity(framing::frame_len(message.len()));
                framing::encode_frame(message, &mut frame);
                frame
            }
            Some(session) => {
                let sealed_len = message.len() + SEAL_OVERHEAD;
                let mut frame = BytesMut::with_capacity(framing::frame_len(sealed_len));
                framing::encode_header(sealed_len, &mut frame);
                let start = frame.len();
                frame.resize(start + sealed_len, 0);
                session.seal_into(message, &mut frame[start..]);
                frame.put_u8(b'\n');
                frame
            }
        }
    }
}

/// Writes every message from `messages` until all senders are gone, then
/// shuts the write side down. Messages queued while a write is under way
/// go out together in the next write (one syscall for many frames); a
/// message of [`WRITE_BATCH`] bytes or more is written on its own, without
/// copying it.
///
/// Each message is dropped only once the write that carries it has
/// completed: whatever it holds (a call slot, bytes of the connection's
/// budget, a sender that tells its caller it was written) is given back
/// then, not when it was queued.
///
/// A write that makes no progress for `stall_limit` (a peer that stopped
/// reading) fails with `TimedOut`; every byte the socket accepts restarts
/// the clock, so a large message over a slow but live link is not cut.
pub(crate) async fn write_messages<W, M>(
    mut io: W,
    mut messages: mpsc::Receiver<M>,
    stall_limit: Option<Duration>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
    M: AsRef<[u8]>,
{
    let mut batch = Batch::default();
    // A large message taken from the queue while gathering, written next.
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(message) => message,
            None => match messages.recv().await {
                Some(message) => message,
                None => break,
            },
        };
        if first.as_ref().len() >= WRITE_BATCH {
            write_with_stall(&mut io, first.as_ref(), stall_limit).await?;
            continue;
        }
        batch.push(first);
        next = batch.gather(&mut messages);
        if next.is_none() && batch.bytes.len() < WRITE_BATCH {
            // Under load, the tasks producing the next messages are usually
            // ready to run: one turn for them first saves a syscall per frame.
            tokio::task::yield_now().await;
            next = batch.gather(&mut messages);
        }
        write_with_stall(&mut io, &batch.bytes, stall_limit).await?;
        batch.clear();
    }
    io.shutdown().await
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

/// Writes all of `bytes`, failing when no byte is accepted for `stall_limit`.
async fn write_with_stall<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut bytes: &[u8],
    stall_limit: Option<Duration>,
) -> std::io::Result<()> {
    let stalled = || std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer stopped reading");
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
        let mut reader = MessageReader::new(io, BytesMut::new(), 32 * 1024 * 1024, None);
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
