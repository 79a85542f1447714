//! The client side of a connection, without IO: ids, calls in flight, and
//! matching responses to them.
//!
//! Call order: build a [`Batch`], [`ClientCore::encode_request`] it with
//! its waiter (the bytes are the payload of the next frame to send), feed
//! every payload that arrives to [`ClientCore::handle_response`] (or parse
//! it first and feed the results to [`ClientCore::handle_results`]), then
//! drain [`ClientCore::poll_completion`], which hands each waiter back with
//! its results. A request whose caller went away is
//! [`abandon`](ClientCore::abandon)ed: its response is still checked when it
//! comes, then dropped. When the connection ends,
//! [`fail_all`](ClientCore::fail_all) hands back every waiter left.
//!
//! The core holds the one table of calls in flight, and caps it: a request
//! takes one slot per call (at most [`ClientCore::max_in_flight`]), abandoned
//! requests included, until its response arrives.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;

use crate::error::{MessageError, ProtocolError, RequestError};
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

/// Default cap on calls in flight on one connection: 1,024.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

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
/// let first = core.encode_request(&batch, &mut Vec::new(), ()).unwrap().unwrap();
/// let second = core.encode_request(&batch, &mut Vec::new(), ()).unwrap().unwrap();
/// assert_ne!(first, second);
///
/// // The second request's call got id 2: answering it completes `second` only.
/// core.handle_response(br#"[{"id":2,"data":0}]"#).unwrap();
/// assert_eq!(core.poll_completion().unwrap().request, second);
/// assert_eq!(core.in_flight(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey(u64);

/// The answer to one request: one result per call, in the batch's call
/// order, and the waiter registered with the request.
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
/// let key = core.encode_request(&batch, &mut Vec::new(), ()).unwrap().unwrap();
///
/// core.handle_response(br#"[{"id":2,"data":6},{"id":1,"data":3}]"#).unwrap();
/// let done = core.poll_completion().unwrap();
/// assert_eq!(done.request, key);
/// assert_eq!(done.results.len(), 2);
/// assert_eq!(done.results[sum].outcome.as_ref().unwrap().as_str(), "3");
/// assert_eq!(done.results[product].outcome.as_ref().unwrap().as_str(), "6");
/// ```
#[derive(Debug)]
pub struct Completion<W = ()> {
    /// The request answered.
    pub request: RequestKey,
    /// Results in the order the calls were added to the [`Batch`].
    pub results: Vec<CallResult>,
    /// The waiter given to [`ClientCore::encode_request`] for this request.
    pub waiter: W,
}

#[derive(Debug)]
struct InFlight<W> {
    ids: Vec<Id>,
    /// Slots of the cap this request takes until its response arrives.
    slots: usize,
    waiter: W,
    abandoned: bool,
}

/// Client state machine for one connection: ids, the one table of calls in
/// flight (each request with its waiter `W`), and the cap on it.
///
/// `W` is whatever the IO layer needs to wake the caller (a channel
/// sender, say); `()` for none. The core never looks inside it: it hands
/// it back in the request's [`Completion`], or from
/// [`fail_all`](ClientCore::fail_all).
///
/// ```
/// use mtgnet_proto::client::{Batch, ClientCore};
/// use mtgnet_proto::RawJson;
///
/// let mut core = ClientCore::new();
/// let mut batch = Batch::new();
/// batch.call("System", "rpcVersion", RawJson::empty_array());
/// let mut payload = Vec::new();
/// let key = core.encode_request(&batch, &mut payload, ()).unwrap().unwrap();
/// assert_eq!(payload, br#"[{"service":"System","method":"rpcVersion","args":[],"id":1}]"#);
///
/// core.handle_response(br#"[{"id":1,"data":{"major":1}}]"#).unwrap();
/// let done = core.poll_completion().unwrap();
/// assert_eq!(done.request, key);
/// assert_eq!(done.results[0].outcome.as_ref().unwrap().as_str(), r#"{"major":1}"#);
/// ```
///
/// With a waiter per request, here a label; parsing happens before the
/// core is involved, as an IO layer does outside its lock:
///
/// ```
/// use mtgnet_proto::client::{Batch, ClientCore};
/// use mtgnet_proto::{wire, RawJson};
///
/// let mut core: ClientCore<&str> = ClientCore::default();
/// let mut batch = Batch::new();
/// batch.call("System", "rpcVersion", RawJson::empty_array());
/// core.encode_request(&batch, &mut Vec::new(), "first").unwrap();
/// core.encode_request(&batch, &mut Vec::new(), "second").unwrap();
///
/// let results = wire::parse_response(br#"[{"id":2,"data":0}]"#).unwrap();
/// core.handle_results(results).unwrap();
/// assert_eq!(core.poll_completion().unwrap().waiter, "second");
/// assert_eq!(core.fail_all(), ["first"]);
/// assert_eq!(core.in_flight(), 0);
/// ```
#[derive(Debug)]
pub struct ClientCore<W = ()> {
    /// The next integer id to hand out; ids are unique among calls in flight.
    next_id: i64,
    next_request: u64,
    max_in_flight: NonZeroUsize,
    /// Every id in flight: its request and its position among that request's calls.
    pending: HashMap<Id, (RequestKey, usize)>,
    requests: HashMap<RequestKey, InFlight<W>>,
    completions: VecDeque<Completion<W>>,
    /// Slots taken by the requests in flight, abandoned ones included.
    slots: usize,
    /// Slots taken by abandoned requests.
    abandoned_slots: usize,
}

impl<W> Default for ClientCore<W> {
    fn default() -> Self {
        ClientCore::with_max_in_flight(
            NonZeroUsize::new(DEFAULT_MAX_IN_FLIGHT).unwrap_or(NonZeroUsize::MIN),
        )
    }
}

impl ClientCore {
    /// A client with nothing in flight, no waiters, and the default cap
    /// ([`DEFAULT_MAX_IN_FLIGHT`]); `ClientCore::<W>::default()` for waiters of type `W`.
    pub fn new() -> ClientCore {
        ClientCore::default()
    }
}

impl<W> ClientCore<W> {
    /// A client with nothing in flight that holds at most `max` calls in flight.
    pub fn with_max_in_flight(max: NonZeroUsize) -> Self {
        ClientCore {
            next_id: 0,
            next_request: 0,
            max_in_flight: max,
            pending: HashMap::new(),
            requests: HashMap::new(),
            completions: VecDeque::new(),
            slots: 0,
            abandoned_slots: 0,
        }
    }

    /// The cap on calls in flight.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.get()
    }

    /// Slots `batch` takes while in flight: one per call, at most
    /// [`max_in_flight`](ClientCore::max_in_flight) (a larger batch runs
    /// alone), none for notifications only.
    pub fn slots_for(&self, batch: &Batch) -> usize {
        batch.calls().min(self.max_in_flight.get())
    }

    /// Slots free now.
    pub fn free_slots(&self) -> usize {
        self.max_in_flight.get().saturating_sub(self.slots)
    }

    /// Assigns ids to the batch's calls, appends the request's JSON to
    /// `out`, and registers the request with its `waiter`.
    ///
    /// Returns the key the [`Completion`] will carry, or `None` when the
    /// batch holds only notifications (no response will come; `waiter` is
    /// dropped).
    ///
    /// # Errors
    ///
    /// [`RequestError::Full`] when the batch needs more slots than are
    /// free ([`slots_for`](ClientCore::slots_for) against
    /// [`free_slots`](ClientCore::free_slots)): nothing is written and
    /// `waiter` is dropped. [`RequestError::Json`] if JSON serialization
    /// fails, which it does not for valid [`RawJson`].
    pub fn encode_request(
        &mut self,
        batch: &Batch,
        out: &mut Vec<u8>,
        waiter: W,
    ) -> Result<Option<RequestKey>, RequestError> {
        let needed = self.slots_for(batch);
        if needed > self.free_slots() {
            return Err(RequestError::Full {
                needed,
                free: self.free_slots(),
            });
        }
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
        self.register(ids, waiter).map(Some)
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

    /// Takes one response payload: parses it, then
    /// [`handle_results`](ClientCore::handle_results).
    ///
    /// # Errors
    ///
    /// As [`handle_results`](ClientCore::handle_results), and
    /// [`ProtocolError::Message`] when the payload is not a valid response.
    pub fn handle_response(&mut self, payload: &[u8]) -> Result<(), ProtocolError> {
        self.handle_results(wire::parse_response(payload)?)
    }

    /// Takes the results of one response, parsed by
    /// [`wire::parse_response`]: an IO layer can parse a large response
    /// before it takes the lock that guards the core.
    ///
    /// Completes at most one request: its [`Completion`] (with the
    /// request's waiter) is then ready for
    /// [`poll_completion`](ClientCore::poll_completion), unless the
    /// request was abandoned, whose waiter is dropped here.
    ///
    /// # Errors
    ///
    /// A protocol error (section 4): no results, a result's id matches no
    /// call in flight, two results answer one call, or the results are not
    /// exactly the calls of one request. The connection should then be
    /// closed; the state is left unchanged.
    pub fn handle_results(&mut self, results: Vec<CallResult>) -> Result<(), ProtocolError> {
        let Some(first) = results.first() else {
            return Err(MessageError::EmptyResponse.into());
        };
        if self.pending.is_empty() {
            return Err(ProtocolError::Unsolicited);
        }
        let request = match self.pending.get(&first.id) {
            Some(&(key, _)) => key,
            None => return Err(ProtocolError::UnknownId(first.id.clone())),
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
            let Some(slot) = slots.get_mut(index) else {
                return Err(ProtocolError::UnknownId(result.id));
            };
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
            self.slots -= done.slots;
            if done.abandoned {
                self.abandoned_slots -= done.slots;
            } else {
                self.completions.push_back(Completion {
                    request,
                    results,
                    waiter: done.waiter,
                });
            }
        }
        Ok(())
    }

    /// The next answered request, with its waiter, if any.
    pub fn poll_completion(&mut self) -> Option<Completion<W>> {
        self.completions.pop_front()
    }

    /// Forgets the caller of a request in flight (it timed out or was
    /// cancelled): no [`Completion`] will be produced for it.
    ///
    /// Its ids and its slots stay taken until its response arrives, so the
    /// late response is still recognised and then dropped, and a server
    /// cannot make the client hold more than the cap by never answering.
    /// The waiter stays too (whatever it holds stays held) and is dropped
    /// with the response, or handed back by [`fail_all`](ClientCore::fail_all).
    pub fn abandon(&mut self, request: RequestKey) {
        if let Some(entry) = self.requests.get_mut(&request) {
            if !entry.abandoned {
                entry.abandoned = true;
                self.abandoned_slots += entry.slots;
            }
        }
        // An answer that arrived but was not polled yet: its slots are
        // already free; dropping it drops its waiter.
        self.completions.retain(|c| c.request != request);
    }

    /// Whether every slot is taken by abandoned requests: nothing can be
    /// sent until the server answers calls whose callers gave up. An IO
    /// layer should close such a connection rather than wait forever.
    pub fn all_slots_abandoned(&self) -> bool {
        self.abandoned_slots >= self.max_in_flight.get()
    }

    /// The connection ended: forgets every request in flight (abandoned
    /// ones included) and every completion not yet polled, and hands back
    /// their waiters, to be told that no answer will come. The core is then
    /// empty, as if new.
    pub fn fail_all(&mut self) -> Vec<W> {
        self.pending.clear();
        self.slots = 0;
        self.abandoned_slots = 0;
        let completed = self.completions.drain(..).map(|c| c.waiter);
        let requests = self.requests.drain().map(|(_, r)| r.waiter);
        completed.chain(requests).collect()
    }

    /// Registers a request in flight with the given ids, as if it had been
    /// sent; lets tests reproduce peers' ids (vectors). Not part of the API
    /// (feature `test-hooks`).
    ///
    /// # Errors
    ///
    /// [`RequestError::DuplicateId`] when an id is already in flight or
    /// given twice; [`RequestError::Full`] when its calls do not fit.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn insert_in_flight(
        &mut self,
        ids: Vec<Id>,
        waiter: W,
    ) -> Result<RequestKey, RequestError> {
        self.check_fresh(&ids)?;
        let needed = ids.len().min(self.max_in_flight.get());
        if needed > self.free_slots() {
            return Err(RequestError::Full {
                needed,
                free: self.free_slots(),
            });
        }
        self.register(ids, waiter)
    }

    /// Adds a request to the table; refuses an id already in flight, so
    /// that no pending call is ever overwritten.
    fn register(&mut self, ids: Vec<Id>, waiter: W) -> Result<RequestKey, RequestError> {
        self.check_fresh(&ids)?;
        let key = RequestKey(self.next_request);
        self.next_request += 1;
        for (index, id) in ids.iter().enumerate() {
            self.pending.insert(id.clone(), (key, index));
        }
        let slots = ids.len().min(self.max_in_flight.get());
        self.slots += slots;
        self.requests.insert(
            key,
            InFlight {
                ids,
                slots,
                waiter,
                abandoned: false,
            },
        );
        Ok(key)
    }

    fn check_fresh(&self, ids: &[Id]) -> Result<(), RequestError> {
        for (index, id) in ids.iter().enumerate() {
            if self.pending.contains_key(id) || ids[..index].contains(id) {
                return Err(RequestError::DuplicateId(id.clone()));
            }
        }
        Ok(())
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
        core.encode_request(&batch, &mut Vec::new(), ())
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
        core.encode_request(&batch, &mut Vec::new(), ())
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
        core.encode_request(&batch, &mut out, ()).expect("encodes");
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
            core.encode_request(&batch, &mut Vec::new(), ())
                .expect("encodes")
                .is_none()
        );
        assert!(matches!(
            core.handle_response(br#"[{"id":1,"data":0}]"#),
            Err(ProtocolError::Unsolicited)
        ));
    }

    /// A waiter that records when it is dropped.
    struct Waiter(std::rc::Rc<std::cell::Cell<u32>>);

    impl Drop for Waiter {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    fn call_batch(calls: usize) -> Batch {
        let mut batch = Batch::new();
        for _ in 0..calls {
            batch.call("S", "m", RawJson::empty_array());
        }
        batch
    }

    #[test]
    fn completion_hands_the_waiter_back_with_the_results() {
        let mut core: ClientCore<&str> = ClientCore::default();
        let first = core
            .encode_request(&call_batch(1), &mut Vec::new(), "first")
            .expect("encodes");
        core.encode_request(&call_batch(1), &mut Vec::new(), "second")
            .expect("encodes");
        core.handle_response(br#"[{"id":1,"data":0}]"#)
            .expect("valid");
        let done = core.poll_completion().expect("complete");
        assert_eq!((Some(done.request), done.waiter), (first, "first"));
        assert!(core.poll_completion().is_none());
    }

    #[test]
    fn results_parsed_before_the_core_complete_the_request() {
        let mut core = ClientCore::new();
        one_call(&mut core);
        let results = wire::parse_response(br#"[{"id":1,"data":"x"}]"#).expect("parses");
        core.handle_results(results).expect("matches");
        assert_eq!(core.in_flight(), 0);
        let done = core.poll_completion().expect("complete");
        assert_eq!(
            done.results[0].outcome.as_ref().expect("data").as_str(),
            "\"x\""
        );
        assert!(matches!(
            core.handle_results(Vec::new()),
            Err(ProtocolError::Message(MessageError::EmptyResponse))
        ));
    }

    #[test]
    fn abandoned_request_keeps_its_waiter_and_slot_until_its_answer() {
        let drops = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut core = ClientCore::with_max_in_flight(NonZeroUsize::new(2).expect("2"));
        let key = core
            .encode_request(&call_batch(1), &mut Vec::new(), Waiter(drops.clone()))
            .expect("encodes")
            .expect("a call");
        core.abandon(key);
        assert_eq!((drops.get(), core.free_slots()), (0, 1));
        assert!(!core.all_slots_abandoned());
        core.handle_response(br#"[{"id":1,"data":0}]"#)
            .expect("late answer still valid");
        assert!(core.poll_completion().is_none());
        assert_eq!((drops.get(), core.free_slots()), (1, 2));
    }

    #[test]
    fn requests_beyond_the_cap_are_refused_and_big_batches_are_clamped() {
        let mut core = ClientCore::with_max_in_flight(NonZeroUsize::new(2).expect("2"));
        assert_eq!(core.slots_for(&call_batch(5)), 2);
        let big = core
            .encode_request(&call_batch(5), &mut Vec::new(), ())
            .expect("a batch larger than the cap runs alone")
            .expect("calls");
        let mut out = Vec::new();
        let err = core
            .encode_request(&call_batch(1), &mut out, ())
            .expect_err("full");
        assert!(
            matches!(err, RequestError::Full { needed: 1, free: 0 }),
            "{err}"
        );
        assert!(out.is_empty(), "nothing written for a refused request");
        let mut notify = Batch::new();
        notify.notify("S", "m", RawJson::empty_array());
        assert!(
            core.encode_request(&notify, &mut Vec::new(), ())
                .expect("notifications take no slot")
                .is_none()
        );
        core.abandon(big);
        assert!(core.all_slots_abandoned());
    }

    #[test]
    fn fail_all_hands_back_every_waiter_abandoned_ones_included() {
        let mut core: ClientCore<u32> = ClientCore::default();
        for waiter in 0..3 {
            core.encode_request(&call_batch(2), &mut Vec::new(), waiter)
                .expect("encodes");
        }
        core.abandon(RequestKey(1));
        let mut waiters = core.fail_all();
        waiters.sort_unstable();
        assert_eq!(waiters, [0, 1, 2]);
        assert_eq!(
            (core.in_flight(), core.free_slots()),
            (0, DEFAULT_MAX_IN_FLIGHT)
        );
        assert!(matches!(
            core.handle_response(br#"[{"id":1,"data":0}]"#),
            Err(ProtocolError::Unsolicited)
        ));
    }

    #[test]
    fn an_id_given_twice_in_one_request_is_refused() {
        let mut core = ClientCore::new();
        let err = core
            .insert_in_flight(vec![Id::from(7), Id::from(7)], ())
            .expect_err("duplicate");
        assert!(matches!(err, RequestError::DuplicateId(id) if id == Id::from(7)));
        assert_eq!(
            (core.in_flight(), core.free_slots()),
            (0, DEFAULT_MAX_IN_FLIGHT)
        );
    }
}
