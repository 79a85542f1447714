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

/// Upper bound on what the writer gathers from queued messages before one write.
const WRITE_BATCH: usize = 256 * 1024;

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
            if let Some(payload) = self.decoder.decode(&mut self.buf)? {
                return self.open(payload).map(Some);
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

/// Gathers frames into one reusable buffer for one `write`.
pub(crate) struct FrameSink {
    buf: BytesMut,
}

impl FrameSink {
    pub(crate) fn new() -> FrameSink {
        FrameSink {
            // Grows on first use: idle connections cost no write buffer.
            buf: BytesMut::new(),
        }
    }

    fn push(&mut self, frame: &[u8]) {
        self.buf.extend_from_slice(frame);
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    async fn flush_to<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        io.write_all(&self.buf).await?;
        io.flush().await?;
        self.buf.clear();
        Ok(())
    }
}

/// Adds the frames already queued to `sink`, up to [`WRITE_BATCH`] bytes.
fn gather(messages: &mut mpsc::Receiver<BytesMut>, sink: &mut FrameSink) {
    while sink.len() < WRITE_BATCH {
        match messages.try_recv() {
            Ok(message) => sink.push(&message),
            Err(_) => break,
        }
    }
}

/// Writes every message from `messages` until all senders are gone, then
/// shuts the write side down. Messages queued while a write is under way
/// go out together in the next write (one syscall for many frames).
///
/// A write that makes no progress for `stall_limit` (a peer that stopped
/// reading) fails with `TimedOut`, so such a peer cannot pin the
/// connection's resources forever.
pub(crate) async fn write_messages<W: AsyncWrite + Unpin>(
    mut io: W,
    mut messages: mpsc::Receiver<BytesMut>,
    mut sink: FrameSink,
    stall_limit: Option<Duration>,
) -> std::io::Result<()> {
    while let Some(message) = messages.recv().await {
        sink.push(&message);
        gather(&mut messages, &mut sink);
        if sink.len() < WRITE_BATCH {
            // Under load, the tasks producing the next messages are usually
            // ready to run: one turn for them first saves a syscall per frame.
            tokio::task::yield_now().await;
            gather(&mut messages, &mut sink);
        }
        match stall_limit {
            None => sink.flush_to(&mut io).await?,
            Some(limit) => tokio::time::timeout(limit, sink.flush_to(&mut io))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer stopped reading")
                })??,
        }
    }
    io.shutdown().await
}
