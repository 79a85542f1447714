//! The driver of a [`Client`](crate::Client): it runs the client's
//! connection and, with a reconnect policy, makes the next one whenever it
//! drops, publishing where calls go ([`Route`]) and what callers may
//! observe ([`ClientState`]).
//!
//! ```text
//!   run: Up(conn) --conn ends--> [policy?] --no--> Ended(reason)       state Failed(reason)
//!                                          --yes-> Down, attempt 1, 2, ...  state Reconnecting { attempt }
//!          each attempt: sleep (backoff + jitter), dial (connect timeout, handshake)
//!            ok -> Up(new conn)     permanent failure / gave up -> Ended(reason)
//!   at any point: Client::close or every handle dropped -> close conn -> Ended(Closed)   state Closed
//! ```

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use mtgnet_encryption::PublicKey;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ClientConfig;
use crate::connection::{Connection, Driving};
use crate::error::Error;
use crate::race::{Either, first_of};
use crate::reconnect::{ClientState, is_permanent};

/// Makes the next connection: connects (within the connect timeout) and
/// runs the handshake.
pub(crate) type Dial =
    Box<dyn FnMut() -> BoxFuture<'static, Result<(Connection, Driving), Error>> + Send>;

/// Shared by the handles of one client and its driver.
pub(crate) struct Shared {
    pub(crate) config: ClientConfig,
    /// The checked cap on calls in flight.
    pub(crate) max_in_flight: NonZeroUsize,
    /// Free slots of the cap on calls in flight, across connections:
    /// callers wait here, first come first served, for as many as their
    /// request takes, and keep them while they wait for a connection.
    /// Closed when the client ends, so that waiting callers fail at once.
    pub(crate) slots: Arc<Semaphore>,
    /// Asks the driver to close the client for good.
    pub(crate) close: CancellationToken,
    /// The server's identity, the same on every connection.
    pub(crate) peer_identity: Option<PublicKey>,
}

/// Where calls go now. Only the handles hold receivers: when every handle
/// is gone, the driver sees its sender closed and closes the client.
#[derive(Clone)]
pub(crate) enum Route {
    /// Calls go to this connection.
    Up(Connection),
    /// Between connections: calls wait (within their call timeout).
    Down,
    /// No connection will come any more: calls fail with this.
    Ended(Arc<Error>),
}

impl Route {
    /// Whether calls go to `connection`.
    pub(crate) fn is_up(&self, connection: &Connection) -> bool {
        matches!(self, Route::Up(current) if current.is(connection))
    }
}

/// Runs the connection of a [`Client`](crate::Client), and with a
/// [reconnect policy](crate::ClientConfig::reconnect) the next ones.
///
/// It must be polled (spawned) for the client to make progress
/// ([`Client::connect`](crate::Client::connect) spawns it), and it
/// finishes when the client ends: when the connection ends (without a
/// reconnect policy), when the policy gives up, after
/// [`Client::close`](crate::Client::close), or once every `Client` handle
/// has been dropped. If it is dropped before it finishes (its task
/// aborted, its runtime shut down), the client ends all the same: every
/// waiting call fails with [`Error::Closed`], and so does every later
/// call.
///
/// ```
/// use mtgnet::{demo, Client, ClientConfig, Registry, Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::new(Registry::new().with(demo::test_service()), ServerConfig::plain())?;
/// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// let shutdown = mtgnet::Shutdown::new();
/// tokio::spawn(async move { server.serve_connection(server_io, None, shutdown).await });
///
/// let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
/// let driver = tokio::spawn(driver);
/// let echoed: String = client.call("Test", "echo", ("hi",)).await?;
/// assert_eq!(echoed, "hi");
///
/// drop(client);
/// driver.await?;
/// # Ok(()) }
/// ```
#[must_use = "a client makes no progress unless its driver is spawned or awaited"]
pub struct ClientDriver {
    future: BoxFuture<'static, ()>,
}

impl Future for ClientDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for ClientDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientDriver")
    }
}

/// Starts a client on its first connection: the receivers of its route
/// and state for the handles, and the driver. `dial` makes the next
/// connections; `None`: the client ends with its first connection.
pub(crate) fn start(
    first: (Connection, Driving),
    dial: Option<Dial>,
    shared: &Arc<Shared>,
) -> (
    watch::Receiver<Route>,
    watch::Receiver<ClientState>,
    ClientDriver,
) {
    let (route, routes) = watch::channel(Route::Up(first.0.clone()));
    let (state, states) = watch::channel(ClientState::Connected);
    let end = End {
        shared: Arc::clone(shared),
        route,
        state,
        outcome: None,
    };
    let driver = ClientDriver {
        future: Box::pin(run(first, dial, end)),
    };
    (routes, states, driver)
}

/// How the client ended.
enum Outcome {
    /// Closed by this side (`Client::close`, or every handle dropped).
    Closed,
    /// No connection will come any more, for this reason.
    Failed(Arc<Error>),
}

/// Publishes the client's end when the driver's future goes away, however
/// it goes: calls fail from then on, waiting ones at once.
struct End {
    shared: Arc<Shared>,
    route: watch::Sender<Route>,
    state: watch::Sender<ClientState>,
    /// `None` while running; also when the future was dropped unfinished.
    outcome: Option<Outcome>,
}

impl Drop for End {
    fn drop(&mut self) {
        let (reason, state) = match self.outcome.take() {
            Some(Outcome::Closed) => (Arc::new(Error::Closed), ClientState::Closed),
            Some(Outcome::Failed(reason)) => (Arc::clone(&reason), ClientState::Failed(reason)),
            None => {
                // Dropped unfinished: the connection's own reason, if it
                // recorded one (too many abandoned calls), else `Closed`.
                let recorded = match &*self.route.borrow() {
                    Route::Up(connection) => connection.closed_reason(),
                    Route::Down | Route::Ended(_) => None,
                };
                let reason = recorded.unwrap_or_else(|| Arc::new(Error::Closed));
                (Arc::clone(&reason), ClientState::Failed(reason))
            }
        };
        self.route.send_replace(Route::Ended(reason));
        // Callers waiting for a slot fail now, and later calls at once.
        self.shared.slots.close();
        self.state.send_replace(state);
    }
}

/// Resolves when the client is to close: `Client::close`, or every
/// handle dropped.
async fn stopped(close: &CancellationToken, route: &watch::Sender<Route>) {
    first_of(close.cancelled(), route.closed()).await;
}

fn random_u64() -> u64 {
    let mut bytes = [0; 8];
    mtgnet_encryption::random_bytes(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// The driver's loop: see the module documentation.
async fn run(first: (Connection, Driving), mut dial: Option<Dial>, mut end: End) {
    let shared = Arc::clone(&end.shared);
    let policy = shared.config.reconnect_policy().cloned();
    // Connection attempts since the last connection that worked.
    let mut attempts: u32 = 0;
    let (mut connection, mut driving) = first;
    loop {
        let since = Instant::now();
        // Closing first: a client closed as its connection drops ends
        // `Closed`, as asked, rather than reconnecting or failing.
        let ended = first_of(stopped(&shared.close, &end.route), &mut driving).await;
        let Either::Right(reason) = ended else {
            // What is queued is written, then (v2) the close record.
            connection.close();
            driving.await;
            end.outcome = Some(Outcome::Closed);
            return;
        };
        let (Some(policy), Some(dial)) = (&policy, dial.as_mut()) else {
            end.outcome = Some(Outcome::Failed(reason));
            return;
        };
        if connection.has_answered() || since.elapsed() >= policy.proven_after() {
            attempts = 0;
        }
        tracing::debug!(error = %reason, "client connection lost; reconnecting");
        end.route.send_replace(Route::Down);
        let mut last = reason;
        (connection, driving) = loop {
            if policy.exhausted(attempts) {
                let gave_up = Error::GaveUp { attempts, last };
                tracing::debug!(error = %gave_up, "client stops reconnecting");
                end.outcome = Some(Outcome::Failed(Arc::new(gave_up)));
                return;
            }
            attempts = attempts.saturating_add(1);
            end.state
                .send_replace(ClientState::Reconnecting { attempt: attempts });
            let delay = policy.delay(attempts, random_u64());
            let attempt = async {
                tokio::time::sleep(delay).await;
                dial().await
            };
            let Either::Right(dialled) =
                first_of(stopped(&shared.close, &end.route), attempt).await
            else {
                end.outcome = Some(Outcome::Closed);
                return;
            };
            match dialled {
                Ok(opened) => break opened,
                Err(e) if is_permanent(&e) => {
                    tracing::debug!(error = %e, "client stops reconnecting: the server is refused");
                    end.outcome = Some(Outcome::Failed(Arc::new(e)));
                    return;
                }
                Err(e) => {
                    tracing::debug!(attempt = attempts, error = %e, "reconnect attempt failed");
                    last = Arc::new(e);
                }
            }
        };
        end.route.send_replace(Route::Up(connection.clone()));
        end.state.send_replace(ClientState::Connected);
    }
}
