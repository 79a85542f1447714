//! The reconnect policy of a client (exponential backoff with jitter) and
//! the states a client goes through. The driver that follows the policy
//! lives in `driver.rs`; this module only computes (no clock, no socket).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{AuthError, ConfigError, Error, PeerError};

/// How a [`Client`](crate::Client) reconnects when its connection drops:
/// exponential backoff with jitter, until a connection works again or the
/// policy gives up. Set it with
/// [`ClientConfig::reconnect`](crate::ClientConfig::reconnect).
///
/// Attempt *n* (counted from 1 since the last working connection) waits a
/// random delay between half and all of `initial × 2ⁿ⁻¹`, capped at the
/// maximum ([`Reconnect::delay_range`]), then connects and runs the
/// handshake. The jitter spreads the clients of a restarted server over
/// time instead of sending them all back at the same instant.
///
/// A connection counts as working, and the count starts again from 1,
/// once it has answered a call or stayed up for the maximum delay; a
/// server that accepts the handshake and then drops every connection at
/// once (as a v2 server does to a client key it does not authorize) is
/// thus retried with growing delays, and given up on, like one that
/// refuses connections.
///
/// Defaults: 100 ms initial delay, 30 s maximum, never gives up.
///
/// ```
/// use std::time::Duration;
/// use mtgnet::{ClientConfig, Reconnect};
///
/// let policy = Reconnect::new()
///     .initial_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(5))
///     .give_up_after(10);
/// assert_eq!(policy.delay_range(1), Duration::from_millis(25)..=Duration::from_millis(50));
/// assert_eq!(policy.delay_range(3), Duration::from_millis(100)..=Duration::from_millis(200));
/// assert_eq!(policy.delay_range(9), Duration::from_millis(2500)..=Duration::from_secs(5));
///
/// let config = ClientConfig::plain().reconnect(policy);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    initial: Duration,
    max: Duration,
    /// `None`: never.
    give_up_after: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect::new()
    }
}

impl Reconnect {
    /// 100 ms initial delay, 30 s maximum, never gives up.
    pub fn new() -> Reconnect {
        Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            give_up_after: None,
        }
    }

    /// The delay before the first attempt (default 100 ms), doubled for
    /// each further one. Zero is refused when the client is created.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Reconnect {
        self.initial = delay;
        self
    }

    /// The longest delay between two attempts (default 30 s); also how
    /// long a connection must stay up to count as working without
    /// answering a call. Less than the initial delay is refused when the
    /// client is created.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Reconnect {
        self.max = delay;
        self
    }

    /// Gives up after this many attempts in a row have failed (`None`,
    /// the default: never). The client then fails for good with
    /// [`Error::GaveUp`]: every waiting call and every later one fails
    /// with it. Zero is refused when the client is created.
    #[must_use]
    pub fn give_up_after(mut self, attempts: impl Into<Option<u32>>) -> Reconnect {
        self.give_up_after = attempts.into();
        self
    }

    /// The bounds of the delay before attempt `attempt` (counted from 1;
    /// 0 counts as 1): from half of `initial × 2^(attempt − 1)`, capped at
    /// the maximum delay, to all of it.
    pub fn delay_range(&self, attempt: u32) -> RangeInclusive<Duration> {
        let doublings = attempt.saturating_sub(1);
        let full = self
            .initial
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max);
        full / 2..=full
    }

    /// The delay before attempt `attempt`: a point of
    /// [`delay_range`](Reconnect::delay_range) chosen by `random` (any
    /// value; uniformly random values give uniformly spread delays).
    pub(crate) fn delay(&self, attempt: u32, random: u64) -> Duration {
        let range = self.delay_range(attempt);
        let (low, high) = (*range.start(), *range.end());
        // At most u64::MAX ns (584 years) of jitter, so that the product
        // below fits a u128.
        let span = u128::min((high - low).as_nanos(), u128::from(u64::MAX));
        let jitter = (span * u128::from(random)) >> 64;
        low.saturating_add(Duration::from_nanos(
            u64::try_from(jitter).unwrap_or(u64::MAX),
        ))
    }

    /// Whether `attempts` failed attempts in a row are enough to give up.
    pub(crate) fn exhausted(&self, attempts: u32) -> bool {
        self.give_up_after.is_some_and(|limit| attempts >= limit)
    }

    /// How long a connection must stay up to count as working.
    pub(crate) fn proven_after(&self) -> Duration {
        self.max
    }

    /// Checks that the policy can work: delays above zero, the maximum
    /// not below the initial delay, at least one attempt.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.initial.is_zero() {
            return Err(ConfigError::OutOfRange {
                setting: "initial_delay",
                value: "0s".to_owned(),
                expected: "more than zero".to_owned(),
            });
        }
        if self.max < self.initial {
            return Err(ConfigError::OutOfRange {
                setting: "max_delay",
                value: format!("{:?}", self.max),
                expected: format!("at least the initial delay ({:?})", self.initial),
            });
        }
        if self.give_up_after == Some(0) {
            return Err(ConfigError::OutOfRange {
                setting: "give_up_after",
                value: "0".to_owned(),
                expected: "at least 1 (or None: never give up)".to_owned(),
            });
        }
        Ok(())
    }
}

/// Where a [`Client`](crate::Client) stands: see
/// [`Client::state`](crate::Client::state) and
/// [`Client::state_changes`](crate::Client::state_changes).
///
/// ```text
///   Connected --(connection drops, with a reconnect policy)--> Reconnecting { attempt: 1, 2, ... }
///   Reconnecting --(connected, handshake done)--> Connected
///   Reconnecting --(policy gives up, or the server's key is refused)--> Failed(reason)
///   Connected --(connection drops, no reconnect policy)--> Failed(reason)
///   any --(Client::close, or every Client handle dropped)--> Closed
/// ```
///
/// `Failed` and `Closed` are final: every call fails from then on.
///
/// ```
/// use mtgnet::{ClientState, Error};
///
/// fn describe(state: &ClientState) -> String {
///     match state {
///         ClientState::Connected => "connected".to_owned(),
///         ClientState::Reconnecting { attempt } => format!("reconnecting (attempt {attempt})"),
///         ClientState::Failed(reason) => format!("failed: {reason}"),
///         ClientState::Closed => "closed".to_owned(),
///         _ => "unknown".to_owned(),
///     }
/// }
/// assert_eq!(describe(&ClientState::Reconnecting { attempt: 2 }), "reconnecting (attempt 2)");
/// assert!(ClientState::Failed(std::sync::Arc::new(Error::Closed)).is_final());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientState {
    /// A connection is up: calls go out at once.
    Connected,
    /// The connection dropped and the client is reconnecting: it waits
    /// before attempt `attempt` (counted from 1) or is making it. New
    /// calls wait for the next connection, within their call timeout.
    Reconnecting {
        /// The attempt waited for or under way, counted from 1 since the
        /// last working connection.
        attempt: u32,
    },
    /// No connection will come any more: the connection dropped without a
    /// reconnect policy, the policy gave up ([`Error::GaveUp`]), or the
    /// server failed to prove an identity the client accepts on a
    /// reconnect ([`AuthError::NotAuthorized`](crate::AuthError::NotAuthorized),
    /// [`AuthError::InvalidSignature`](crate::AuthError::InvalidSignature)).
    /// Every call fails with this reason.
    Failed(Arc<Error>),
    /// Closed by this side: [`Client::close`](crate::Client::close), or
    /// every `Client` handle dropped. Every call fails with
    /// [`Error::Closed`].
    Closed,
}

impl ClientState {
    /// Whether the state is final (`Failed` or `Closed`): no connection
    /// will come any more.
    pub fn is_final(&self) -> bool {
        matches!(self, ClientState::Failed(_) | ClientState::Closed)
    }
}

/// Whether a failed reconnect attempt means no later one can succeed
/// without someone changing something: the server was reached but did not
/// prove an identity the client accepts, or speaks a version it refuses
/// to fall back to. A changed server key is not a transient fault.
pub(crate) fn is_permanent(error: &Error) -> bool {
    use crate::error::HandshakeFailure;
    matches!(
        error,
        Error::Auth(AuthError::NotAuthorized(_) | AuthError::InvalidSignature)
            | Error::Peer(PeerError::Handshake(
                HandshakeFailure::Authentication | HandshakeFailure::OnlyV1
            ))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_from_the_initial_delay_up_to_the_maximum() {
        let policy = Reconnect::new()
            .initial_delay(100 * MS)
            .max_delay(1000 * MS);
        let full: Vec<Duration> = (1..=6).map(|n| *policy.delay_range(n).end()).collect();
        assert_eq!(
            full,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(policy.delay_range(0), policy.delay_range(1));
        assert_eq!(policy.delay_range(2), 100 * MS..=200 * MS);
    }

    #[test]
    fn jitter_spans_the_range_and_never_leaves_it() {
        let policy = Reconnect::new()
            .initial_delay(100 * MS)
            .max_delay(1000 * MS);
        assert_eq!(policy.delay(2, 0), 100 * MS);
        assert_eq!(policy.delay(2, u64::MAX / 2 + 1), 150 * MS);
        let top = policy.delay(2, u64::MAX);
        assert!(top < 200 * MS && top > 199 * MS, "{top:?}");
        for random in [1, 12_345, u64::MAX / 3, u64::MAX - 1] {
            for attempt in [1, 2, 7, 40] {
                let delay = policy.delay(attempt, random);
                assert!(policy.delay_range(attempt).contains(&delay), "{delay:?}");
            }
        }
    }

    #[test]
    fn huge_attempts_and_delays_saturate_instead_of_overflowing() {
        let policy = Reconnect::new().max_delay(Duration::MAX);
        assert_eq!(*policy.delay_range(u32::MAX).end(), 100 * MS * u32::MAX);
        let policy = Reconnect::new()
            .initial_delay(Duration::MAX)
            .max_delay(Duration::MAX);
        assert_eq!(*policy.delay_range(u32::MAX).end(), Duration::MAX);
        assert!(policy.delay(u32::MAX, u64::MAX) <= Duration::MAX);
    }

    #[test]
    fn give_up_counts_failed_attempts_in_a_row() {
        let policy = Reconnect::new().give_up_after(3);
        assert!(!policy.exhausted(2));
        assert!(policy.exhausted(3));
        assert!(!Reconnect::new().exhausted(u32::MAX));
        assert!(
            !Reconnect::new()
                .give_up_after(3)
                .give_up_after(None)
                .exhausted(u32::MAX)
        );
    }

    #[test]
    fn policies_that_cannot_work_are_refused_by_name() {
        assert!(Reconnect::new().validate().is_ok());
        for (policy, setting) in [
            (
                Reconnect::new().initial_delay(Duration::ZERO),
                "initial_delay",
            ),
            (
                Reconnect::new().initial_delay(2 * MS).max_delay(MS),
                "max_delay",
            ),
            (Reconnect::new().give_up_after(0), "give_up_after"),
        ] {
            match policy.validate() {
                Err(ConfigError::OutOfRange { setting: named, .. }) => assert_eq!(named, setting),
                other => panic!("{setting}: expected a refusal, got {other:?}"),
            }
        }
        // The edges that do work.
        let edges = Reconnect::new()
            .initial_delay(MS)
            .max_delay(MS)
            .give_up_after(1);
        assert!(edges.validate().is_ok());
    }

    #[test]
    fn only_identity_and_version_failures_stop_reconnecting() {
        use crate::error::HandshakeFailure;
        let key = mtgnet_encryption::IdentitySecret::generate().public_key();
        assert!(is_permanent(&Error::Auth(AuthError::NotAuthorized(key))));
        assert!(is_permanent(&Error::Auth(AuthError::InvalidSignature)));
        assert!(is_permanent(&Error::Peer(PeerError::Handshake(
            HandshakeFailure::OnlyV1
        ))));
        assert!(!is_permanent(&Error::Peer(PeerError::Handshake(
            HandshakeFailure::Timeout
        ))));
        assert!(!is_permanent(&Error::Peer(PeerError::Handshake(
            HandshakeFailure::Closed
        ))));
        assert!(!is_permanent(&Error::Io(
            std::io::ErrorKind::ConnectionRefused.into()
        )));
        assert!(!is_permanent(&Error::Closed));
    }
}
