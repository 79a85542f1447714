//! The async server: accepts connections, runs the handshake, reads
//! requests, runs them concurrently and writes each response when it is ready.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use mtgnet_proto::wire::{self, Call, CallResult, InvalidCall};
use mtgnet_proto::{Condition, Peer, Registry, codes};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::error::Error;
use crate::transport::{self, FrameSink, Framer, MessageReader};

/// An MTGNet server: a [`Registry`] of services behind a [`ServerConfig`].
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// use mtgnet::{Registry, Server, ServerConfig, Service};
///
/// let registry = Registry::new().with(
///     Service::new("Test").method("add", "Adds two integers.", |(a, b): (i64, i64)| async move { Ok(a + b) }),
/// );
/// let server = Server::new(registry, ServerConfig::plain());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7707").await?;
/// server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Server {
    /// The services, shared read-only by every connection.
    registry: Arc<Registry>,
    /// Encryption and limits, the same for every connection.
    config: Arc<ServerConfig>,
}

impl Server {
    /// A server for `registry` with `config`.
    pub fn new(registry: Registry, config: ServerConfig) -> Server {
        Server {
            registry: Arc::new(registry),
            config: Arc::new(config),
        }
    }

    /// The hosted services.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Accepts and serves connections until `shutdown` completes; then stops
    /// accepting, lets every connection finish the requests it is running
    /// (up to [`Limits::shutdown_grace`](crate::Limits)), closes them, and returns.
    ///
    /// # Errors
    ///
    /// Only when accepting fails in a way that is not about one connection
    /// (per-connection failures are logged and do not stop the server).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let limits = self.config.limits_ref();
        // Accepting waits for a free slot, so excess connections queue in
        // the kernel's backlog instead of costing memory here.
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let (stop, stopping) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = Arc::clone(&slots).acquire_owned() => slot.map_err(std::io::Error::other)?,
            };
            let (stream, address) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_per_connection(&e) => {
                        tracing::debug!(error = %e, "accept failed for one connection");
                        continue;
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning, then keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let server = self.clone();
            let stopping = stopping.clone();
            connections.spawn(async move {
                let _slot = slot;
                if let Err(e) = server.serve_tcp(stream, address, stopping).await {
                    tracing::debug!(%address, error = %e, "connection ended with an error");
                }
            });
            // Reap finished connections so the set does not grow.
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        let _ = stop.send(true);
        let grace = limits.shutdown_grace + limits.shutdown_grace / 2;
        if tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("connections still busy after the shutdown grace period; closing them");
            connections.shutdown().await;
        }
        Ok(())
    }

    async fn serve_tcp(
        &self,
        stream: TcpStream,
        address: SocketAddr,
        stopping: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        stream.set_nodelay(true)?;
        self.serve_connection(stream, Some(address), stopping).await
    }

    /// Serves one connection over any byte stream until the peer closes it,
    /// a fatal error occurs, or `stopping` turns `true` (then requests
    /// already read finish, within the grace period, and are answered).
    ///
    /// # Errors
    ///
    /// The reason the connection ended, when it was not a clean close.
    pub async fn serve_connection<S>(
        &self,
        mut io: S,
        address: Option<SocketAddr>,
        mut stopping: watch::Receiver<bool>,
    ) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let limits = self.config.limits_ref();
        let mut buf = BytesMut::new();
        let session = match self.config.encryption() {
            Some(encryption) => {
                let session = tokio::select! {
                    session = transport::handshake(&mut io, &mut buf, encryption) => session?,
                    () = stop_requested(&mut stopping) => return Ok(()),
                };
                Some(Arc::new(session))
            }
            None => None,
        };
        let peer = Arc::new(Peer {
            identity: session.as_ref().map(|s| *s.peer_identity().as_bytes()),
            address,
        });
        let (rd, wr) = tokio::io::split(io);
        let mut reader = MessageReader::new(rd, buf, limits.max_frame, session.clone());
        let framer = Framer::new(session);
        let (responses, queue) = mpsc::channel(limits.max_in_flight);
        let mut writer = tokio::spawn(transport::write_messages(
            wr,
            queue,
            FrameSink::new(),
            Some(limits.idle_timeout),
        ));
        let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.min(u32::MAX as usize)));
        let mut requests = JoinSet::new();

        // Set when the writer stops early (the peer stopped reading or the
        // socket failed): then there is nobody left to answer.
        let mut written = None;
        let outcome = loop {
            // Back-pressure: no reading while max_in_flight calls run.
            let mut permit = tokio::select! {
                permit = Arc::clone(&in_flight).acquire_owned() => permit.map_err(|_| Error::Closed)?,
                () = stop_requested(&mut stopping) => break Ok(()),
            };
            let idle = requests.is_empty();
            let next = tokio::select! {
                next = reader.next() => next,
                () = stop_requested(&mut stopping) => break Ok(()),
                () = tokio::time::sleep(limits.idle_timeout), if idle => {
                    tracing::debug!(?address, "closing an idle connection");
                    break Ok(());
                }
                // Keep the set small while waiting for the next request.
                Some(_) = requests.join_next(), if !idle => continue,
                result = &mut writer => {
                    written = Some(result);
                    break Err(Error::Closed);
                }
            };
            let payload = match next {
                Ok(Some(payload)) => payload,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let calls = match wire::parse_request(&payload) {
                Ok(calls) => calls,
                Err(e) => break Err(e.into()),
            };
            // One slot per call (the first was taken before reading).
            let more = calls.len().clamp(1, limits.max_in_flight) - 1;
            if more > 0 {
                let extra = tokio::select! {
                    extra = Arc::clone(&in_flight).acquire_many_owned(u32::try_from(more).unwrap_or(u32::MAX)) => extra.map_err(|_| Error::Closed)?,
                    () = stop_requested(&mut stopping) => break Ok(()),
                };
                permit.merge(extra);
            }
            let work = self.respond(calls, &peer);
            let responses = responses.clone();
            let framer = framer.clone();
            requests.spawn(async move {
                if let Some(response) = work.await {
                    // Fails only when the writer is gone: nobody to answer.
                    let _ = responses.send(framer.frame(&response)).await;
                }
                drop(permit);
            });
        };

        if outcome.is_ok() && written.is_none() {
            // Clean close or shutdown: finish what was read, answer it.
            let drain = async { while requests.join_next().await.is_some() {} };
            if tokio::time::timeout(limits.shutdown_grace, drain)
                .await
                .is_err()
            {
                tracing::warn!(
                    ?address,
                    "requests still running after the grace period; dropping them"
                );
            }
        }
        requests.shutdown().await;
        drop(responses);
        let written = match written {
            Some(result) => result,
            None => writer.await,
        };
        match written {
            Ok(Ok(())) => outcome,
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(std::io::Error::other(e).into()),
        }
    }

    /// The work for one parsed request: its response payload, if it needs one.
    fn respond(
        &self,
        calls: Vec<Result<Call, InvalidCall>>,
        peer: &Arc<Peer>,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send + 'static + use<> {
        let max_batch = self.config.limits_ref().max_batch;
        if calls.len() <= max_batch {
            return futures::future::Either::Left(self.registry.respond(calls, Arc::clone(peer)));
        }
        // Too many calls: answer each with an error and run none, which keeps
        // the batch guarantee and tells the client exactly what happened.
        let message = format!(
            "a request may hold at most {max_batch} calls; this one holds {}",
            calls.len()
        );
        let results: Vec<CallResult> = calls
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(call) => call.id,
                Err(invalid) => invalid.id,
            })
            .map(|id| CallResult {
                id,
                outcome: Err(Condition::new(codes::BATCH_TOO_LARGE, message.clone())),
                warnings: Vec::new(),
            })
            .collect();
        futures::future::Either::Right(async move {
            let mut out = Vec::new();
            (!results.is_empty() && wire::write_response(&results, &mut out).is_ok()).then_some(out)
        })
    }
}

/// Completes once `stopping` turns `true`; never, if its sender is gone
/// without having said so (a dropped sender is not a shutdown request).
async fn stop_requested(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Accept errors that concern one connection only.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}
