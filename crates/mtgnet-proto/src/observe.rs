//! Watching calls as they run, for metrics: which method each call went
//! to and how it ended, without any cost when nothing watches.
//!
//! A [`CallObserver`] given to
//! [`ServerCore::observe`](crate::server::ServerCore::observe) hears of every
//! call the core runs: [`CallObserver::call_started`] as it starts (the
//! observer reads its own clock: this crate reads none) and
//! [`CallObserver::call_finished`] with its [`CallOutcome`]. A call is named
//! by its [`Route`], a position in [`Registry::routes`](crate::Registry::routes),
//! so that an observer can prepare whatever it needs per method once, and
//! nothing per call: the names a peer sends never reach it, and so never
//! make its label set grow.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Instant;
//! use mtgnet_proto::observe::{CallObserver, CallOutcome, Route};
//! use mtgnet_proto::server::ServerCore;
//! use mtgnet_proto::{Peer, Registry, Service};
//!
//! /// Counts the calls of each method; the last slot counts unknown ones.
//! struct Counts(Vec<AtomicUsize>);
//!
//! impl CallObserver for Counts {
//!     fn call_started(&self, _: Option<Route>) -> Instant {
//!         Instant::now()
//!     }
//!     fn call_finished(&self, route: Option<Route>, _: Instant, _: CallOutcome) {
//!         let slot = route.map_or(self.0.len() - 1, Route::index);
//!         self.0[slot].fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let registry = Arc::new(Registry::new().with(
//!     Service::new("Test").method("add", "Adds.", |(a, b): (i64, i64)| async move { Ok(a + b) }),
//! ));
//! let routes = registry.routes();
//! assert_eq!(routes[0], ("System", "methods"));
//! let add = routes.iter().position(|r| *r == ("Test", "add")).unwrap();
//!
//! let counts = Arc::new(Counts((0..=routes.len()).map(|_| AtomicUsize::new(0)).collect()));
//! let core = ServerCore::new(Arc::clone(&registry), 16).observe(counts.clone());
//! let request = core
//!     .handle_request(br#"[{"service":"test","method":"ADD","args":[1,2],"id":1},{"service":"Nope","method":"x","id":2}]"#)
//!     .unwrap();
//! futures::executor::block_on(request.respond(Arc::new(Peer::default())));
//! assert_eq!(counts.0[add].load(Ordering::Relaxed), 1);
//! assert_eq!(counts.0[routes.len()].load(Ordering::Relaxed), 1); // `Nope.x`
//! ```

use std::time::Instant;

use crate::condition::codes;
use crate::service::Outcome;

/// A method a [`Registry`](crate::Registry) answers: its position in
/// [`Registry::routes`](crate::Registry::routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route(pub(crate) usize);

impl Route {
    /// The position in [`Registry::routes`](crate::Registry::routes).
    pub fn index(self) -> usize {
        self.0
    }
}

/// How a call ended, as metrics count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallOutcome {
    /// The call returned data.
    Ok,
    /// The call ran and failed: its handler (or a layer around it)
    /// returned a condition, or it panicked.
    Error,
    /// The call could not run: it is malformed (`invalid-call`), names no
    /// hosted service or method (`unknown-service`, `unknown-method`), or
    /// its arguments do not fit the method (`invalid-arguments`).
    Invalid,
}

impl CallOutcome {
    /// The outcome of a call that ended with `outcome`.
    ///
    /// ```
    /// use mtgnet_proto::observe::CallOutcome;
    /// use mtgnet_proto::{codes, Condition, RawJson};
    ///
    /// assert_eq!(CallOutcome::of(&Ok(RawJson::empty_array())), CallOutcome::Ok);
    /// assert_eq!(CallOutcome::of(&Err(Condition::new("boom", "failed"))), CallOutcome::Error);
    /// assert_eq!(CallOutcome::of(&Err(Condition::new(codes::UNKNOWN_METHOD, "no"))), CallOutcome::Invalid);
    /// ```
    pub fn of(outcome: &Outcome) -> CallOutcome {
        match outcome {
            Ok(_) => CallOutcome::Ok,
            Err(condition) => match condition.code.as_str() {
                Some(
                    codes::INVALID_CALL
                    | codes::UNKNOWN_SERVICE
                    | codes::UNKNOWN_METHOD
                    | codes::INVALID_ARGUMENTS,
                ) => CallOutcome::Invalid,
                _ => CallOutcome::Error,
            },
        }
    }

    /// `"ok"`, `"error"` or `"invalid"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Invalid => "invalid",
        }
    }
}

/// Hears of every call a [`ServerCore`](crate::server::ServerCore) runs.
///
/// Both methods are called on the task that runs the call, so they should
/// be cheap and must not block. A call without a route (`None`) names no
/// hosted method, or could not be read at all; it never runs, and its
/// outcome is [`CallOutcome::Invalid`]. Calls refused as a whole
/// (`batch-too-large`, `shutting-down`) are not reported.
pub trait CallObserver: Send + Sync + 'static {
    /// A call to `route` starts; what this returns is handed back to
    /// [`CallObserver::call_finished`].
    fn call_started(&self, route: Option<Route>) -> Instant;

    /// The call to `route`, started at `started`, ended with `outcome`.
    fn call_finished(&self, route: Option<Route>, started: Instant, outcome: CallOutcome);
}
