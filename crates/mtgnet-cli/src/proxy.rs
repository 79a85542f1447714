//! `mtgnet proxy`: encryption v2 in front of a server that speaks only v1
//! or no encryption, until SIGINT or SIGTERM.

use std::io::Write;

use anyhow::Context;
use mtgnet::proxy::{Proxy, ProxyConfig, TcpConnector};
use mtgnet::{AuthorizedKeys, Encryption, EncryptionVersion, Limits, Shutdown};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::{ProxyArgs, ProxyEncryption};
use crate::keys::{self, IdentitySource};
use crate::serve::invalid_flag;

/// How the proxy reaches its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendHop {
    /// `--to-plain`.
    Plain,
    /// v1, with this many `--to-server-key` keys.
    Pinned(usize),
    /// v1, accepting any backend key.
    Unpinned,
}

/// `proxy`'s arguments, validated: files read, keys decoded.
#[derive(Debug)]
pub(crate) struct ProxySettings {
    /// Where to listen.
    listen: String,
    /// The backend's address.
    to: String,
    /// Both sides' encryption and the limits.
    config: ProxyConfig,
    /// Where the identity came from.
    identity_source: IdentitySource,
    backend: BackendHop,
}

impl TryFrom<ProxyArgs> for ProxySettings {
    type Error = anyhow::Error;

    fn try_from(args: ProxyArgs) -> anyhow::Result<ProxySettings> {
        let limits = Limits::default()
            .max_frame(args.max_frame)
            .max_connections(args.max_connections)
            .max_connection_bytes(args.max_connection_bytes)
            .idle_timeout(args.idle_timeout)
            .write_stall(args.write_stall)
            .shutdown_grace(args.shutdown_grace);
        let (identity, identity_source) = keys::load_identity(args.secret_file.as_deref())?;
        let mut front = Encryption::new(std::sync::Arc::clone(&identity))
            .handshake_timeout(args.handshake_timeout);
        front = match args.encryption {
            ProxyEncryption::V2 => front.version(EncryptionVersion::V2),
            ProxyEncryption::Any => front.any_version(),
        };
        if let Some(path) = &args.authorized_keys {
            front = front.authorized(keys::read_authorized_keys(path)?);
        }
        let (config, backend) = if args.to_plain {
            (ProxyConfig::plain_backend(front), BackendHop::Plain)
        } else {
            let pins = args.to_server_key.len();
            let mut to_backend = Encryption::new(identity)
                .version(EncryptionVersion::V1)
                .handshake_timeout(args.handshake_timeout);
            let hop = if pins == 0 {
                to_backend = to_backend.dangerous_accept_any_key();
                BackendHop::Unpinned
            } else {
                to_backend = to_backend.authorized(AuthorizedKeys::only(args.to_server_key));
                BackendHop::Pinned(pins)
            };
            (ProxyConfig::encrypted_backend(front, to_backend), hop)
        };
        let config = config.limits(limits).connect_timeout(args.connect_timeout);
        Ok(ProxySettings {
            listen: args.listen,
            to: args.to,
            config,
            identity_source,
            backend,
        })
    }
}

/// Runs `mtgnet proxy` to completion.
///
/// # Errors
///
/// The arguments are invalid, the address cannot be bound, or the proxy fails.
pub(crate) fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let settings = ProxySettings::try_from(args)?;
    let to = settings.to.clone();
    // Checked before anything is bound or printed.
    let proxy = Proxy::new(settings.config.clone(), TcpConnector::new(to)).map_err(invalid_flag)?;
    crate::init_tracing("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(serve(settings, proxy))
}

async fn serve(settings: ProxySettings, proxy: Proxy<TcpConnector>) -> anyhow::Result<()> {
    // Installed before the address is announced, so that a signal sent as
    // soon as a supervisor reads it already means "shut down gracefully".
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let public_key = settings.config.front().public_key();
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening {address}")?;
        writeln!(stdout, "public-key {public_key}")?;
        stdout.flush()?;
    }
    log_settings(&settings);
    tracing::info!(%address, to = %settings.to, "proxying");
    let shutdown = Shutdown::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            }
            shutdown.trigger();
        }
    });
    proxy
        .serve(listener, shutdown)
        .await
        .context("the proxy failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Says on stderr what protects each hop, warning of what is weak.
fn log_settings(settings: &ProxySettings) {
    let front = settings.config.front();
    match &settings.identity_source {
        IdentitySource::Throwaway => tracing::warn!(
            public_key = %front.public_key(),
            "using a throwaway identity (no --secret-file or ${}): clients cannot pin it across restarts, \
             nor can the backend authorize it",
            keys::SECRET_ENV
        ),
        source => tracing::info!(public_key = %front.public_key(), ?source, "identity"),
    }
    if front.authorized_keys().is_any() {
        tracing::info!("any client key is accepted (no --authorized-keys)");
    } else {
        tracing::info!(
            keys = front.authorized_keys().keys().len(),
            "only authorized client keys are accepted"
        );
    }
    match settings.backend {
        BackendHop::Plain => tracing::warn!(
            to = %settings.to,
            "the backend hop is plain (--to-plain): neither encrypted nor authenticated; run the proxy next to the backend"
        ),
        BackendHop::Unpinned => tracing::warn!(
            to = %settings.to,
            "the backend's key is not pinned (no --to-server-key): encryption v1 with any backend key, \
             so whoever can reach the backend hop can pose as the backend"
        ),
        BackendHop::Pinned(keys) => tracing::info!(
            to = %settings.to,
            keys,
            "the backend speaks encryption v1 and is pinned"
        ),
    }
}
