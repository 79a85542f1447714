//! The byte budget of one server connection: how many bytes its requests
//! being handled and its replies waiting to be written hold at once.
//!
//! Like a flow-control window (h2's `flow_control.rs`), bytes are spent
//! when a request is read and given back when its reply has been written.
//! Unlike a window, spending never waits: a handler that has produced its
//! reply cannot give the memory back by waiting, and making it wait for
//! budget while others hold the rest could deadlock every task of the
//! connection. Only the reader waits: it reads nothing more from the socket
//! while the connection holds its budget or more. What a connection holds is
//! therefore bounded by the budget, plus the one request frame being read
//! (at most `max_frame`), plus whatever the replies of the requests already
//! admitted exceed those requests by.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A connection's byte budget, shared by its reader, request tasks and writer.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
    /// Wakes the reader when bytes are given back.
    drained: Notify,
    /// The most ever held at once, for tests and diagnostics.
    peak: AtomicUsize,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            limit,
            used: AtomicUsize::new(0),
            drained: Notify::new(),
            peak: AtomicUsize::new(0),
        })
    }

    /// Spends `bytes` now, whatever the balance; they are given back when
    /// the returned [`Charge`] is dropped.
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.adjust(0, bytes);
        Charge {
            budget: Arc::clone(self),
            bytes,
        }
    }

    /// Completes once the connection holds less than its budget.
    ///
    /// Cancel-safe. Only one task (the reader) is expected to wait.
    pub(crate) async fn below_limit(&self) {
        loop {
            // Registered before checking, so a drop between the check and
            // the wait is not missed (`notify_one` keeps a permit).
            let drained = self.drained.notified();
            if self.used() < self.limit {
                return;
            }
            drained.await;
        }
    }

    /// Whether the connection holds less than its budget now.
    pub(crate) fn is_below_limit(&self) -> bool {
        self.used() < self.limit
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most bytes held at once so far.
    #[cfg(test)]
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn adjust(&self, release: usize, spend: usize) {
        if spend >= release {
            let now = self.used.fetch_add(spend - release, Ordering::AcqRel) + (spend - release);
            self.peak.fetch_max(now, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(release - spend, Ordering::AcqRel);
            self.drained.notify_one();
        }
    }
}

/// Bytes spent from a [`ByteBudget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Charge {
    /// Changes what this charge holds to `bytes` (a request's charge
    /// becoming its reply's), without waiting.
    pub(crate) fn resize(&mut self, bytes: usize) {
        self.budget.adjust(self.bytes, bytes);
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.adjust(self.bytes, 0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn reader_waits_while_the_budget_is_spent_and_resumes_when_it_drains() {
        let budget = ByteBudget::new(100);
        let mut request = budget.charge(60);
        budget.below_limit().await;
        let reply = budget.charge(50);
        assert_eq!(budget.used(), 110);
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.below_limit()).await;
        assert!(
            waiting.is_err(),
            "110 of 100 bytes held: the reader must wait"
        );

        request.resize(10);
        assert_eq!(budget.used(), 60);
        tokio::time::timeout(Duration::from_secs(5), budget.below_limit())
            .await
            .expect("below the limit again");
        drop((request, reply));
        assert_eq!((budget.used(), budget.peak()), (0, 110));
    }

    #[tokio::test]
    async fn a_charge_larger_than_the_budget_is_allowed_alone() {
        let budget = ByteBudget::new(10);
        let big = budget.charge(1000);
        assert_eq!(budget.used(), 1000);
        let wait = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.below_limit().await })
        };
        tokio::task::yield_now().await;
        assert!(!wait.is_finished());
        drop(big);
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("woken when the big charge is given back")
            .expect("task");
    }
}
