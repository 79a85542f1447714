//! `mtgnet serve`: a server hosting `System` and the `Test` service until
//! SIGINT or SIGTERM.

use std::io::Write;

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
    /// Runtime threads; `None`: one per CPU.
    pub(crate) threads: Option<usize>,
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
        if args.threads == Some(0) {
            bail!("invalid --threads: 0; it must be at least 1");
        }
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
            config: config.limits(limits),
            identity_source,
            threads: args.threads,
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

/// Runs `mtgnet serve` to completion.
///
/// # Errors
///
/// The arguments are invalid, the address cannot be bound, or the server fails.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::try_from(args)?;
    crate::init_tracing("info");
    let runtime = match settings.threads {
        // One thread: the current-thread scheduler, with no work stealing
        // to pay for.
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(threads) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .context("cannot start the tokio runtime")?;
    runtime.block_on(serve(settings))
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
    mut signals: Signals,
) -> anyhow::Result<()> {
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
    let server = Server::new(registry(), settings.config)?;
    tracing::info!(%address, "listening");
    let shutdown = Shutdown::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = signals.interrupt.recv() => tracing::info!("SIGINT: shutting down"),
                _ = signals.terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            }
            shutdown.trigger();
        }
    });
    server
        .serve(listener, shutdown)
        .await
        .context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
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
