//! The raw command line, as clap parses it. Nothing here touches files or
//! the network: each command validates its arguments into a config of its own.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mtgnet::PublicKey;

use crate::endpoint::Endpoint;

/// MTGNet v1: JSON-over-netstring RPC with optional end-to-end encryption.
#[derive(Debug, Parser)]
#[command(name = "mtgnet", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs a server hosting `System` and the `Test` service.
    Serve(ServeArgs),
    /// Calls one method on a server and prints its result as JSON.
    Call(CallArgs),
    /// Puts encryption v2 in front of a server that speaks only v1 or no encryption.
    Proxy(ProxyArgs),
    /// Generates an identity secret.
    Keygen(KeygenArgs),
    /// Prints the public key of an identity secret.
    Pubkey(PubkeyArgs),
    /// Runs a server and a client in one process and shows what MTGNet does.
    Demo(DemoArgs),
    /// Measures calls/s, latency, handshakes/s, or the crypto throughput.
    Bench(BenchArgs),
    /// The raw TCP echo server `bench --baseline` measures against (started
    /// by `bench` itself; not for direct use).
    #[command(hide = true)]
    BaselineServer(BaselineServerArgs),
}

/// `mtgnet serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on: HOST:PORT (port 0 picks a free port; the first
    /// output line names it), or unix:PATH for a Unix-domain socket (a stale
    /// socket file is replaced, the file is removed on exit).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7707")]
    pub(crate) listen: Endpoint,
    /// Serves Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// Threads that serve connections (default: one per CPU). Over TCP each
    /// thread has its own runtime and listener (SO_REUSEPORT) and keeps its
    /// connections: no wake-up crosses threads; each takes its share of
    /// --max-connections.
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Microseconds a connection's thread keeps polling after a write that
    /// left nothing queued, before it may sleep (0: never; at most 10000).
    /// Lower latency for CPU: see the README's Performance section.
    #[arg(long, value_name = "MICROS", default_value_t = 0)]
    pub(crate) busy_poll: u64,
    /// Serves unencrypted connections.
    #[arg(long, conflicts_with_all = ["secret_file", "authorized_keys", "handshake_timeout"])]
    pub(crate) plain: bool,
    /// File holding the server's base64 identity secret (else $MTGNET_SECRET, else a throwaway identity).
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// File of client public keys allowed to connect, one per line (default: any key).
    #[arg(long, value_name = "FILE")]
    pub(crate) authorized_keys: Option<PathBuf>,
    /// Seconds a client may take to complete the handshake.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) handshake_timeout: Duration,
    /// Encryption versions accepted: `any` (v1 and v2, told apart by the
    /// client's first frame), `v1` (the deployed peers' only), or `v2`.
    #[arg(
        long,
        value_name = "VERSION",
        default_value = "any",
        conflicts_with = "plain"
    )]
    pub(crate) encryption: ServerEncryption,
    /// Largest request frame, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16_777_216)]
    pub(crate) max_frame: usize,
    /// Connections served at once.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(crate) max_connections: usize,
    /// Calls of one connection handled at once (back-pressure beyond).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) max_in_flight: usize,
    /// Bytes one connection may hold (requests being handled, replies not
    /// yet written) before the server stops reading it.
    #[arg(long, value_name = "BYTES", default_value_t = 33_554_432)]
    pub(crate) max_connection_bytes: usize,
    /// Calls in one request.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(crate) max_batch: usize,
    /// Seconds an idle connection stays open.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = seconds)]
    pub(crate) idle_timeout: Duration,
    /// Seconds a write to a client may make no progress before the connection is closed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    pub(crate) write_stall: Duration,
    /// Seconds calls in progress may take to finish on shutdown.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) shutdown_grace: Duration,
}

/// `mtgnet proxy`.
///
/// Accepts clients as `serve` does (v2 by default), opens one connection
/// to the backend per client it lets in, and relays messages both ways.
/// The backend hop is plain or encrypted v1: run the proxy next to the
/// backend.
#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// Address to listen on (port 0 picks a free port; the first output line names it).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: String,
    /// The backend, HOST:PORT (resolved again for every connection).
    #[arg(long, value_name = "ADDR")]
    pub(crate) to: String,
    /// The backend is plain (unencrypted).
    #[arg(long, conflicts_with = "to_server_key")]
    pub(crate) to_plain: bool,
    /// The backend speaks encryption v1 with this base64 public key
    /// (repeatable). Without it or --to-plain, the backend is v1 unpinned.
    #[arg(long, value_name = "B64")]
    pub(crate) to_server_key: Vec<PublicKey>,
    /// File holding the proxy's base64 identity secret, used toward clients
    /// and the backend (else $MTGNET_SECRET, else a throwaway identity).
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// File of client public keys allowed to connect, one per line (default: any key).
    #[arg(long, value_name = "FILE")]
    pub(crate) authorized_keys: Option<PathBuf>,
    /// Encryption versions accepted from clients: `v2`, or `any` (v1 and
    /// v2, told apart by the client's first frame).
    #[arg(long, value_name = "VERSION", default_value = "v2")]
    pub(crate) encryption: ProxyEncryption,
    /// Seconds a client may take to complete the handshake; also bounds the backend's.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) handshake_timeout: Duration,
    /// Seconds allowed for connecting to the backend.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) connect_timeout: Duration,
    /// Largest message, in bytes, either way.
    #[arg(long, value_name = "BYTES", default_value_t = 16_777_216)]
    pub(crate) max_frame: usize,
    /// Clients served at once (each with its backend connection).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(crate) max_connections: usize,
    /// Bytes one connection may hold (messages read from one side, not yet
    /// written to the other; half each way) before the proxy stops reading.
    #[arg(long, value_name = "BYTES", default_value_t = 33_554_432)]
    pub(crate) max_connection_bytes: usize,
    /// Seconds a connection with no message either way stays open.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = seconds)]
    pub(crate) idle_timeout: Duration,
    /// Seconds a write to either side may make no progress before the connection is closed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    pub(crate) write_stall: Duration,
    /// Seconds the backend may take to answer calls in flight once a
    /// connection is closing (client gone, idle, shutdown).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) shutdown_grace: Duration,
}

/// `mtgnet call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// Server address: HOST:PORT, or unix:PATH for a Unix-domain socket.
    #[arg(value_name = "ADDR")]
    pub(crate) addr: Endpoint,
    /// Service name, e.g. `Test`.
    #[arg(value_name = "SERVICE")]
    pub(crate) service: String,
    /// Method name, e.g. `echo`.
    #[arg(value_name = "METHOD")]
    pub(crate) method: String,
    /// Arguments, each one JSON value; text that is not JSON is sent as a
    /// string. Negative numbers work as they are; put `--` before other
    /// arguments that start with `-`.
    #[arg(value_name = "ARG", allow_negative_numbers = true)]
    pub(crate) args: Vec<String>,
    /// Talks to a plain (unencrypted) server.
    #[arg(long, conflicts_with_all = ["secret_file", "server_key"])]
    pub(crate) plain: bool,
    /// Seconds allowed for connecting, the handshake and the call.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    pub(crate) timeout: Duration,
    /// File holding the client's base64 identity secret (else $MTGNET_SECRET, else a throwaway identity).
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Accepts only a server with this base64 public key (repeatable).
    #[arg(long, value_name = "B64")]
    pub(crate) server_key: Vec<PublicKey>,
    /// Encryption version: `v2` (Noise XX), or `v1` for a server that
    /// speaks only v1 (the deployed Lisp and PHP peers). Never falls back.
    #[arg(
        long,
        value_name = "VERSION",
        default_value = "v2",
        conflicts_with = "plain"
    )]
    pub(crate) encryption: ClientEncryption,
}

/// `mtgnet keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Writes the secret to FILE (mode 0600) and prints only the public key.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Overwrites FILE if it exists.
    #[arg(long, requires = "out")]
    pub(crate) force: bool,
}

/// `mtgnet pubkey`.
#[derive(Debug, Args)]
pub(crate) struct PubkeyArgs {
    /// File holding the base64 secret (default: read it from stdin).
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Option<PathBuf>,
}

/// `mtgnet demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Runs the demo without encryption.
    #[arg(long)]
    pub(crate) plain: bool,
}

/// `mtgnet bench`.
///
/// Without `--addr`, benchmarks a server started in this process on
/// loopback (encrypted unless `--plain`, the client pinned to its key).
/// Every call is `Test.echo` of a `--payload`-byte string, and every answer
/// is checked: a wrong one counts as an error.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Server to load, HOST:PORT or unix:PATH (default: a server in this
    /// process on loopback).
    #[arg(long, value_name = "ADDR")]
    pub(crate) addr: Option<Endpoint>,
    /// Plain (unencrypted) connections.
    #[arg(long, conflicts_with_all = ["secret_file", "server_key"])]
    pub(crate) plain: bool,
    /// File holding the client's base64 identity secret (else $MTGNET_SECRET, else a throwaway identity).
    #[arg(long, value_name = "FILE", requires = "addr")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Accepts only a server with this base64 public key (repeatable).
    #[arg(long, value_name = "B64", requires = "addr")]
    pub(crate) server_key: Vec<PublicKey>,
    /// Encryption version of the client (and of the in-process server): `v2` or `v1`.
    #[arg(
        long,
        value_name = "VERSION",
        default_value = "v2",
        conflicts_with = "plain"
    )]
    pub(crate) encryption: ClientEncryption,
    /// Connections (with --handshakes: workers, each opening one connection after another).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) connections: usize,
    /// Calls in flight per connection (pipelined).
    #[arg(
        long,
        value_name = "K",
        default_value_t = 64,
        conflicts_with = "handshakes"
    )]
    pub(crate) in_flight: usize,
    /// Bytes of the string each call echoes.
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub(crate) payload: usize,
    /// Seconds to run (with --crypto: in all, split over the frame sizes).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    pub(crate) duration: Duration,
    /// Seconds allowed for connecting and the handshake, and for each call.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) timeout: Duration,
    /// Measures new connections per second: connect, handshake (unless
    /// --plain), one echo call, close. MB/s then counts the echoed payload.
    #[arg(long)]
    pub(crate) handshakes: bool,
    /// Measures sealing and opening frames (64 B to 1 MiB) through the
    /// session code and through raw libsodium; no network.
    #[arg(long, conflicts_with_all = [
        "addr", "plain", "secret_file", "server_key", "connections", "in_flight",
        "payload", "timeout", "handshakes",
    ])]
    pub(crate) crypto: bool,
    /// Also measures a raw TCP echo of the same frames (no JSON, no
    /// dispatch, no crypto) with the same connections and calls in flight,
    /// in the same run, and prints the ratio: the ceiling of this machine.
    #[arg(long, conflicts_with_all = ["crypto", "handshakes"])]
    pub(crate) baseline: bool,
    /// Client threads (default: one per CPU, at most one per connection),
    /// each a current-thread runtime with its share of the connections, so
    /// that no wake-up crosses threads (with --handshakes: workers of one
    /// runtime).
    #[arg(long, value_name = "N", conflicts_with = "crypto")]
    pub(crate) threads: Option<usize>,
    /// Microseconds each connection's thread keeps polling after a write
    /// that left nothing queued, before it may sleep (0: never; at most
    /// 10000): the client's, and the in-process server's.
    #[arg(
        long,
        value_name = "MICROS",
        default_value_t = 0,
        conflicts_with = "crypto"
    )]
    pub(crate) busy_poll: u64,
    /// Prints the result as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `mtgnet baseline-server` (hidden).
#[derive(Debug, Args)]
pub(crate) struct BaselineServerArgs {
    /// Largest frame echoed.
    #[arg(long, value_name = "BYTES", default_value_t = 16_777_216)]
    pub(crate) max_frame: usize,
}

/// `--encryption` of `serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ServerEncryption {
    /// v1 and v2.
    Any,
    /// v1 only.
    V1,
    /// v2 only.
    V2,
}

/// `--encryption` of `proxy`, toward clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProxyEncryption {
    /// v2 only.
    V2,
    /// v1 and v2.
    Any,
}

/// `--encryption` of `call` and `bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientEncryption {
    /// The deployed extension.
    V1,
    /// Noise XX.
    V2,
}

impl ClientEncryption {
    /// The library's version.
    pub(crate) fn version(self) -> mtgnet::EncryptionVersion {
        match self {
            ClientEncryption::V1 => mtgnet::EncryptionVersion::V1,
            ClientEncryption::V2 => mtgnet::EncryptionVersion::V2,
        }
    }
}

/// Parses a non-negative number of seconds, fractions allowed (`0.5`).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text:?} is not a non-negative, finite number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_accepts_fractions_and_rejects_negatives() {
        assert_eq!(seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds("3"), Ok(Duration::from_secs(3)));
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
        assert!(seconds("inf").is_err());
    }

    #[test]
    fn call_takes_negative_numbers_and_flags_after_them() {
        let cli = Cli::try_parse_from([
            "mtgnet",
            "call",
            "127.0.0.1:1",
            "Test",
            "add",
            "-5",
            "3",
            "--plain",
        ])
        .expect("parses");
        let Command::Call(call) = cli.command else {
            panic!("not a call: {cli:?}");
        };
        assert_eq!(call.args, ["-5", "3"]);
        assert!(call.plain);
    }
}
