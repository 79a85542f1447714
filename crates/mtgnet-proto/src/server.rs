//! The server side of a connection, without IO: the per-request rules.
//!
//! Call order: feed each request payload to [`ServerCore::handle_request`];
//! the [`Request`] it yields says how many calls it holds (the server's
//! back-pressure counts them) and is then either run with
//! [`Request::respond`] or, when the server is shutting down before it
//! started, turned down with [`Request::refuse`]. Either way the output is
//! the response payload to frame and send, or `None` when the request needs
//! no response (it held only notifications).
//!
//! The rules kept here, so that every transport applies the same ones:
//! - a request holding more than `max_batch` calls runs none of them and
//!   answers each with `batch-too-large` (the batch guarantee still holds);
//! - an invalid call whose Id can be read gets an `invalid-call` result, an
//!   invalid notification nothing;
//! - a request refused at shutdown answers each call with `shutting-down`.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;

use crate::condition::{Condition, codes};
use crate::error::MessageError;
use crate::observe::CallObserver;
use crate::registry::Registry;
use crate::service::Peer;
use crate::wire::{self, Call, CallResult, InvalidCall};

/// Server state machine for the requests of one or many connections.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet_proto::server::ServerCore;
/// use mtgnet_proto::{Peer, Registry, Service};
///
/// let registry = Registry::new().with(
///     Service::new("Test").method("add", "Adds two integers.", |(a, b): (i64, i64)| async move { Ok(a + b) }),
/// );
/// let core = ServerCore::new(Arc::new(registry), 2);
///
/// let request = core.handle_request(br#"[{"service":"Test","method":"add","args":[2,3],"id":1}]"#).unwrap();
/// assert_eq!(request.calls(), 1);
/// let response = futures::executor::block_on(request.respond(Arc::new(Peer::default())));
/// assert_eq!(response.unwrap(), br#"[{"id":1,"data":5}]"#);
///
/// // Three calls where two are allowed: none runs, each gets an error.
/// let request = core.handle_request(br#"[{"service":"Test","method":"add","args":[1,1],"id":1},
///     {"service":"Test","method":"add","args":[1,1],"id":2},{"service":"Test","method":"add","args":[1,1],"id":3}]"#).unwrap();
/// let response = futures::executor::block_on(request.respond(Arc::new(Peer::default()))).unwrap();
/// assert_eq!(String::from_utf8(response).unwrap().matches("batch-too-large").count(), 3);
/// ```
#[derive(Clone)]
pub struct ServerCore {
    registry: Arc<Registry>,
    max_batch: usize,
    /// Told of every call run, when set.
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for ServerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCore")
            .field("registry", &self.registry)
            .field("max_batch", &self.max_batch)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl ServerCore {
    /// Serves `registry`, running requests of at most `max_batch` calls.
    pub fn new(registry: Arc<Registry>, max_batch: usize) -> ServerCore {
        ServerCore {
            registry,
            max_batch,
            observer: None,
        }
    }

    /// Tells `observer` of every call this core runs, from now on (see
    /// [`observe`](crate::observe)); it replaces any observer set before.
    #[must_use]
    pub fn observe(mut self, observer: Arc<dyn CallObserver>) -> ServerCore {
        self.observer = Some(observer);
        self
    }

    /// The most calls a request may hold.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The hosted services.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Parses one request payload.
    ///
    /// # Errors
    ///
    /// Everything PROTOCOL.md section 4 makes connection-fatal (see
    /// [`wire::parse_request`]): the connection should then be closed.
    pub fn handle_request(&self, payload: &[u8]) -> Result<Request, MessageError> {
        let calls = wire::parse_request(payload)?;
        Ok(Request {
            calls,
            registry: Arc::clone(&self.registry),
            max_batch: self.max_batch,
            observer: self.observer.clone(),
        })
    }
}

/// One parsed request, not yet run.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet_proto::server::ServerCore;
/// use mtgnet_proto::{codes, Condition, Registry};
///
/// let core = ServerCore::new(Arc::new(Registry::new()), 1024);
/// let request = core
///     .handle_request(br#"[{"service":"System","method":"rpcVersion","id":7},{"service":"System","method":"services"}]"#)
///     .unwrap();
/// // Shutting down before it started: the call is answered, the notification is not.
/// let response = request.refuse(Condition::new(codes::SHUTTING_DOWN, "the server is shutting down"));
/// assert_eq!(
///     response.unwrap(),
///     br#"[{"id":7,"error":{"message":"the server is shutting down","code":"shutting-down"}}]"#,
/// );
/// ```
pub struct Request {
    calls: Vec<Result<Call, InvalidCall>>,
    registry: Arc<Registry>,
    max_batch: usize,
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("calls", &self.calls)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// Calls and notifications in the request (invalid ones included): what
    /// it weighs against a limit on calls being handled.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Runs the request's calls concurrently; yields the response payload,
    /// or `None` when no call needs an answer.
    ///
    /// A request over the batch limit runs nothing: each of its calls is
    /// answered with `batch-too-large`.
    pub fn respond(
        self,
        peer: Arc<Peer>,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send + 'static + use<> {
        if self.calls.len() <= self.max_batch {
            return self
                .registry
                .respond_observed(self.calls, peer, self.observer.as_ref())
                .left_future();
        }
        let message = format!(
            "a request may hold at most {} calls; this one holds {}",
            self.max_batch,
            self.calls.len()
        );
        let response = self.refuse(Condition::new(codes::BATCH_TOO_LARGE, message));
        std::future::ready(response).right_future()
    }

    /// Runs nothing and answers every call of the request with `condition`
    /// (notifications get nothing); `None` when no call needs an answer.
    pub fn refuse(self, condition: Condition) -> Option<Vec<u8>> {
        let results: Vec<CallResult> = self
            .calls
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(call) => call.id,
                Err(invalid) => invalid.id,
            })
            .map(|id| CallResult {
                id,
                outcome: Err(condition.clone()),
                warnings: Vec::new(),
            })
            .collect();
        wire::response_payload(&results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn batch_at_the_limit_runs_and_one_over_runs_nothing() {
        let core = ServerCore::new(Arc::new(Registry::new()), 2);
        let two = br#"[{"service":"System","method":"rpcVersion","id":1},{"service":"System","method":"rpcVersion","id":2}]"#;
        let response = block_on(
            core.handle_request(two)
                .expect("valid")
                .respond(Arc::default()),
        )
        .expect("answered");
        assert!(!String::from_utf8_lossy(&response).contains("error"));

        let three = br#"[{"service":"System","method":"rpcVersion","id":1},{"service":"System","method":"rpcVersion"},{"method":"x","id":3}]"#;
        let response = block_on(
            core.handle_request(three)
                .expect("valid")
                .respond(Arc::default()),
        )
        .expect("answered");
        let text = String::from_utf8(response).expect("UTF-8");
        // Both calls (the invalid one too) answered, the notification not.
        assert_eq!(text.matches("batch-too-large").count(), 2, "{text}");
        assert!(
            text.contains(r#""id":1"#) && text.contains(r#""id":3"#),
            "{text}"
        );
    }

    #[test]
    fn refusing_a_notification_only_request_answers_nothing() {
        let core = ServerCore::new(Arc::new(Registry::new()), 8);
        let request = core
            .handle_request(br#"[{"service":"System","method":"services"}]"#)
            .expect("valid");
        assert_eq!(request.calls(), 1);
        assert!(
            request
                .refuse(Condition::new(codes::SHUTTING_DOWN, "bye"))
                .is_none()
        );
    }
}
