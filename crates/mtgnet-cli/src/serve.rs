//! `mtgnet serve`: a server hosting `System` and the `Test` service until
//! SIGINT or SIGTERM.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use mtgnet::{
    ConfigError, Encryption, EncryptionVersion, Limits, Listener, Registry, Server, ServerConfig,
    Shutdown, UnixListener,
};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::args::{ServeArgs, ServerEncryption};
use crate::endpoint::Endpoint;
use crate::keys::{self, IdentitySource};

/// `serve`'s arguments, validated: files read, keys decoded.
#[derive(Debug)]
pub(crate) struct ServeSettings {
    /// Where to listen.
    pub(crate) listen: Endpoint,
    /// Where to serve Prometheus metrics, if anywhere.
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// Encryption and limits.
    pub(crate) config: ServerConfig,
    /// Where the identity came from, when encrypted.
    pub(crate) identity_source: Option<IdentitySource>,
    /// Server threads (`--threads`, else one per CPU).
    pub(crate) threads: usize,
}

impl TryFrom<ServeArgs> for ServeSettings {
    type Error = anyhow::Error;

    fn try_from(args: ServeArgs) -> anyhow::Result<ServeSettings> {
        let limits = Limits::default()
            .max_frame(args.max_frame)
            .max_connections(args.max_connections)
            .max_in_flight(args.max_in_flight)
            .max_connection_bytes(args.max_connection_bytes)
            .max_batch(args.max_batch)
            .idle_timeout(args.idle_timeout)
            .write_stall(args.write_stall)
            .shutdown_grace(args.shutdown_grace);
        limits.validate().map_err(invalid_flag)?;
        let threads = match args.threads {
            Some(0) => bail!("invalid --threads: 0; it must be at least 1"),
            Some(threads) => threads,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        // Over TCP each thread serves its own share of the connections, so
        // that together they never exceed --max-connections.
        let threads = match &args.listen {
            Endpoint::Tcp(_) => threads.min(args.max_connections.max(1)),
            Endpoint::Unix(_) => threads,
        };
        let limits = match &args.listen {
            Endpoint::Tcp(_) if threads > 1 => {
                limits.max_connections((args.max_connections / threads).max(1))
            }
            _ => limits,
        };
        let busy_poll = busy_poll(args.busy_poll)?;
        if args.metrics.is_some_and(|address| address.port() == 0) {
            bail!("--metrics needs a port other than 0: the port it picks could not be reported");
        }
        let (config, identity_source) = if args.plain {
            (ServerConfig::plain(), None)
        } else {
            let (identity, source) = keys::load_identity(args.secret_file.as_deref())?;
            let mut encryption =
                Encryption::new(identity).handshake_timeout(args.handshake_timeout);
            encryption = match args.encryption {
                ServerEncryption::Any => encryption.any_version(),
                ServerEncryption::V1 => encryption.version(EncryptionVersion::V1),
                ServerEncryption::V2 => encryption.version(EncryptionVersion::V2),
            };
            if let Some(path) = &args.authorized_keys {
                encryption = encryption.authorized(keys::read_authorized_keys(path)?);
            }
            (ServerConfig::encrypted(encryption), Some(source))
        };
        Ok(ServeSettings {
            listen: args.listen,
            metrics: args.metrics,
            config: config.limits(limits).busy_poll(busy_poll),
            identity_source,
            threads,
        })
    }
}

/// Names the flag behind a setting that cannot work: `invalid --FLAG: ...`.
pub(crate) fn invalid_flag(e: ConfigError) -> anyhow::Error {
    match &e {
        ConfigError::OutOfRange { setting, .. } => {
            anyhow::anyhow!("invalid --{}: {e}", setting.replace('_', "-"))
        }
        _ => e.into(),
    }
}

/// `--busy-poll MICROS` as a duration, refused by name above the maximum.
pub(crate) fn busy_poll(micros: u64) -> anyhow::Result<Duration> {
    let spin = Duration::from_micros(micros);
    if spin > mtgnet::MAX_BUSY_POLL {
        bail!(
            "invalid --busy-poll: {micros}; it must be at most {} (microseconds)",
            mtgnet::MAX_BUSY_POLL.as_micros()
        );
    }
    Ok(spin)
}

/// Runs `mtgnet serve` to completion.
///
/// # Errors
///
/// The arguments are invalid, the address cannot be bound, or the server fails.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::try_from(args)?;
    crate::init_tracing("info");
    match &settings.listen {
        Endpoint::Tcp(address) if settings.threads > 1 => {
            let address = address.clone();
            per_thread(&address, settings)
        }
        _ => crate::runtime(Some(settings.threads))?.block_on(serve(settings)),
    }
}

async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    // Installed before the address is announced, so that a signal sent as
    // soon as a supervisor reads it already means "shut down gracefully".
    let signals = Signals {
        interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
    };
    match &settings.listen {
        Endpoint::Tcp(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            let address = listener
                .local_addr()
                .context("cannot read the bound address")?;
            run_server(listener, &address.to_string(), settings, signals).await
        }
        Endpoint::Unix(path) => {
            // Removes its socket file when dropped: on shutdown, and on any
            // error after this.
            let listener = UnixListener::bind(path)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            let announced = settings.listen.to_string();
            run_server(listener, &announced, settings, signals).await
        }
    }
}

/// SIGINT and SIGTERM, both of which shut the server down gracefully.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

/// Announces `address`, serves on `listener` until a signal, and returns
/// once every connection is closed.
async fn run_server<L: Listener>(
    listener: L,
    address: &str,
    settings: ServeSettings,
    signals: Signals,
) -> anyhow::Result<()> {
    announce(address, &settings)?;
    let server = Server::new(registry(), settings.config)?;
    tracing::info!(%address, "listening");
    let shutdown = Shutdown::new();
    tokio::spawn(stop_on_signal(signals, shutdown.clone()));
    server
        .serve(listener, shutdown)
        .await
        .context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the metrics exporter, prints the first lines (`listening ADDR`,
/// `public-key B64`) and logs what the server accepts.
fn announce(address: &str, settings: &ServeSettings) -> anyhow::Result<()> {
    if let Some(address) = settings.metrics {
        install_metrics(address)?;
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening {address}")?;
        if let Some(encryption) = settings.config.encryption() {
            writeln!(stdout, "public-key {}", encryption.public_key())?;
        }
        stdout.flush()?;
    }
    match (&settings.identity_source, settings.config.encryption()) {
        (Some(IdentitySource::Throwaway), Some(encryption)) => tracing::warn!(
            public_key = %encryption.public_key(),
            "using a throwaway identity (no --secret-file or ${}): clients cannot pin it across restarts",
            keys::SECRET_ENV
        ),
        (Some(source), Some(encryption)) => tracing::info!(
            public_key = %encryption.public_key(),
            ?source,
            "encrypted"
        ),
        _ => tracing::warn!("plain: connections are not encrypted or authenticated"),
    }
    if let Some(encryption) = settings.config.encryption() {
        if encryption.authorized_keys().is_any() {
            tracing::info!("any client key is accepted (no --authorized-keys)");
        } else {
            tracing::info!(
                keys = encryption.authorized_keys().keys().len(),
                "only authorized client keys are accepted"
            );
        }
    }
    Ok(())
}

/// Triggers `shutdown` on the first SIGINT or SIGTERM.
async fn stop_on_signal(mut signals: Signals, shutdown: Shutdown) {
    tokio::select! {
        _ = signals.interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        _ = signals.terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.trigger();
}

/// Serves TCP on `threads` threads, each with a current-thread runtime and
/// a listener of its own on the same address (`SO_REUSEPORT`: the kernel
/// spreads new connections over them). A connection lives on one thread:
/// its reading, handlers and writing never wake another thread, while the
/// threads together use every core. Each thread takes its share of
/// `--max-connections`.
fn per_thread(address: &str, settings: ServeSettings) -> anyhow::Result<()> {
    let listeners = reuseport_listeners(address, settings.threads)
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listeners[0]
        .local_addr()
        .context("cannot read the bound address")?;
    let runtime = crate::runtime(Some(1))?;
    runtime.block_on(async move {
        let signals = Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        };
        let address = bound.to_string();
        announce(&address, &settings)?;
        let server = Server::new(registry(), settings.config)?;
        tracing::info!(%address, threads = listeners.len(), "listening");
        let shutdown = Shutdown::new();
        tokio::spawn(stop_on_signal(signals, shutdown.clone()));
        let mut threads = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let server = server.clone();
            let stop = shutdown.clone();
            let thread = std::thread::Builder::new()
                .name("mtgnet-serve".to_owned())
                .spawn(move || {
                    let served = serve_one_thread(&server, listener, stop.clone());
                    // One thread failing stops them all.
                    stop.trigger();
                    served
                });
            match thread {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    shutdown.trigger();
                    tracing::error!(error = %e, "cannot start a server thread");
                    break;
                }
            }
        }
        let mut outcome = Ok(());
        for thread in threads {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            let served = match joined {
                Ok(Ok(served)) => served,
                _ => Err(anyhow::anyhow!("a server thread panicked")),
            };
            if outcome.is_ok() {
                outcome = served;
            }
        }
        outcome?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// One server thread: its listener, on its own current-thread runtime.
fn serve_one_thread(
    server: &Server,
    listener: std::net::TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let runtime = crate::runtime(Some(1))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        server
            .serve(listener, shutdown)
            .await
            .context("the server failed")
    })
}

/// `count` listeners on `address`, all with `SO_REUSEPORT`: the first picks
/// the port when `address` asks for port 0, the others take the same.
fn reuseport_listeners(address: &str, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use std::net::ToSocketAddrs;
    let mut target = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(target),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&target.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        target = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Installs the Prometheus exporter as the process's metrics recorder,
/// serving `GET /metrics` on `address` from the current runtime; the call
/// durations are rendered as a histogram with
/// [`mtgnet::metrics::CALL_DURATION_BUCKETS`].
fn install_metrics(address: std::net::SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(
            Matcher::Full(mtgnet::metrics::CALL_DURATION_SECONDS.to_owned()),
            &mtgnet::metrics::CALL_DURATION_BUCKETS,
        )
        .context("invalid histogram buckets")?
        .install()
        .with_context(|| format!("cannot serve metrics on {address}"))?;
    tracing::info!("metrics on http://{address}/metrics");
    Ok(())
}

/// The services `mtgnet serve` hosts: `System` and `Test`.
pub(crate) fn registry() -> Registry {
    Registry::new().with(mtgnet::demo::test_service())
}

/// A server with [`registry`] on `127.0.0.1:0` in this process, for `demo`
/// and `bench`.
pub(crate) struct LoopbackServer {
    /// The address it listens on.
    pub(crate) addr: std::net::SocketAddr,
    stop: Shutdown,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LoopbackServer {
    /// Binds and starts serving.
    ///
    /// # Errors
    ///
    /// Binding the loopback port fails.
    pub(crate) async fn start(config: ServerConfig) -> anyhow::Result<LoopbackServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = Server::new(registry(), config)?;
        let stop = Shutdown::new();
        let serving = tokio::spawn({
            let stop = stop.clone();
            async move { server.serve(listener, stop).await }
        });
        Ok(LoopbackServer {
            addr,
            stop,
            serving,
        })
    }

    /// Shuts the server down gracefully and waits for it.
    ///
    /// # Errors
    ///
    /// The server failed or panicked.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.trigger();
        self.serving
            .await
            .context("the in-process server panicked")?
            .context("the in-process server failed")
    }
}
