//! Errors of the protocol core, grouped by who is at fault.

use std::str::Utf8Error;

use crate::framing::FrameError;
use crate::id::Id;

/// Everything that can go wrong in the protocol core.
///
/// Every variant is the peer's fault: the bytes it sent break the contract,
/// and the connection they arrived on must be closed.
///
/// Each layer's error converts into it, so `?` carries any of them:
///
/// ```
/// use bytes::BytesMut;
/// use mtgnet_proto::framing::FrameDecoder;
/// use mtgnet_proto::{wire, Error, MessageError};
///
/// /// Deframes the next request and counts its entries.
/// fn next_request(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Result<Option<usize>, Error> {
///     let Some(payload) = decoder.decode(buf)? else { return Ok(None) };
///     Ok(Some(wire::parse_request(&payload)?.len()))
/// }
///
/// let mut decoder = FrameDecoder::default();
/// let mut buf = BytesMut::from(&b"2:[]\n2:{}\nx"[..]);
/// assert_eq!(next_request(&mut decoder, &mut buf).unwrap(), Some(0));
/// let not_an_array = next_request(&mut decoder, &mut buf);
/// assert!(matches!(not_an_array, Err(Error::Message(MessageError::Shape(_)))));
/// let not_a_header = next_request(&mut decoder, &mut buf);
/// assert!(matches!(not_a_header, Err(Error::Frame(_))));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The byte stream is not valid netstring+.
    #[error("framing error: {0}")]
    Frame(#[from] FrameError),
    /// A payload is not a valid request or response message.
    #[error("invalid message: {0}")]
    Message(#[from] MessageError),
    /// A response does not fit the calls in flight.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
}

/// A payload that is not a well-formed request or response.
///
/// ```
/// use mtgnet_proto::{wire, MessageError};
///
/// let bom = wire::parse_request(b"\xEF\xBB\xBF[]").unwrap_err();
/// assert!(matches!(bom, MessageError::ByteOrderMark));
/// let truncated = wire::parse_request(b"[{\"service\":").unwrap_err();
/// assert!(matches!(truncated, MessageError::Json(_)));
/// let not_an_array = wire::parse_request(br#"{"service":"Test"}"#).unwrap_err();
/// assert!(matches!(not_an_array, MessageError::Shape(_)));
/// let empty = wire::parse_response(b"[]").unwrap_err();
/// assert!(matches!(empty, MessageError::EmptyResponse));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The payload starts with a UTF-8 byte-order mark.
    #[error("the message starts with a byte-order mark")]
    ByteOrderMark,
    /// The payload is not valid UTF-8.
    #[error("the message is not valid UTF-8: {0}")]
    Utf8(#[source] Utf8Error),
    /// The payload is not one valid JSON document.
    #[error("the message is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Valid JSON of the wrong shape (not an array, an element that is not an object, ...).
    #[error("{0}")]
    Shape(#[source] serde_json::Error),
    /// A response array with no result in it.
    #[error("the response is empty")]
    EmptyResponse,
}

impl MessageError {
    pub(crate) fn from_json(e: serde_json::Error) -> MessageError {
        match e.classify() {
            serde_json::error::Category::Data => MessageError::Shape(e),
            _ => MessageError::Json(e),
        }
    }
}

/// A response that breaks the client's view of the calls in flight.
///
/// [`ClientCore::handle_response`](crate::client::ClientCore::handle_response)
/// returns it, leaving its state unchanged; the connection should be closed.
///
/// ```
/// use mtgnet_proto::client::{Batch, ClientCore};
/// use mtgnet_proto::{Id, ProtocolError, RawJson};
///
/// let mut core = ClientCore::new();
/// let unsolicited = core.handle_response(br#"[{"id":1,"data":0}]"#).unwrap_err();
/// assert!(matches!(unsolicited, ProtocolError::Unsolicited));
///
/// let mut batch = Batch::new();
/// batch.call("Test", "echo", RawJson::from_serialize(&(1,)).unwrap());
/// core.encode_request(&batch, &mut Vec::new(), ()).unwrap();
/// let unknown = core.handle_response(br#"[{"id":9,"data":0}]"#).unwrap_err();
/// assert!(matches!(unknown, ProtocolError::UnknownId(id) if id == Id::from(9)));
/// assert_eq!(core.in_flight(), 1);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The response is not a valid message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A result answers no call in flight.
    #[error("result for id {0}, which matches no call in flight")]
    UnknownId(Id),
    /// Two results in one response answer the same call.
    #[error("two results for id {0}")]
    DuplicateResult(Id),
    /// One response answers calls of different requests.
    #[error("one response mixes results of different requests")]
    MixedRequests,
    /// A response does not answer every call of its request.
    #[error("the response holds {got} of the {expected} results its request needs")]
    Incomplete {
        /// Calls in the request.
        expected: usize,
        /// Results in the response.
        got: usize,
    },
    /// A response arrived while no call was in flight.
    #[error("unsolicited response: no call is in flight")]
    Unsolicited,
}

/// Why [`ClientCore`](crate::client::ClientCore) refuses to register a request.
///
/// Unlike [`ProtocolError`], this is the caller's business, not the peer's:
/// the connection is fine, the request is not sent.
///
/// ```
/// use std::num::NonZeroUsize;
/// use mtgnet_proto::client::{Batch, ClientCore};
/// use mtgnet_proto::{Id, RawJson, RequestError};
///
/// let mut core: ClientCore = ClientCore::with_max_in_flight(NonZeroUsize::MIN);
/// let mut batch = Batch::new();
/// batch.call("Test", "echo", RawJson::from_serialize(&(1,)).unwrap());
/// core.encode_request(&batch, &mut Vec::new(), ()).unwrap();
/// let full = core.encode_request(&batch, &mut Vec::new(), ()).unwrap_err();
/// assert!(matches!(full, RequestError::Full { needed: 1, free: 0 }));
///
/// // Id 1 is in flight already.
/// let duplicate = core.insert_in_flight(vec![Id::from(1)], ()).unwrap_err();
/// assert!(matches!(duplicate, RequestError::DuplicateId(id) if id == Id::from(1)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The arguments could not be serialized to JSON.
    #[error("the request cannot be serialized: {0}")]
    Json(#[from] serde_json::Error),
    /// The request needs more slots than are free: wait for answers first.
    #[error("{needed} slots needed, {free} free")]
    Full {
        /// Slots the request takes: its calls, at most the cap on calls in flight.
        needed: usize,
        /// Slots free now.
        free: usize,
    },
    /// An id is already in flight (or appears twice in the request): its
    /// results could not be told apart.
    #[error("id {0} is already in flight")]
    DuplicateId(Id),
}
