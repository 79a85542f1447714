//! The handshake of an encrypted connection, v1 or v2, as bytes over a
//! stream: the sans-IO handshakes of `mtgnet_encryption` driven over a
//! socket within the handshake timeout, and the negotiation of a server
//! that accepts both versions.
//!
//! ```text
//!   v1 client / v1-only server: both send their 128-byte frame at once, then read the peer's.
//!   v2 client: hello (49) ->  <- message 2 (192)  message 3 (160) ->
//!   server accepting v2: reads the client's first frame and classifies it:
//!     128 bytes -> v1 (sends its own v1 frame, continues as v1)
//!     the v2 hello -> v2;  anything else -> closed without a reply.
//! ```

use bytes::BytesMut;
use mtgnet_encryption::v2::{self, FirstFrame, Initiator, MAX_HANDSHAKE_FRAME, Responder};
use mtgnet_encryption::{Handshake, PublicKey, Session};
use mtgnet_proto::framing::{self, FrameDecoder, HANDSHAKE_MAX_FRAME};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Encryption, EncryptionVersion};
use crate::error::{Error, HandshakeFailure, PeerError};

/// Bytes asked of the socket per read during the handshake.
const READ_CHUNK: usize = 1024;

/// What protects a connection once its handshake is done.
pub(crate) enum Channel {
    /// No encryption.
    Plain,
    /// Encryption v1: one session key, sealed frames.
    V1(Session),
    /// Encryption v2: Noise transport keys, records.
    V2(v2::Session),
}

impl Channel {
    /// The peer's identity, when encrypted.
    pub(crate) fn peer_identity(&self) -> Option<PublicKey> {
        match self {
            Channel::Plain => None,
            Channel::V1(session) => Some(*session.peer_identity()),
            Channel::V2(session) => Some(*session.peer_identity()),
        }
    }
}

/// The client's handshake, in the version `encryption` chooses; bytes
/// after the server's last handshake frame stay in `buf`.
pub(crate) async fn client<S>(
    io: &mut S,
    buf: &mut BytesMut,
    encryption: &Encryption,
) -> Result<Channel, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        match encryption.client_version() {
            EncryptionVersion::V1 => v1(io, buf, encryption, None).await,
            EncryptionVersion::V2 => {
                let initiator = Initiator::new(
                    encryption.noise_identity(),
                    encryption.authorized_keys().clone(),
                );
                write_frame(io, initiator.hello()).await?;
                let response = read_frame(io, buf, MAX_HANDSHAKE_FRAME).await?;
                // On a bad signature or pin, nothing more is sent.
                let (message3, session) = initiator.finish(&response)?;
                write_frame(io, &message3).await?;
                Ok(Channel::V2(session))
            }
        }
    };
    within_limit(encryption, exchange).await
}

/// The server's handshake: v1 at once if it accepts only v1, otherwise
/// after reading and classifying the client's first frame. Also returns the
/// version the client asked for, once known (for metrics), whatever the
/// outcome.
pub(crate) async fn server<S>(
    io: &mut S,
    buf: &mut BytesMut,
    encryption: &Encryption,
) -> (Option<EncryptionVersion>, Result<Channel, Error>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut version = None;
    let exchange = async {
        if !encryption.accepts(EncryptionVersion::V2) {
            version = Some(EncryptionVersion::V1);
            return v1(io, buf, encryption, None).await;
        }
        // Large enough for a v1 hello (128) and a v2 one (49).
        let first = read_frame(io, buf, MAX_HANDSHAKE_FRAME).await?;
        match v2::classify_first_payload(&first) {
            FirstFrame::V1 if encryption.accepts(EncryptionVersion::V1) => {
                version = Some(EncryptionVersion::V1);
                v1(io, buf, encryption, Some(&first)).await
            }
            FirstFrame::V2 => {
                version = Some(EncryptionVersion::V2);
                let responder = Responder::new(
                    encryption.noise_identity(),
                    encryption.authorized_keys().clone(),
                    &first,
                )?;
                write_frame(io, responder.response()).await?;
                let message3 = read_frame(io, buf, MAX_HANDSHAKE_FRAME).await?;
                // A refused client gets nothing: not even a close record.
                Ok(Channel::V2(responder.finish(&message3)?))
            }
            FirstFrame::V1 => {
                version = Some(EncryptionVersion::V1);
                Err(HandshakeFailure::Version.into())
            }
            FirstFrame::Reject => Err(HandshakeFailure::Version.into()),
        }
    };
    let result = within_limit(encryption, exchange).await;
    (version, result)
}

/// The v1 handshake (PROTOCOL.md 6.2): send our 128-byte frame, then read
/// the peer's, unless a server already read it as the first frame.
async fn v1<S>(
    io: &mut S,
    buf: &mut BytesMut,
    encryption: &Encryption,
    peer_payload: Option<&[u8]>,
) -> Result<Channel, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = Handshake::new(encryption.identity(), encryption.authorized_keys().clone());
    write_frame(io, handshake.payload()).await?;
    let session = match peer_payload {
        Some(payload) => handshake.finish(payload)?,
        None => handshake.finish(&read_frame(io, buf, HANDSHAKE_MAX_FRAME).await?)?,
    };
    Ok(Channel::V1(session))
}

/// Bounds the whole exchange (negotiation included) by the handshake timeout.
async fn within_limit(
    encryption: &Encryption,
    exchange: impl Future<Output = Result<Channel, Error>>,
) -> Result<Channel, Error> {
    tokio::time::timeout(encryption.handshake_time_limit(), exchange)
        .await
        .map_err(|_| Error::Peer(PeerError::Handshake(HandshakeFailure::Timeout)))?
}

async fn write_frame<S: AsyncWrite + Unpin>(io: &mut S, payload: &[u8]) -> Result<(), Error> {
    let mut frame = BytesMut::with_capacity(framing::frame_len(payload.len()));
    framing::encode_frame(payload, &mut frame);
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

/// Reads one handshake frame of at most `max` bytes.
async fn read_frame<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<BytesMut, Error> {
    let mut decoder = FrameDecoder::new(max);
    loop {
        match decoder.decode(buf) {
            Ok(Some(payload)) => return Ok(payload),
            Ok(None) => {}
            Err(e) => {
                return Err(Error::Peer(PeerError::Handshake(HandshakeFailure::Frame(
                    e,
                ))));
            }
        }
        buf.reserve(READ_CHUNK);
        if io.read_buf(buf).await? == 0 {
            return Err(Error::Peer(PeerError::Handshake(HandshakeFailure::Closed)));
        }
    }
}
