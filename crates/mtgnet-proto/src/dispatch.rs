//! The seam for middleware: every call, routed, as a [`tower_service::Service`]
//! request, so that `tower` layers (timeouts, concurrency and rate limits,
//! authorization, tracing) wrap per-call dispatch as they are.
//!
//! [`Registry::layer`](crate::Registry::layer) installs a layer around
//! [`Dispatch`], the innermost service: it runs the handler (or built-in
//! answer) that the registry has already chosen for the [`CallRequest`].
//! A registry without layers does not go through this module at all: it
//! runs the handler directly, so the seam costs nothing unused.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures::future::BoxFuture;

use crate::condition::{Condition, codes};
use crate::id::Id;
use crate::json::RawJson;
use crate::service::{Context, HandlerFn, Outcome, Peer};

/// The error type of a layered stack before it is turned into a
/// [`Condition`]: what `tower`'s own layers (timeout, load shedding) return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a call resolved to before the layers run.
pub(crate) enum Target {
    /// A registered handler.
    Handler(HandlerFn),
    /// Already answered: a built-in method, or an unknown service or method.
    Ready(Outcome),
}

/// One call on its way through the layers to its handler.
///
/// The names are as the peer sent them (they match case-insensitively):
/// compare them with [`str::eq_ignore_ascii_case`].
///
/// ```
/// use std::sync::Arc;
/// use std::task::{Context as TaskContext, Poll};
/// use futures::future::BoxFuture;
/// use mtgnet_proto::dispatch::{CallRequest, Dispatch};
/// use mtgnet_proto::{wire, Condition, Peer, RawJson, Registry, Service};
///
/// /// Refuses calls whose first argument is a negative number.
/// #[derive(Clone)]
/// struct NoNegatives<S>(S);
///
/// impl<S> tower_service::Service<CallRequest> for NoNegatives<S>
/// where
///     S: tower_service::Service<CallRequest, Response = RawJson, Error = Condition>,
///     S::Future: Send + 'static,
/// {
///     type Response = RawJson;
///     type Error = Condition;
///     type Future = BoxFuture<'static, Result<RawJson, Condition>>;
///
///     fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Condition>> {
///         self.0.poll_ready(cx)
///     }
///
///     fn call(&mut self, request: CallRequest) -> Self::Future {
///         let first: Option<(i64,)> = request.args().deserialize().ok();
///         if matches!(first, Some((n,)) if n < 0) {
///             return Box::pin(std::future::ready(Err(Condition::new("negative", "no negatives here"))));
///         }
///         Box::pin(self.0.call(request))
///     }
/// }
///
/// let registry = Registry::new()
///     .with(Service::new("Math").method("neg", "Negates.", |(n,): (i64,)| async move { Ok(-n) }))
///     .layer(tower_layer::layer_fn(NoNegatives));
/// let calls = wire::parse_request(br#"[{"service":"Math","method":"neg","args":[-1],"id":1},
///     {"service":"math","method":"NEG","args":[2],"id":2}]"#).unwrap();
/// let response = futures::executor::block_on(registry.respond(calls, Arc::new(Peer::default())));
/// assert_eq!(
///     response.unwrap(),
///     br#"[{"id":1,"error":{"message":"no negatives here","code":"negative"}},{"id":2,"data":-2}]"#,
/// );
/// ```
pub struct CallRequest {
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) id: Option<Id>,
    pub(crate) args: RawJson,
    pub(crate) context: Context,
    pub(crate) target: Target,
}

impl CallRequest {
    /// The service name, as sent.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The method name, as sent.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The call's id; `None` for a notification.
    pub fn id(&self) -> Option<&Id> {
        self.id.as_ref()
    }

    /// The positional arguments, a JSON array, unparsed.
    pub fn args(&self) -> &RawJson {
        &self.args
    }

    /// The call's context: the peer, and the warnings added so far.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The peer that made the call (shortcut for `context().peer()`).
    pub fn peer(&self) -> &Peer {
        self.context.peer()
    }
}

impl std::fmt::Debug for CallRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRequest")
            .field("service", &self.service)
            .field("method", &self.method)
            .field("id", &self.id)
            .field("peer", self.context.peer())
            .finish_non_exhaustive()
    }
}

/// The innermost service of a layered registry: runs the handler chosen
/// for the request, or the layers installed before (see
/// [`Registry::layer`](crate::Registry::layer)).
///
/// Always ready; cheap to clone.
#[derive(Clone, Default)]
pub struct Dispatch {
    /// The layers installed before, already wrapped around the handler.
    inner: Option<Stack>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("layered", &self.inner.is_some())
            .finish()
    }
}

impl Dispatch {
    pub(crate) fn new(inner: Option<Stack>) -> Dispatch {
        Dispatch { inner }
    }
}

impl tower_service::Service<CallRequest> for Dispatch {
    type Response = RawJson;
    type Error = Condition;
    type Future = DispatchFuture;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Condition>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: CallRequest) -> DispatchFuture {
        let future = match (&self.inner, request.target) {
            (Some(stack), target) => stack.run(CallRequest { target, ..request }),
            (None, Target::Handler(handler)) => handler(request.context, request.args),
            (None, Target::Ready(outcome)) => return DispatchFuture::Ready(Some(outcome)),
        };
        DispatchFuture::Running(future)
    }
}

/// The future of [`Dispatch`]: the handler's outcome.
#[must_use = "futures do nothing unless polled"]
pub enum DispatchFuture {
    /// A handler (or inner layers) running.
    #[doc(hidden)]
    Running(BoxFuture<'static, Outcome>),
    /// Answered already; `None` once taken.
    #[doc(hidden)]
    Ready(Option<Outcome>),
}

impl Future for DispatchFuture {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Outcome> {
        match self.get_mut() {
            DispatchFuture::Running(future) => future.as_mut().poll(cx),
            DispatchFuture::Ready(outcome) => Poll::Ready(outcome.take().unwrap_or_else(|| {
                Err(Condition::new(
                    codes::INTERNAL_ERROR,
                    "a dispatch future was polled after it completed",
                ))
            })),
        }
    }
}

impl std::fmt::Debug for DispatchFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DispatchFuture")
    }
}

/// A layered stack, type-erased: each call clones the stack (as tower's
/// `oneshot` expects: a layer such as a concurrency limit keeps what
/// `poll_ready` reserved in the clone that is then called), waits until it
/// is ready, and calls it.
#[derive(Clone)]
pub(crate) struct Stack(Arc<dyn Fn(CallRequest) -> BoxFuture<'static, Outcome> + Send + Sync>);

impl Stack {
    pub(crate) fn new<S>(service: S) -> Stack
    where
        S: tower_service::Service<CallRequest, Response = RawJson> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Stack(Arc::new(move |request: CallRequest| {
            let mut service = service.clone();
            Box::pin(async move {
                futures::future::poll_fn(|cx| service.poll_ready(cx).map_err(into_condition))
                    .await?;
                service.call(request).await.map_err(into_condition)
            })
        }))
    }

    pub(crate) fn run(&self, request: CallRequest) -> BoxFuture<'static, Outcome> {
        (self.0)(request)
    }
}

/// A layer's error as a result's condition: a [`Condition`] as it is (an
/// authorization layer's refusal), anything else (a `tower` timeout's
/// `Elapsed`, an overloaded service) as `internal-error` with the error's
/// text as the message.
pub fn into_condition<E: Into<BoxError>>(error: E) -> Condition {
    match error.into().downcast::<Condition>() {
        Ok(condition) => *condition,
        Err(other) => Condition::new(codes::INTERNAL_ERROR, other.to_string()),
    }
}
