//! Authorization by the peer's identity key, per service and method: the
//! [`Authorize`] layer and the [`Authorized`] service it makes.
//!
//! An allow-list: a call is run when a rule for its service and method
//! admits the peer, and answered with the `not-authorized` condition
//! otherwise (the connection stays up). Calls no rule names are refused,
//! `System` included: allow what you mean to expose.
//!
//! The key is the one the encryption handshake authenticated: a peer on a
//! plain connection has none, and only [`Authorize::allow_anyone`] rules
//! admit it.

mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use mtgnet_proto::dispatch::CallRequest;
use mtgnet_proto::{Condition, codes};
use tower_service::Service;

pub use self::future::ResponseFuture;
pub use self::layer::Authorize;
use self::layer::Rules;

/// A service that runs only the calls an [`Authorize`] policy admits.
///
/// Made by the [`Authorize`] layer:
///
/// ```
/// use mtgnet::authorize::{Authorize, Authorized};
/// use mtgnet::Dispatch;
/// use tower_layer::Layer;
///
/// let service: Authorized<Dispatch> = Authorize::new().allow_anyone("System", "*").layer(Dispatch::default());
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct Authorized<S> {
    inner: S,
    rules: Arc<Rules>,
}

impl<S> Authorized<S> {
    /// Wraps `inner` with the policy of `authorize`.
    pub fn new(inner: S, authorize: &Authorize) -> Authorized<S> {
        Authorized {
            inner,
            rules: Arc::clone(&authorize.rules),
        }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S> Service<CallRequest> for Authorized<S>
where
    S: Service<CallRequest>,
    S::Error: From<Condition>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: CallRequest) -> Self::Future {
        let identity = request.peer().identity.as_ref();
        if self
            .rules
            .admits(request.service(), request.method(), identity)
        {
            return ResponseFuture::run(self.inner.call(request));
        }
        let condition = Condition::new(
            codes::NOT_AUTHORIZED,
            format!(
                "not authorized to call {}.{}",
                request.service(),
                request.method()
            ),
        );
        ResponseFuture::refuse(condition.into())
    }
}
