//! What a [`Server`](crate::Server) counts, emitted through the
//! [`metrics`](https://docs.rs/metrics/0.24) facade (version 0.24): the
//! application installs the recorder it wants (`mtgnet serve --metrics`
//! installs `metrics-exporter-prometheus`); without one, every update is a
//! no-op that allocates nothing.
//!
//! | series | kind | labels | counts |
//! |---|---|---|---|
//! | `mtgnet_connections_open` | gauge | — | connections being served (handshake included) |
//! | `mtgnet_connections_total` | counter | `encryption` = `plain`, `v1`, `v2` | connections whose handshake completed (plain: every accepted one) |
//! | `mtgnet_handshakes_total` | counter | `version` = `v1`, `v2`, `unknown`; `outcome` = `ok`, `bad_signature`, `not_authorized`, `timeout`, `malformed`, `closed` | finished handshakes of encrypted servers |
//! | `mtgnet_calls_total` | counter | `service`, `method`, `outcome` = `ok`, `error`, `invalid` | calls and notifications run or refused as invalid |
//! | `mtgnet_call_duration_seconds` | histogram | `service`, `method` | time from a call's start to its outcome |
//! | `mtgnet_bytes_total` | counter | `direction` = `in`, `out` | bytes read from and written to connections (handshakes, framing and encryption included) |
//! | `mtgnet_limit_hits_total` | counter | `limit` (see below) | times a limit of [`Limits`](crate::Limits) or the handshake timeout acted |
//!
//! **Handshakes.** `version` is the version the client's first frame
//! asked for; `unknown` when the connection ended or timed out before the
//! server could tell (a server accepting both versions reads the first
//! frame to tell them apart). `bad_signature`: a signature or
//! authentication tag of the handshake does not verify; `not_authorized`:
//! the client proved a key the server does not authorize; `timeout`: the
//! handshake timeout expired; `malformed`: the bytes are not a handshake
//! this server accepts (bad framing or size, a version it refuses, an
//! invalid key); `closed`: the client closed the connection (or the
//! transport failed) before the handshake finished, as port scanners and
//! TCP health checks do. A handshake cut short by the server's own shutdown
//! is not counted.
//!
//! **Calls.** `service` and `method` are the names the
//! [`Registry`] gives them (whatever case the client
//! used), built-in methods included, so their number is bounded by the
//! registry; a call to no hosted service or method, or one that cannot be
//! read at all, is counted under `service="unknown", method="unknown"`,
//! with outcome `invalid`. `invalid` is also the outcome of a call whose
//! arguments do not fit its method (`invalid-arguments`); `error` is any
//! other error result (a handler's condition, a layer's refusal, a panic).
//! Only calls that reached a hosted method are timed. Calls refused as a
//! whole request (`batch-too-large`, `shutting-down`) are not counted here.
//!
//! **Limits** (`limit` label): `max_connections` (the server stopped
//! accepting because every connection slot was taken), `max_in_flight` and
//! `max_connection_bytes` (a connection stopped being read because it held
//! that many calls or bytes), `max_frame` (a frame or message over the
//! limit closed a connection), `batch` (a request over `max_batch` was
//! refused), `idle_timeout` (an idle connection was closed), `write_stall`
//! (a client that stopped reading was cut off), `handshake_timeout`, and
//! `shutdown_grace` (calls still running when the grace period ended were
//! dropped). Back-pressure limits count each time reading stops, not each
//! byte or call held back.
//!
//! The call duration histogram needs bucket bounds from the exporter;
//! [`CALL_DURATION_BUCKETS`] are the ones `mtgnet serve` uses.
//!
//! ```
//! use metrics_util::debugging::DebuggingRecorder;
//! use mtgnet::{demo, metrics, Client, ClientConfig, Registry, Server, ServerConfig};
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! // Installed for this thread only; an application would install its
//! // exporter globally, once, before starting the server.
//! ::metrics::with_local_recorder(&recorder, || {
//!     runtime.block_on(async {
//!         let server = Server::new(Registry::new().with(demo::test_service()), ServerConfig::plain())?;
//!         let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//!         tokio::spawn(async move { server.serve_connection(server_io, None, mtgnet::Shutdown::new()).await });
//!         let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
//!         tokio::spawn(driver);
//!         let _: i64 = client.call("Test", "add", (2, 3)).await?;
//!         Ok::<_, Box<dyn std::error::Error>>(())
//!     })
//! })?;
//! let calls = snapshotter.snapshot().into_vec().into_iter().find(|(key, ..)| {
//!     let key = key.key();
//!     key.name() == metrics::CALLS_TOTAL
//!         && key.labels().any(|l| l.key() == "method" && l.value() == "add")
//! });
//! assert!(matches!(calls, Some((.., metrics_util::debugging::DebugValue::Counter(1)))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics::{Counter, Gauge, Key, Label, Level, Metadata, Unit};
use mtgnet_proto::Registry;
use mtgnet_proto::framing::FrameError;
use mtgnet_proto::observe::{CallObserver, CallOutcome, Route};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::EncryptionVersion;
use crate::error::{AuthError, Error, HandshakeFailure, PeerError};
use crate::handshake::Channel;

/// Gauge: connections being served.
pub const CONNECTIONS_OPEN: &str = "mtgnet_connections_open";
/// Counter: connections established, by `encryption`.
pub const CONNECTIONS_TOTAL: &str = "mtgnet_connections_total";
/// Counter: handshakes, by `version` and `outcome`.
pub const HANDSHAKES_TOTAL: &str = "mtgnet_handshakes_total";
/// Counter: calls, by `service`, `method` and `outcome`.
pub const CALLS_TOTAL: &str = "mtgnet_calls_total";
/// Histogram: call durations in seconds, by `service` and `method`.
pub const CALL_DURATION_SECONDS: &str = "mtgnet_call_duration_seconds";
/// Counter: bytes, by `direction` (`in`, `out`).
pub const BYTES_TOTAL: &str = "mtgnet_bytes_total";
/// Counter: limits that acted, by `limit`.
pub const LIMIT_HITS_TOTAL: &str = "mtgnet_limit_hits_total";

/// The `service` and `method` label of calls to nothing hosted.
pub const UNKNOWN: &str = "unknown";

/// Upper bounds, in seconds, of the [`CALL_DURATION_SECONDS`] buckets
/// `mtgnet serve` uses: 100 µs to 60 s.
pub const CALL_DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

/// Describes every series (help text and unit) to the recorder installed
/// now, and registers at zero those whose labels are fixed (connections by
/// encryption, bytes by direction, limit hits by limit), so that they are
/// exported before anything happens. [`Server::new`](crate::Server::new)
/// calls it; call it again if the recorder is installed after the server
/// is created.
pub fn describe() {
    metrics::describe_gauge!(
        CONNECTIONS_OPEN,
        Unit::Count,
        "Connections being served, handshake included."
    );
    metrics::describe_counter!(
        CONNECTIONS_TOTAL,
        Unit::Count,
        "Connections whose handshake completed, by encryption (plain, v1, v2)."
    );
    metrics::describe_counter!(
        HANDSHAKES_TOTAL,
        Unit::Count,
        "Handshakes by version and outcome (ok, bad_signature, not_authorized, timeout, malformed, closed)."
    );
    metrics::describe_counter!(
        CALLS_TOTAL,
        Unit::Count,
        "Calls by service, method and outcome (ok, error, invalid); unknown names count as service=\"unknown\", method=\"unknown\"."
    );
    metrics::describe_histogram!(
        CALL_DURATION_SECONDS,
        Unit::Seconds,
        "Time from a call's start to its outcome, by service and method."
    );
    metrics::describe_counter!(
        BYTES_TOTAL,
        Unit::Bytes,
        "Bytes read (in) and written (out) on connections, handshakes and framing included."
    );
    metrics::describe_counter!(
        LIMIT_HITS_TOTAL,
        Unit::Count,
        "Times a server limit acted, by limit."
    );
    metrics::gauge!(CONNECTIONS_OPEN).increment(0.0);
    for counter in [
        metrics::counter!(CONNECTIONS_TOTAL, "encryption" => "plain"),
        metrics::counter!(CONNECTIONS_TOTAL, "encryption" => "v1"),
        metrics::counter!(CONNECTIONS_TOTAL, "encryption" => "v2"),
        metrics::counter!(BYTES_TOTAL, "direction" => "in"),
        metrics::counter!(BYTES_TOTAL, "direction" => "out"),
    ] {
        counter.increment(0);
    }
    for limit in Limit::ALL {
        limit_counter(limit).increment(0);
    }
}

/// Where the per-call series are recorded from.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The limits counted in [`LIMIT_HITS_TOTAL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    MaxConnections,
    MaxInFlight,
    MaxConnectionBytes,
    MaxFrame,
    Batch,
    IdleTimeout,
    WriteStall,
    HandshakeTimeout,
    ShutdownGrace,
}

impl Limit {
    const ALL: [Limit; 9] = [
        Limit::MaxConnections,
        Limit::MaxInFlight,
        Limit::MaxConnectionBytes,
        Limit::MaxFrame,
        Limit::Batch,
        Limit::IdleTimeout,
        Limit::WriteStall,
        Limit::HandshakeTimeout,
        Limit::ShutdownGrace,
    ];
}

/// Counts one action of `limit`. Allocates nothing: the keys are static.
pub(crate) fn limit_hit(limit: Limit) {
    limit_counter(limit).increment(1);
}

fn limit_counter(limit: Limit) -> Counter {
    match limit {
        Limit::MaxConnections => metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "max_connections"),
        Limit::MaxInFlight => metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "max_in_flight"),
        Limit::MaxConnectionBytes => {
            metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "max_connection_bytes")
        }
        Limit::MaxFrame => metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "max_frame"),
        Limit::Batch => metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "batch"),
        Limit::IdleTimeout => metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "idle_timeout"),
        Limit::WriteStall => metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "write_stall"),
        Limit::HandshakeTimeout => {
            metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "handshake_timeout")
        }
        Limit::ShutdownGrace => metrics::counter!(LIMIT_HITS_TOTAL, "limit" => "shutdown_grace"),
    }
}

/// Whether a connection ended because a frame or message was over the limit.
pub(crate) fn is_frame_limit(e: &Error) -> bool {
    matches!(
        e,
        Error::Peer(PeerError::Framing(FrameError::TooLong { .. }))
            | Error::Peer(PeerError::Record(
                mtgnet_encryption::RecordError::MessageTooLarge { .. }
            ))
    )
}

/// Counts a server handshake that finished (`version`: what the client
/// asked for, when known).
pub(crate) fn handshake(version: Option<EncryptionVersion>, result: &Result<Channel, Error>) {
    let version = match version {
        Some(EncryptionVersion::V1) => "v1",
        Some(EncryptionVersion::V2) => "v2",
        None => "unknown",
    };
    let outcome = match result {
        Ok(_) => "ok",
        Err(
            Error::Auth(AuthError::InvalidSignature)
            | Error::Peer(PeerError::Handshake(HandshakeFailure::Authentication)),
        ) => "bad_signature",
        Err(Error::Auth(AuthError::NotAuthorized(_))) => "not_authorized",
        Err(Error::Peer(PeerError::Handshake(HandshakeFailure::Timeout))) => {
            limit_hit(Limit::HandshakeTimeout);
            "timeout"
        }
        Err(Error::Peer(PeerError::Handshake(HandshakeFailure::Closed)) | Error::Io(_)) => "closed",
        Err(_) => "malformed",
    };
    // Once per connection: the two labels' vector is the only allocation.
    metrics::counter!(HANDSHAKES_TOTAL, "version" => version, "outcome" => outcome).increment(1);
}

/// Counts a connection whose handshake completed.
pub(crate) fn connection(channel: &Channel) {
    let counter = match channel {
        Channel::Plain => metrics::counter!(CONNECTIONS_TOTAL, "encryption" => "plain"),
        Channel::V1(_) => metrics::counter!(CONNECTIONS_TOTAL, "encryption" => "v1"),
        Channel::V2(_) => metrics::counter!(CONNECTIONS_TOTAL, "encryption" => "v2"),
    };
    counter.increment(1);
}

/// Holds one unit of [`CONNECTIONS_OPEN`] while a connection is served.
pub(crate) struct OpenConnection {
    /// The handle incremented, so that the same recorder is decremented.
    gauge: Gauge,
}

impl OpenConnection {
    pub(crate) fn new() -> OpenConnection {
        let gauge = metrics::gauge!(CONNECTIONS_OPEN);
        gauge.increment(1.0);
        OpenConnection { gauge }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// A connection's byte stream, counting the bytes read and written into
/// [`BYTES_TOTAL`].
pub(crate) struct Metered<S> {
    io: S,
    read: Counter,
    written: Counter,
}

impl<S> Metered<S> {
    pub(crate) fn new(io: S) -> Metered<S> {
        Metered {
            io,
            read: metrics::counter!(BYTES_TOTAL, "direction" => "in"),
            written: metrics::counter!(BYTES_TOTAL, "direction" => "out"),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.read.increment(count(buf.filled().len() - before));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.written.increment(count(n));
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.written.increment(count(n));
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

fn count(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// The per-call series ([`CALLS_TOTAL`], [`CALL_DURATION_SECONDS`]) of one
/// registry, as a [`CallObserver`]: every key is built once, here, so that
/// recording a call allocates nothing and a peer's names never become
/// labels. [`Server`](crate::Server) installs one; a server of your own on
/// [`ServerCore`](mtgnet_proto::server::ServerCore) can too.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::metrics::CallMetrics;
/// use mtgnet::proto::server::ServerCore;
/// use mtgnet::Registry;
///
/// let registry = Arc::new(Registry::new());
/// let core = ServerCore::new(Arc::clone(&registry), 1024).observe(Arc::new(CallMetrics::new(&registry)));
/// # let _ = core;
/// ```
pub struct CallMetrics {
    /// By [`Route::index`].
    routes: Vec<RouteKeys>,
    /// Calls to nothing hosted.
    unknown: RouteKeys,
}

/// The keys of one method: its three outcomes and its duration.
struct RouteKeys {
    calls: [Key; 3],
    duration: Key,
}

impl RouteKeys {
    fn new(service: &str, method: &str) -> RouteKeys {
        let labels = |outcome: Option<&'static str>| {
            let mut labels = vec![
                Label::new("service", service.to_owned()),
                Label::new("method", method.to_owned()),
            ];
            labels.extend(outcome.map(|outcome| Label::new("outcome", outcome)));
            labels
        };
        let calls = [CallOutcome::Ok, CallOutcome::Error, CallOutcome::Invalid]
            .map(|outcome| Key::from_parts(CALLS_TOTAL, labels(Some(outcome.as_str()))));
        RouteKeys {
            calls,
            duration: Key::from_parts(CALL_DURATION_SECONDS, labels(None)),
        }
    }
}

impl std::fmt::Debug for CallMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMetrics")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl CallMetrics {
    /// The series of every method `registry` answers, and of unknown ones.
    pub fn new(registry: &Registry) -> CallMetrics {
        CallMetrics {
            routes: registry
                .routes()
                .into_iter()
                .map(|(service, method)| RouteKeys::new(service, method))
                .collect(),
            unknown: RouteKeys::new(UNKNOWN, UNKNOWN),
        }
    }
}

impl CallObserver for CallMetrics {
    fn call_started(&self, _: Option<Route>) -> Instant {
        Instant::now()
    }

    fn call_finished(&self, route: Option<Route>, started: Instant, outcome: CallOutcome) {
        let keys = route
            .and_then(|route| self.routes.get(route.index()))
            .unwrap_or(&self.unknown);
        let calls = match outcome {
            CallOutcome::Ok => &keys.calls[0],
            CallOutcome::Error => &keys.calls[1],
            // `Invalid`, and whatever `CallOutcome` may grow: not a success.
            _ => &keys.calls[2],
        };
        metrics::with_recorder(|recorder| {
            recorder.register_counter(calls, &METADATA).increment(1);
            if route.is_some() {
                recorder
                    .register_histogram(&keys.duration, &METADATA)
                    .record(started.elapsed().as_secs_f64());
            }
        });
    }
}
