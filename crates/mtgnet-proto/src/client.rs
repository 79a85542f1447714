//! The client side of a connection, without IO: ids, calls in flight, and
//! matching responses to them.
//!
//! Call order: build a [`Batch`], [`ClientCore::encode_request`] it (the
//! bytes are the payload of the next frame to send), feed every payload that
//! arrives to [`ClientCore::handle_response`], then drain
//! [`ClientCore::poll_completion`]. A request whose caller went away is
//! [`abandon`](ClientCore::abandon)ed: its response is still checked when it
//! comes, then dropped.

use std::collections::{HashMap, VecDeque};

use crate::error::ProtocolError;
use crate::id::Id;
use crate::json::RawJson;
use crate::wire::{self, CallResult, OutgoingCall};

/// The calls and notifications of one request, in the order they are added.
///
/// ```
/// use mtgnet_proto::client::Batch;
/// use mtgnet_proto::RawJson;
///
/// let mut batch = Batch::new();
/// let first = batch.call("Test", "echo", RawJson::from_serialize(&["a"]).unwrap());
/// batch.notify("Test", "echo", RawJson::from_serialize(&["b"]).unwrap());
/// let second = batch.call("System", "rpcVersion", RawJson::empty_array());
/// assert_eq!((first, second, batch.len(), batch.calls()), (0, 1, 3, 2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Batch {
    entries: Vec<BatchEntry>,
    calls: usize,
}

#[derive(Clone, Debug)]
struct BatchEntry {
    service: String,
    method: String,
    args: RawJson,
    wants_result: bool,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a call; returns its index among the batch's calls, which is its
    /// position in the [`Completion`]'s results.
    pub fn call(
        &mut self,
        service: impl Into<String>,
        method: impl Into<String>,
        args: RawJson,
    ) -> usize {
        self.push(service.into(), method.into(), args, true);
        self.calls - 1
    }

    /// Adds a notification: a call that gets no result.
    pub fn notify(&mut self, service: impl Into<String>, method: impl Into<String>, args: RawJson) {
        self.push(service.into(), method.into(), args, false);
    }

    fn push(&mut self, service: String, method: String, args: RawJson, wants_result: bool) {
        self.calls += usize::from(wants_result);
        self.entries.push(BatchEntry {
            service,
            method,
            args,
            wants_result,
        });
    }

    /// Calls and notifications in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Calls (entries that expect a result) in the batch.
    pub fn calls(&self) -> usize {
        self.calls
    }
}

/// Names one request in flight.
///
/// [`ClientCore::encode_request`] hands one out per request; the
/// [`Completion`] of that request carries it back, and
/// [`ClientCore::abandon`] takes it to drop the request's answer.
///
/// ```
/// use mtgnet_proto::client::{Batch, ClientCore};
/// use mtgnet_proto::RawJson;
///
/// let mut core = ClientCore::new();
/// let mut batch = Batch::new();
/// batch.call("System", "rpcVersion", RawJson::empty_array());
/// let first = core.encode_request(&batch, &mut Vec::new()).unwrap().unwrap();
/// let second = core.encode_request(&batch, &mut Vec::new()).unwrap().unwrap();
/// assert_ne!(first, second);
///
/// // The second request's call got id 2: answering it completes `second` only.
/// core.handle_response(br#"[{"id":2,"data":0}]"#).unwrap();
/// assert_eq!(core.poll_completion().unwrap().request, second);
/// assert_eq!(core.in_flight(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey(u64);

/// The answer to one request: one result per call, in the batch's call order.
///
/// The server may answer a request's calls in any order; the completion
/// puts them back in the order they were added, so the index
/// [`Batch::call`] returned finds each call's result.
///
/// ```
/// use mtgnet_proto::client::{Batch, ClientCore};
/// use mtgnet_proto::RawJson;
///
/// let mut core = ClientCore::new();
/// let mut batch = Batch::new();
/// let sum = batch.call("Math", "add", RawJson::from_serialize(&(1, 2)).unwrap());
/// batch.notify("Log", "write", RawJson::from_serialize(&("adding",)).unwrap());
/// let product = batch.call("Math", "mul", RawJson::from_serialize(&(2, 3)).unwrap());
/// let key = core.encode_request(&batch, &mut Vec::new()).unwrap().unwrap();
///
/// core.handle_response(br#"[{"id":2,"data":6},{"id":1,"data":3}]"#).unwrap();
/// let done = core.poll_completion().unwrap();
/// assert_eq!(done.request, key);
/// assert_eq!(done.results.len(), 2);
/// assert_eq!(done.results[sum].outcome.as_ref().unwrap().as_str(), "3");
/// assert_eq!(done.results[product].outcome.as_ref().unwrap().as_str(), "6");
/// ```
#[derive(Debug)]
pub struct Completion {
    /// The request answered.
    pub request: RequestKey,
    /// Results in the order the calls were added to the [`Batch`].
    pub results: Vec<CallResult>,
}

#[derive(Debug)]
struct InFlight {
    ids: Vec<Id>,
    abandoned: bool,
}

/// Client state machine for one connection.
///
/// ```
/// use mtgnet_proto::client::{Batch, ClientCore};
/// use mtgnet_proto::RawJson;
///
/// let mut core = ClientCore::new();
/// let mut batch = Batch::new();
/// batch.call("System", "rpcVersion", RawJson::empty_array());
/// let mut payload = Vec::new();
/// let key = core.encode_request(&batch, &mut payload).unwrap().unwrap();
/// assert_eq!(payload, br#"[{"service":"System","method":"rpcVersion","args":[],"id":1}]"#);
///
/// core.handle_response(br#"[{"id":1,"data":{"major":1}}]"#).unwrap();
/// let done = core.poll_completion().unwrap();
/// assert_eq!(done.request, key);
/// assert_eq!(done.results[0].outcome.as_ref().unwrap().as_str(), r#"{"major":1}"#);
/// ```
#[derive(Debug, Default)]
pub struct ClientCore {
    /// The next integer id to hand out; ids are unique among calls in flight.
    next_id: i64,
    next_request: u64,
    /// Every id in flight: its request and its position among that request's calls.
    pending: HashMap<Id, (RequestKey, usize)>,
    requests: HashMap<RequestKey, InFlight>,
    completions: VecDeque<Completion>,
}

impl ClientCore {
    /// A client with nothing in flight.
    pub fn new() -> ClientCore {
        ClientCore::default()
    }

    /// Assigns ids to the batch's calls and appends the request's JSON to `out`.
    ///
    /// Returns the key the [`Completion`] will carry, or `None` when the
    /// batch holds only notifications (no response will come).
    ///
    /// # Errors
    ///
    /// Only if JSON serialization fails, which it does not for valid [`RawJson`].
    pub fn encode_request(
        &mut self,
        batch: &Batch,
        out: &mut Vec<u8>,
    ) -> Result<Option<RequestKey>, serde_json::Error> {
        let ids: Vec<Id> = (0..batch.calls()).map(|_| self.fresh_id()).collect();
        let mut next = ids.iter();
        let calls: Vec<OutgoingCall<'_>> = batch
            .entries
            .iter()
            .map(|entry| OutgoingCall {
                service: &entry.service,
                method: &entry.method,
                id: if entry.wants_result {
                    next.next()
                } else {
                    None
                },
                args: &entry.args,
            })
            .collect();
        wire::write_request(&calls, out)?;
        if ids.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.insert_in_flight(ids)))
    }

    fn fresh_id(&mut self) -> Id {
        loop {
            self.next_id = if self.next_id == i64::MAX {
                1
            } else {
                self.next_id + 1
            };
            let id = Id::from(self.next_id);
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    /// Takes one response payload.
    ///
    /// # Errors
    ///
    /// A protocol error (section 4): the payload is not a valid response, a
    /// result's id matches no call in flight, two results answer one call, or
    /// the results are not exactly the calls of one request. The connection
    /// should then be closed; the state is left unchanged.
    pub fn handle_response(&mut self, payload: &[u8]) -> Result<(), ProtocolError> {
        let results = wire::parse_response(payload)?;
        if self.pending.is_empty() {
            return Err(ProtocolError::Unsolicited);
        }
        let request = match self.pending.get(&results[0].id) {
            Some(&(key, _)) => key,
            None => return Err(ProtocolError::UnknownId(results[0].id.clone())),
        };
        let expected = self.requests.get(&request).map_or(0, |r| r.ids.len());
        let mut slots: Vec<Option<CallResult>> = (0..expected).map(|_| None).collect();
        for result in results {
            let &(key, index) = self
                .pending
                .get(&result.id)
                .ok_or_else(|| ProtocolError::UnknownId(result.id.clone()))?;
            if key != request {
                return Err(ProtocolError::MixedRequests);
            }
            let slot = &mut slots[index];
            if slot.is_some() {
                return Err(ProtocolError::DuplicateResult(result.id));
            }
            *slot = Some(result);
        }
        let results: Vec<CallResult> = slots.iter_mut().filter_map(Option::take).collect();
        if results.len() != expected {
            return Err(ProtocolError::Incomplete {
                expected,
                got: results.len(),
            });
        }
        if let Some(done) = self.requests.remove(&request) {
            for id in &done.ids {
                self.pending.remove(id);
            }
            if !done.abandoned {
                self.completions.push_back(Completion { request, results });
            }
        }
        Ok(())
    }

    /// The next answered request, if any.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// Forgets the caller of a request in flight (it timed out or was
    /// cancelled). Its ids stay reserved until its response arrives, so the
    /// late response is still recognised and then dropped.
    pub fn abandon(&mut self, request: RequestKey) {
        if let Some(entry) = self.requests.get_mut(&request) {
            entry.abandoned = true;
        }
        self.completions.retain(|c| c.request != request);
    }

    /// Registers a request in flight with the given ids, as if it had been
    /// sent; lets tests reproduce peers' ids (vectors). Not part of the API.
    #[doc(hidden)]
    pub fn insert_in_flight(&mut self, ids: Vec<Id>) -> RequestKey {
        let key = RequestKey(self.next_request);
        self.next_request += 1;
        for (index, id) in ids.iter().enumerate() {
            self.pending.insert(id.clone(), (key, index));
        }
        self.requests.insert(
            key,
            InFlight {
                ids,
                abandoned: false,
            },
        );
        key
    }

    /// Requests sent and not yet answered (abandoned ones included).
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_call(core: &mut ClientCore) -> RequestKey {
        let mut batch = Batch::new();
        batch.call("S", "m", RawJson::empty_array());
        core.encode_request(&batch, &mut Vec::new())
            .expect("encodes")
            .expect("has a call")
    }

    #[test]
    fn abandoned_request_response_is_accepted_and_dropped() {
        let mut core = ClientCore::new();
        let key = one_call(&mut core);
        core.abandon(key);
        core.handle_response(br#"[{"id":1,"data":0}]"#)
            .expect("still valid");
        assert!(core.poll_completion().is_none());
        assert_eq!(core.in_flight(), 0);
    }

    #[test]
    fn response_covering_two_requests_is_rejected() {
        let mut core = ClientCore::new();
        one_call(&mut core);
        one_call(&mut core);
        let err = core
            .handle_response(br#"[{"id":1,"data":0},{"id":2,"data":0}]"#)
            .expect_err("mixed");
        assert!(matches!(err, ProtocolError::MixedRequests), "{err}");
    }

    #[test]
    fn partial_response_is_rejected() {
        let mut core = ClientCore::new();
        let mut batch = Batch::new();
        batch.call("S", "m", RawJson::empty_array());
        batch.call("S", "m", RawJson::empty_array());
        core.encode_request(&batch, &mut Vec::new())
            .expect("encodes");
        let err = core
            .handle_response(br#"[{"id":2,"data":0}]"#)
            .expect_err("incomplete");
        assert!(
            matches!(
                err,
                ProtocolError::Incomplete {
                    expected: 2,
                    got: 1
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn results_come_back_in_call_order() {
        let mut core = ClientCore::new();
        let mut batch = Batch::new();
        batch.call("S", "a", RawJson::empty_array());
        batch.notify("S", "n", RawJson::empty_array());
        batch.call("S", "b", RawJson::empty_array());
        let mut out = Vec::new();
        core.encode_request(&batch, &mut out).expect("encodes");
        core.handle_response(br#"[{"id":2,"data":"b"},{"id":1,"data":"a"}]"#)
            .expect("valid");
        let done = core.poll_completion().expect("complete");
        let data: Vec<&str> = done
            .results
            .iter()
            .map(|r| r.outcome.as_ref().expect("ok").as_str())
            .collect();
        assert_eq!(data, ["\"a\"", "\"b\""]);
    }

    #[test]
    fn notification_only_batch_expects_no_response() {
        let mut core = ClientCore::new();
        let mut batch = Batch::new();
        batch.notify("S", "m", RawJson::empty_array());
        assert!(
            core.encode_request(&batch, &mut Vec::new())
                .expect("encodes")
                .is_none()
        );
        assert!(matches!(
            core.handle_response(br#"[{"id":1,"data":0}]"#),
            Err(ProtocolError::Unsolicited)
        ));
    }
}
