//! `mtgnet bench`: a load generator (calls/s and latency, or new
//! connections/s), against a server or one started in this process, and
//! the throughput of sealing and opening frames (`--crypto`).
//!
//! Every call is `Test.echo` of a string of `--payload` bytes, and every
//! answer is compared with the string sent (as JSON text, so the check
//! costs a `memcmp`): a wrong answer counts as an error, like a failed call.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use mtgnet::{
    AuthorizedKeys, ClientConfig, Encryption, EncryptionVersion, IdentitySecret, Limits,
    ServerConfig,
};

use crate::args::BenchArgs;
use crate::keys;

/// Frame sizes of `--crypto`.
const CRYPTO_SIZES: [usize; 4] = [64, 1024, 65_536, 1_048_576];
/// Largest `--payload`: the echo and its framing must fit a default 16 MiB frame.
const MAX_PAYLOAD: usize = 16_000_000;
/// How long calls still running at the end of `--duration` may take to finish.
const GRACE: Duration = Duration::from_secs(5);
/// How often the progress line is refreshed on a terminal.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

pub(crate) mod baseline;
mod crypto;
mod load;
mod report;

/// `bench`'s arguments, validated.
#[derive(Debug)]
pub(crate) enum BenchSettings {
    /// Calls or handshakes against a server.
    Load(Box<LoadSettings>),
    /// `--crypto`: sealing and opening frames, no network.
    Crypto {
        /// Total time, split over [`CRYPTO_SIZES`].
        duration: Duration,
        /// Print JSON.
        json: bool,
    },
}

/// What a load run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Pipelined calls on long-lived connections.
    Calls,
    /// Connect, handshake, one call, close; again.
    Handshakes,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Calls => "calls",
            Kind::Handshakes => "handshakes",
        }
    }
}

/// Which server to load.
#[derive(Debug)]
pub(crate) enum Target {
    /// A server somewhere else.
    Remote(crate::endpoint::Endpoint),
    /// A server started in this process on loopback, with this config.
    InProcess(ServerConfig),
}

/// A load run, validated: identities made or loaded, client config built.
#[derive(Debug)]
pub(crate) struct LoadSettings {
    pub(crate) target: Target,
    /// Encryption (pinned to the in-process server's key), call timeout.
    pub(crate) client: ClientConfig,
    pub(crate) kind: Kind,
    /// Connections (calls), or workers each opening connections (handshakes).
    pub(crate) connections: usize,
    /// Calls in flight per connection (1 for handshakes).
    pub(crate) in_flight: usize,
    /// Bytes of the echoed string.
    pub(crate) payload: usize,
    pub(crate) duration: Duration,
    /// Bound on connecting + handshake.
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
    /// `--baseline`: also measure a raw TCP echo of the same frames.
    pub(crate) baseline: bool,
    /// Runtime threads; `None`: one per CPU.
    pub(crate) threads: Option<usize>,
}

impl TryFrom<BenchArgs> for BenchSettings {
    type Error = anyhow::Error;

    fn try_from(args: BenchArgs) -> anyhow::Result<BenchSettings> {
        if args.threads == Some(0) {
            bail!("invalid --threads: 0; it must be at least 1");
        }
        if args.duration.is_zero() {
            bail!("--duration must be more than 0 seconds");
        }
        if args.crypto {
            return Ok(BenchSettings::Crypto {
                duration: args.duration,
                json: args.json,
            });
        }
        if args.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if args.in_flight == 0 {
            bail!("--in-flight must be at least 1");
        }
        if args.payload > MAX_PAYLOAD {
            bail!("--payload must be at most {MAX_PAYLOAD} bytes");
        }
        if args.timeout.is_zero() {
            bail!("--timeout must be more than 0 seconds");
        }
        let busy_poll = crate::serve::busy_poll(args.busy_poll)?;
        let (target, client) = match args.addr {
            Some(addr) => {
                let client = if args.plain {
                    ClientConfig::plain()
                } else {
                    let (identity, _) = keys::load_identity(args.secret_file.as_deref())?;
                    let encryption = Encryption::new(identity)
                        .handshake_timeout(args.timeout)
                        .version(args.encryption.version());
                    let encryption = if args.server_key.is_empty() {
                        // A load generator, not a client of secrets: the
                        // README says so, and the key is pinned when given.
                        encryption.dangerous_accept_any_key()
                    } else {
                        encryption.authorized(AuthorizedKeys::only(args.server_key))
                    };
                    ClientConfig::encrypted(encryption)
                };
                (Target::Remote(addr), client)
            }
            None => {
                let (target, client) = in_process(
                    (!args.plain).then(|| args.encryption.version()),
                    args.timeout,
                );
                let target = match target {
                    Target::InProcess(server) => Target::InProcess(server.busy_poll(busy_poll)),
                    remote => remote,
                };
                (target, client)
            }
        };
        let kind = if args.handshakes {
            Kind::Handshakes
        } else {
            Kind::Calls
        };
        Ok(BenchSettings::Load(Box::new(LoadSettings {
            target,
            // The client's own cap must not throttle the requested load.
            client: client
                .call_timeout(args.timeout)
                .max_in_flight(args.in_flight)
                .busy_poll(busy_poll),
            kind,
            connections: args.connections,
            in_flight: if kind == Kind::Calls {
                args.in_flight
            } else {
                1
            },
            payload: args.payload,
            duration: args.duration,
            timeout: args.timeout,
            json: args.json,
            baseline: args.baseline,
            threads: args.threads,
        })))
    }
}

/// The in-process server's config (as `serve` has it, with throwaway
/// identities) and a client config pinned to its key.
fn in_process(version: Option<EncryptionVersion>, timeout: Duration) -> (Target, ClientConfig) {
    let limits = Limits::default().shutdown_grace(Duration::from_secs(1));
    let Some(version) = version else {
        return (
            Target::InProcess(ServerConfig::plain().limits(limits)),
            ClientConfig::plain(),
        );
    };
    let server_identity = Arc::new(IdentitySecret::generate());
    let server_key = server_identity.public_key();
    // The server as `mtgnet serve` runs it by default: both versions.
    let server = ServerConfig::encrypted(Encryption::new(server_identity)).limits(limits);
    let client = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .authorized(AuthorizedKeys::only([server_key]))
            .handshake_timeout(timeout)
            .version(version),
    );
    (Target::InProcess(server), client)
}

/// Runs `mtgnet bench`.
///
/// # Errors
///
/// Bad arguments, a server that cannot be reached, or (after the results
/// are printed) any call that failed or came back wrong.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let settings = BenchSettings::try_from(args)?;
    crate::init_tracing("warn");
    match settings {
        BenchSettings::Crypto { duration, json } => crypto::crypto(duration, json),
        BenchSettings::Load(settings) => {
            // One connection on one thread: its caller tasks, reader and
            // writer never wake another thread.
            let threads = settings
                .threads
                .or((settings.connections == 1).then_some(1));
            let runtime = crate::runtime(threads)?;
            let (report, first_error) = runtime.block_on(load::load(&settings))?;
            // Tasks still winding down (connection drivers) must not delay the exit.
            runtime.shutdown_timeout(Duration::from_secs(1));
            let mut stdout = std::io::stdout().lock();
            if settings.json {
                serde_json::to_writer(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                report::write_summary(&mut stdout, &report, &settings)?;
            }
            stdout.flush()?;
            if report.errors > 0 {
                bail!(
                    "{} of {} {} failed (first: {})",
                    report.errors,
                    report.errors + report.completed,
                    if settings.kind == Kind::Calls {
                        "calls"
                    } else {
                        "connections"
                    },
                    first_error.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn settings(args: &[&str]) -> anyhow::Result<BenchSettings> {
        let cli = Cli::try_parse_from(["mtgnet", "bench"].iter().chain(args))?;
        let Command::Bench(bench) = cli.command else {
            panic!("not bench: {cli:?}");
        };
        BenchSettings::try_from(bench)
    }

    #[test]
    fn defaults_are_one_encrypted_connection_with_64_in_flight() {
        let BenchSettings::Load(load) = settings(&[]).expect("valid") else {
            panic!("not a load run");
        };
        assert!(matches!(load.target, Target::InProcess(_)));
        let encryption = load.client.encryption().expect("encrypted");
        assert!(!encryption.authorized_keys().is_any(), "pinned");
        assert_eq!(
            (load.connections, load.in_flight, load.payload, load.kind),
            (1, 64, 100, Kind::Calls)
        );
        assert_eq!(load.duration, Duration::from_secs(5));
    }

    #[test]
    fn handshakes_use_one_call_per_connection() {
        let BenchSettings::Load(load) =
            settings(&["--handshakes", "--plain", "--connections", "3"]).expect("valid")
        else {
            panic!("not a load run");
        };
        assert_eq!(
            (load.kind, load.in_flight, load.connections),
            (Kind::Handshakes, 1, 3)
        );
        assert!(load.client.encryption().is_none());
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--connections", "0"][..],
            &["--in-flight", "0"],
            &["--duration", "0"],
            &["--payload", "16000001"],
            &["--crypto", "--addr", "x:1"],
            &["--handshakes", "--in-flight", "2"],
            &["--secret-file", "s"],
        ] {
            assert!(settings(args).is_err(), "{args:?}");
        }
    }
}
