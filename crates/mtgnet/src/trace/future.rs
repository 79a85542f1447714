use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;
use tracing::{Level, Span};

use super::OutcomeCode;

pin_project! {
    /// The future of [`Traced`](super::Traced): the inner future, polled
    /// inside the call's span, which it completes with the duration and
    /// the outcome.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        level: Level,
        start: Instant,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, span: Span, level: Level, start: Instant) -> Self {
        ResponseFuture {
            inner,
            span,
            level,
            start,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: OutcomeCode,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        if !this.span.is_disabled() {
            let micros = u64::try_from(this.start.elapsed().as_micros()).unwrap_or(u64::MAX);
            this.span.record("duration_us", micros);
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.outcome_code(),
            };
            this.span.record("outcome", outcome.as_str());
            match *this.level {
                Level::ERROR => tracing::error!("call done"),
                Level::WARN => tracing::warn!("call done"),
                Level::INFO => tracing::info!("call done"),
                Level::DEBUG => tracing::debug!("call done"),
                _ => tracing::trace!("call done"),
            }
        }
        Poll::Ready(result)
    }
}
