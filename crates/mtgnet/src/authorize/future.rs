use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

pin_project! {
    /// The future of [`Authorized`](super::Authorized): the inner service's
    /// future, or the refusal.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F, E> {
        Run { #[pin] future: F },
        Refused { error: Option<E> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn run(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Run { future },
        }
    }

    pub(super) fn refuse(error: E) -> Self {
        ResponseFuture {
            kind: Kind::Refused { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Run { future } => future.poll(cx),
            KindProj::Refused { error } => match error.take() {
                Some(error) => Poll::Ready(Err(error)),
                None => panic!("`authorize::ResponseFuture` polled after completion"),
            },
        }
    }
}
