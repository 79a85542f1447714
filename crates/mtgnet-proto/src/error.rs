//! Errors of the protocol core, grouped by who is at fault.

use std::str::Utf8Error;

use crate::framing::FrameError;
use crate::id::Id;

/// Everything that can go wrong in the protocol core.
///
/// Every variant is the peer's fault: the bytes it sent break the contract,
/// and the connection they arrived on must be closed.
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
