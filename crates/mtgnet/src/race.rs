//! Waiting for the first of several futures, without `tokio::select!`: the
//! library does not force tokio's `macros` feature on its users.
//!
//! Unlike `tokio::select!`, which polls its branches in a random order,
//! [`first_of`] is biased: when both futures are ready, the first one wins.
//! In a loop that races a stop signal against a stream of work, the stop
//! signal goes first, or a busy stream could keep it from ever being seen.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

pub(crate) use futures::future::Either;
use tokio::task::{JoinError, JoinSet};

/// Waits until `a` or `b` completes and drops the other one before it
/// returns, as `tokio::select!` does. When both are ready, `a` wins. Three
/// or more futures nest: `first_of(a, first_of(b, c))`.
pub(crate) async fn first_of<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(output) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(output));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

/// The next task of `set` to end; never, while the set is empty. Raced
/// against other futures, it is what the `select!` branch
/// `Some(ended) = set.join_next()` was: out of the race when there is
/// nothing to reap.
pub(crate) async fn next_ended<T: 'static>(set: &mut JoinSet<T>) -> Result<T, JoinError> {
    match set.join_next().await {
        Some(ended) => ended,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Sets its flag when dropped.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn the_first_wins_when_both_are_ready() {
        for _ in 0..100 {
            assert!(matches!(
                block_on(first_of(ready(1), ready("two"))),
                Either::Left(1)
            ));
        }
    }

    #[test]
    fn the_second_wins_when_the_first_is_not_ready() {
        assert!(matches!(
            block_on(first_of(pending::<()>(), ready(2))),
            Either::Right(2)
        ));
    }

    #[test]
    fn the_loser_is_dropped_before_it_returns() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Dropped(Arc::clone(&dropped));
        let loser = async move {
            let _guard = guard;
            pending::<()>().await;
        };
        block_on(async {
            assert!(matches!(first_of(ready(()), loser).await, Either::Left(())));
            assert!(dropped.load(Ordering::SeqCst));
        });
    }

    #[test]
    fn an_empty_set_never_ends_a_race() {
        block_on(async {
            let mut set = JoinSet::<()>::new();
            let raced = first_of(next_ended(&mut set), tokio::task::yield_now()).await;
            assert!(matches!(raced, Either::Right(())));
            set.spawn(async {});
            let raced = first_of(next_ended(&mut set), pending::<()>()).await;
            assert!(matches!(raced, Either::Left(Ok(()))));
        });
    }
}
