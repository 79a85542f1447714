//! A client core and a server registry wired together in memory: bytes are
//! shuttled between them, through the framing, until both are idle.

use std::sync::Arc;

use bytes::BytesMut;
use mtgnet_proto::client::{Batch, ClientCore, Completion, RequestKey};
use mtgnet_proto::framing::{FrameDecoder, encode_frame};
use mtgnet_proto::{Peer, RawJson, Registry, Service, wire};
use proptest::prelude::*;

struct Pair {
    client: ClientCore,
    registry: Registry,
    client_decoder: FrameDecoder,
    server_decoder: FrameDecoder,
    /// Bytes on their way from the client to the server.
    to_server: BytesMut,
    /// Bytes on their way from the server to the client.
    to_client: BytesMut,
    completions: Vec<Completion>,
}

impl Pair {
    fn new() -> Pair {
        let registry = Registry::new().with(
            Service::new("Test")
                .method("echo", "", |(x,): (RawJson,)| async move { Ok(x) })
                .method("add", "", |(a, b): (i64, i64)| async move { Ok(a + b) }),
        );
        Pair {
            client: ClientCore::new(),
            registry,
            client_decoder: FrameDecoder::default(),
            server_decoder: FrameDecoder::default(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            completions: Vec::new(),
        }
    }

    fn send(&mut self, batch: &Batch) -> Option<RequestKey> {
        let mut json = Vec::new();
        let key = self
            .client
            .encode_request(batch, &mut json, ())
            .expect("encodes");
        encode_frame(&json, &mut self.to_server);
        key
    }

    /// Moves at most `chunk` bytes in each direction per step, answering
    /// every request the server has fully received, until nothing moves.
    fn drive(&mut self, chunk: usize) {
        let mut server_in = BytesMut::new();
        let mut client_in = BytesMut::new();
        loop {
            let moved_up = self.to_server.len().min(chunk);
            server_in.extend_from_slice(&self.to_server.split_to(moved_up));
            while let Some(request) = self
                .server_decoder
                .decode(&mut server_in)
                .expect("valid frames")
            {
                let calls = wire::parse_request(&request).expect("valid request");
                let response = futures::executor::block_on(
                    self.registry.respond(calls, Arc::new(Peer::default())),
                );
                if let Some(response) = response {
                    encode_frame(&response, &mut self.to_client);
                }
            }
            let moved_down = self.to_client.len().min(chunk);
            client_in.extend_from_slice(&self.to_client.split_to(moved_down));
            while let Some(response) = self
                .client_decoder
                .decode(&mut client_in)
                .expect("valid frames")
            {
                self.client
                    .handle_response(&response)
                    .expect("matches a request");
                while let Some(done) = self.client.poll_completion() {
                    self.completions.push(done);
                }
            }
            if moved_up == 0 && moved_down == 0 {
                assert!(
                    server_in.is_empty() && client_in.is_empty(),
                    "no partial frame left"
                );
                return;
            }
        }
    }
}

fn args(value: impl serde::Serialize) -> RawJson {
    RawJson::from_serialize(&value).expect("json")
}

/// Sends a pipeline of requests (calls, a batch with a notification, a
/// notification-only request) and returns what completed, in order.
fn pipeline(chunk: usize) -> Vec<(RequestKey, Vec<String>)> {
    let mut pair = Pair::new();
    let mut first = Batch::new();
    first.call("Test", "add", args((2, 3)));
    let mut second = Batch::new();
    second.call("Test", "echo", args(("x",)));
    second.notify("Test", "echo", args(("ignored",)));
    second.call("System", "rpcVersion", RawJson::empty_array());
    second.call("Test", "nope", RawJson::empty_array());
    let mut third = Batch::new();
    third.notify("Test", "echo", args((1,)));
    assert!(pair.send(&first).is_some());
    assert!(pair.send(&second).is_some());
    assert!(
        pair.send(&third).is_none(),
        "notifications only: no response expected"
    );
    pair.drive(chunk);
    assert_eq!(pair.client.in_flight(), 0, "every request answered");
    pair.completions
        .into_iter()
        .map(|done| {
            let outcomes = done
                .results
                .iter()
                .map(|r| match &r.outcome {
                    Ok(data) => data.as_str().to_owned(),
                    Err(condition) => format!("error {}", condition.code_text()),
                })
                .collect();
            (done.request, outcomes)
        })
        .collect()
}

#[test]
fn pipelined_requests_complete_with_results_in_call_order() {
    let completed = pipeline(usize::MAX);
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[0].1, ["5"]);
    assert_eq!(
        completed[1].1,
        [
            "\"x\"",
            r#"{"major":1,"minor":0,"type":"draft","revision":1}"#,
            "error unknown-method"
        ]
    );
}

proptest! {
    #[test]
    fn any_split_of_the_byte_streams_completes_the_same(chunk in 1usize..200) {
        prop_assert_eq!(pipeline(chunk), pipeline(usize::MAX));
    }
}
