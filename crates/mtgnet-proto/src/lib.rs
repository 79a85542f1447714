//! The sans-IO core of MTGNet v1, a JSON-over-netstring RPC protocol.
//!
//! This crate turns bytes into protocol events and back. It never touches a
//! socket, a clock or a random number generator: the `mtgnet` crate moves
//! the bytes (tokio or blocking), `mtgnet-encryption` seals them.
//!
//! ```text
//!   application   Client::call / Service::method        (mtgnet)
//!   messages      wire: Call, CallResult, Condition      <- this crate
//!                 client: ClientCore (ids, calls in flight, matching)
//!                 server: ServerCore (batch limit, invalid calls, refusals)
//!                 registry: Registry, Service, System introspection
//!   [encryption]  nonce || crypto_box ciphertext         (mtgnet-encryption)
//!   framing       framing: FrameDecoder, encode_frame    <- this crate
//!   transport     TCP or any byte stream                 (mtgnet)
//! ```
//!
//! A client and a server, end to end in memory:
//!
//! ```
//! use std::sync::Arc;
//! use bytes::BytesMut;
//! use mtgnet_proto::client::{Batch, ClientCore};
//! use mtgnet_proto::framing::{encode_frame, FrameDecoder};
//! use mtgnet_proto::{wire, Peer, RawJson, Registry, Service};
//!
//! let registry = Registry::new().with(Service::new("Test").method(
//!     "add",
//!     "Adds two integers.",
//!     |(a, b): (i64, i64)| async move { Ok(a + b) },
//! ));
//!
//! // Client: one request with one call, framed.
//! let mut client = ClientCore::new();
//! let mut batch = Batch::new();
//! batch.call("Test", "add", RawJson::from_serialize(&(2, 3)).unwrap());
//! let mut json = Vec::new();
//! client.encode_request(&batch, &mut json, ()).unwrap();
//! let mut wire_bytes = BytesMut::new();
//! encode_frame(&json, &mut wire_bytes);
//!
//! // Server: deframe, parse, run, answer.
//! let request = FrameDecoder::default().decode(&mut wire_bytes).unwrap().unwrap();
//! let calls = wire::parse_request(&request).unwrap();
//! let response = futures::executor::block_on(registry.respond(calls, Arc::new(Peer::default()))).unwrap();
//!
//! // Client: match the result to the call.
//! client.handle_response(&response).unwrap();
//! let done = client.poll_completion().unwrap();
//! let sum: i64 = done.results[0].outcome.as_ref().unwrap().deserialize().unwrap();
//! assert_eq!(sum, 5);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod client;
mod condition;
pub mod dispatch;
mod error;
pub mod framing;
mod id;
mod json;
pub mod observe;
mod registry;
pub mod server;
mod service;
pub mod wire;

pub use condition::{Condition, codes};
pub use error::{Error, MessageError, ProtocolError, RequestError};
pub use id::Id;
pub use json::RawJson;
pub use registry::{RPC_VERSION, Registry, RegistryError, RpcVersion, SYSTEM};
pub use service::{Context, FromArgs, Outcome, Peer, PeerCredentials, Service};

/// Entry points for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes arbitrary bytes whole, split in two and byte by byte, and
    /// checks the runs agree and every payload round-trips; must never
    /// panic otherwise.
    pub fn frame_decoder(data: &[u8]) {
        crate::framing::fuzz_decode(data);
    }

    /// Parses arbitrary bytes as a request; must never panic.
    pub fn request_parser(data: &[u8]) {
        if let Ok(calls) = crate::wire::parse_request(data) {
            for call in calls.into_iter().flatten() {
                let _ = call.args.deserialize::<Vec<serde_json::Value>>();
            }
        }
    }

    /// Feeds arbitrary bytes as responses to a client with calls in flight; must never panic.
    pub fn client_responses(data: &[u8]) {
        let mut core = crate::client::ClientCore::new();
        for _ in 0..3 {
            let mut batch = crate::client::Batch::new();
            batch.call("S", "m", crate::RawJson::empty_array());
            batch.call("S", "m", crate::RawJson::empty_array());
            let _ = core.encode_request(&batch, &mut Vec::new(), ());
        }
        for payload in data.split(|&b| b == 0) {
            if core.handle_response(payload).is_ok() {
                while core.poll_completion().is_some() {}
            }
        }
    }
}
