//! A `tracing` span around every call: the [`Trace`] layer and the
//! [`Traced`] service it makes.
//!
//! Each call runs inside a span named `mtgnet.call` with the fields
//! `service`, `method` (as the peer sent them), `id` (as JSON; absent for a
//! notification), `peer` (the identity key in base64 on an encrypted
//! connection, else the address), and, once the call is done,
//! `duration_us` and `outcome` (`"ok"`, or the error's code). An event
//! `call done` at the span's level closes it, so that a plain `fmt`
//! subscriber prints one line per call with every field.

mod future;
mod layer;

use std::task::{Context, Poll};
use std::time::Instant;

use mtgnet_proto::dispatch::CallRequest;
use tower_service::Service;
use tracing::{Level, Span, field};

pub use self::future::ResponseFuture;
pub use self::layer::Trace;

/// A service that runs each call inside its own span.
///
/// Made by the [`Trace`] layer:
///
/// ```
/// use mtgnet::trace::{Trace, Traced};
/// use mtgnet::Dispatch;
/// use tower_layer::Layer;
///
/// let service: Traced<Dispatch> = Trace::new().layer(Dispatch::default());
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct Traced<S> {
    inner: S,
    level: Level,
}

impl<S> Traced<S> {
    /// Wraps `inner`, with spans at `level`.
    pub fn new(inner: S, level: Level) -> Traced<S> {
        Traced { inner, level }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S> Service<CallRequest> for Traced<S>
where
    S: Service<CallRequest>,
    S::Error: OutcomeCode,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: CallRequest) -> Self::Future {
        let start = Instant::now();
        let span = call_span(self.level, &request);
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, self.level, start)
    }
}

/// The span of one call, its end fields still empty.
fn call_span(level: Level, request: &CallRequest) -> Span {
    macro_rules! span_at {
        ($level:expr) => {
            tracing::span!(
                $level,
                "mtgnet.call",
                service = request.service(),
                method = request.method(),
                id = field::Empty,
                peer = field::Empty,
                duration_us = field::Empty,
                outcome = field::Empty,
            )
        };
    }
    let span = match level {
        Level::ERROR => span_at!(Level::ERROR),
        Level::WARN => span_at!(Level::WARN),
        Level::INFO => span_at!(Level::INFO),
        Level::DEBUG => span_at!(Level::DEBUG),
        _ => span_at!(Level::TRACE),
    };
    // Only formatted when someone listens.
    if !span.is_disabled() {
        if let Some(id) = request.id() {
            span.record("id", id.to_json());
        }
        let peer = request.peer();
        match (peer.identity, peer.address) {
            (Some(key), _) => span.record("peer", field::display(key)),
            (None, Some(address)) => span.record("peer", field::display(address)),
            (None, None) => span.record("peer", "unknown"),
        };
    }
    span
}

/// What the `outcome` field says for an error: its code, for a
/// [`Condition`](mtgnet_proto::Condition) (also one inside a boxed error),
/// else the error's text.
pub trait OutcomeCode {
    /// The `outcome` field's value.
    fn outcome_code(&self) -> String;
}

impl OutcomeCode for mtgnet_proto::Condition {
    fn outcome_code(&self) -> String {
        self.code_text()
    }
}

impl OutcomeCode for mtgnet_proto::dispatch::BoxError {
    fn outcome_code(&self) -> String {
        match self.downcast_ref::<mtgnet_proto::Condition>() {
            Some(condition) => condition.code_text(),
            None => self.to_string(),
        }
    }
}
