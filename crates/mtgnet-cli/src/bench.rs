//! `mtgnet bench`: a load generator (calls/s and latency, or new
//! connections/s), against a server or one started in this process, and
//! the throughput of sealing and opening frames (`--crypto`).
//!
//! Every call is `Test.echo` of a string of `--payload` bytes, and every
//! answer is compared with the string sent (as JSON text, so the check
//! costs a `memcmp`): a wrong answer counts as an error, like a failed call.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use mtgnet::encryption::bench::{CryptoThroughput, crypto_throughput};
use mtgnet::{
    AuthorizedKeys, Batch, CallError, CallResult, Client, ClientConfig, Encryption, IdentitySecret,
    Limits, RawJson, Registry, Server, ServerConfig,
};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::call::connect_error;
use crate::histogram::Histogram;
use crate::keys;

/// Frame sizes of `--crypto`.
const CRYPTO_SIZES: [usize; 4] = [64, 1024, 65_536, 1_048_576];
/// Largest `--payload`: the echo and its framing must fit a default 16 MiB frame.
const MAX_PAYLOAD: usize = 16_000_000;
/// How long calls still running at the end of `--duration` may take to finish.
const GRACE: Duration = Duration::from_secs(5);
/// How often the progress line is refreshed on a terminal.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

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
    Remote(String),
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
}

impl TryFrom<BenchArgs> for BenchSettings {
    type Error = anyhow::Error;

    fn try_from(args: BenchArgs) -> anyhow::Result<BenchSettings> {
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
        let (target, client) = match args.addr {
            Some(addr) => {
                let client = if args.plain {
                    ClientConfig::plain()
                } else {
                    let (identity, _) = keys::load_identity(args.secret_file.as_deref())?;
                    let mut encryption = Encryption::new(identity).handshake_timeout(args.timeout);
                    if !args.server_key.is_empty() {
                        encryption = encryption.authorized(AuthorizedKeys::only(args.server_key));
                    }
                    ClientConfig::encrypted(encryption)
                };
                (Target::Remote(addr), client)
            }
            None => in_process(args.plain, args.timeout),
        };
        let kind = if args.handshakes {
            Kind::Handshakes
        } else {
            Kind::Calls
        };
        Ok(BenchSettings::Load(Box::new(LoadSettings {
            target,
            client: client.call_timeout(args.timeout),
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
        })))
    }
}

/// The in-process server's config (as `serve` has it, with throwaway
/// identities) and a client config pinned to its key.
fn in_process(plain: bool, timeout: Duration) -> (Target, ClientConfig) {
    let limits = Limits::default().shutdown_grace(Duration::from_secs(1));
    if plain {
        return (
            Target::InProcess(ServerConfig::plain().limits(limits)),
            ClientConfig::plain(),
        );
    }
    let server_identity = Arc::new(IdentitySecret::generate());
    let server_key = server_identity.public_key();
    let server = ServerConfig::encrypted(Encryption::new(server_identity)).limits(limits);
    let client = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .authorized(AuthorizedKeys::only([server_key]))
            .handshake_timeout(timeout),
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
        BenchSettings::Crypto { duration, json } => crypto(duration, json),
        BenchSettings::Load(settings) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            let (report, first_error) = runtime.block_on(load(&settings))?;
            // Tasks still winding down (connection drivers) must not delay the exit.
            runtime.shutdown_timeout(Duration::from_secs(1));
            let mut stdout = std::io::stdout().lock();
            if settings.json {
                serde_json::to_writer(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                write_summary(&mut stdout, &report, &settings)?;
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

/// The result of a load run; also its JSON form.
#[derive(Debug, Serialize)]
struct LoadReport {
    mode: &'static str,
    kind: &'static str,
    connections: usize,
    in_flight: usize,
    payload: usize,
    completed: u64,
    errors: u64,
    seconds: f64,
    per_sec: f64,
    /// Request payload bytes echoed per second, in 10^6 bytes.
    mb_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    /// Where the server was (for the summary only).
    #[serde(skip)]
    server: String,
}

/// Starts the in-process server if there is one, runs the load, stops it.
async fn load(settings: &LoadSettings) -> anyhow::Result<(LoadReport, Option<String>)> {
    let (addr, server) = match &settings.target {
        Target::Remote(addr) => {
            let resolved = tokio::net::lookup_host(addr.as_str())
                .await
                .with_context(|| format!("cannot resolve {addr}"))?
                .next()
                .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
            (resolved, None)
        }
        Target::InProcess(config) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("cannot listen on 127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let server = Server::new(
                Registry::new().with(mtgnet::demo::test_service()),
                config.clone(),
            );
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(async move {
                server
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
            });
            (addr, Some((stop, serving)))
        }
    };
    let outcome = measure(settings, addr).await;
    if let Some((stop, serving)) = server {
        let _ = stop.send(());
        serving
            .await
            .context("the in-process server panicked")?
            .context("the in-process server failed")?;
    }
    let (mut report, first_error) = outcome?;
    report.server = match &settings.target {
        Target::Remote(name) => name.clone(),
        Target::InProcess(_) => format!("in-process server on {addr}"),
    };
    Ok((report, first_error))
}

/// What one worker did.
#[derive(Debug, Default)]
struct WorkerStats {
    completed: u64,
    errors: u64,
    latency: Histogram,
    first_error: Option<String>,
}

impl WorkerStats {
    fn error(&mut self, progress: &Progress, what: impl FnOnce() -> String) {
        self.errors += 1;
        progress.errors.fetch_add(1, Ordering::Relaxed);
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }

    fn success(&mut self, progress: &Progress, elapsed: Duration) {
        self.completed += 1;
        self.latency.record(elapsed);
        progress.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters the progress line reads while the workers run.
#[derive(Debug, Default)]
struct Progress {
    completed: AtomicU64,
    errors: AtomicU64,
}

/// The one request every worker sends, and the answer it must get.
#[derive(Clone)]
struct Echo {
    request: Batch,
    /// The data of a correct answer, as JSON text.
    expected: Arc<str>,
}

impl Echo {
    fn new(payload: usize) -> anyhow::Result<Echo> {
        // Letters only: no escaping, so the JSON text is the payload plus quotes.
        let text: String = (b'a'..=b'z')
            .cycle()
            .take(payload)
            .map(char::from)
            .collect();
        let expected = serde_json::to_string(&text)?;
        let mut request = Batch::new();
        request.call(
            "Test",
            "echo",
            RawJson::from_string(format!("[{expected}]"))?,
        );
        Ok(Echo {
            request,
            expected: expected.into(),
        })
    }

    /// Checks an answer; the reason it is wrong, if it is.
    fn check(&self, results: &[CallResult]) -> Result<(), String> {
        match results {
            [result] => match &result.outcome {
                Ok(data) if data.as_str() == &*self.expected => Ok(()),
                Ok(data) => Err(format!(
                    "Test.echo returned {} bytes of JSON that differ from the {} sent",
                    data.as_str().len(),
                    self.expected.len()
                )),
                Err(condition) => Err(format!(
                    "error {}: {}",
                    condition.code_text(),
                    condition.message
                )),
            },
            _ => Err(format!("{} results for one call", results.len())),
        }
    }
}

/// Connects (and checks the server with one call) before the clock starts,
/// runs the workers until the deadline, and sums up what they did.
async fn measure(
    settings: &LoadSettings,
    addr: SocketAddr,
) -> anyhow::Result<(LoadReport, Option<String>)> {
    let echo = Echo::new(settings.payload)?;
    let progress = Arc::new(Progress::default());
    let mut workers = JoinSet::new();
    let started;
    match settings.kind {
        Kind::Calls => {
            let mut clients = Vec::with_capacity(settings.connections);
            for _ in 0..settings.connections {
                clients.push(connect(settings, addr, &echo).await?);
            }
            started = Instant::now();
            let deadline = started + settings.duration;
            for client in &clients {
                for _ in 0..settings.in_flight {
                    workers.spawn(call_worker(
                        client.clone(),
                        echo.clone(),
                        deadline,
                        Arc::clone(&progress),
                    ));
                }
            }
        }
        Kind::Handshakes => {
            drop(connect(settings, addr, &echo).await?);
            started = Instant::now();
            let deadline = started + settings.duration;
            let config = Arc::new(settings.client.clone());
            for _ in 0..settings.connections {
                workers.spawn(handshake_worker(
                    addr,
                    Arc::clone(&config),
                    echo.clone(),
                    deadline,
                    Arc::clone(&progress),
                ));
            }
        }
    }
    let reporter = tokio::spawn(show_progress(Arc::clone(&progress), started, settings.kind));
    let mut total = WorkerStats::default();
    while let Some(done) = workers.join_next().await {
        let stats = done.context("a benchmark worker panicked")?;
        total.completed += stats.completed;
        total.errors += stats.errors;
        total.latency.merge(&stats.latency);
        if total.first_error.is_none() {
            total.first_error = stats.first_error;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    reporter.abort();
    let _ = reporter.await;
    end_progress();

    let per_sec = total.completed as f64 / seconds;
    let report = LoadReport {
        mode: if settings.client.encryption().is_some() {
            "encrypted"
        } else {
            "plain"
        },
        kind: settings.kind.name(),
        connections: settings.connections,
        in_flight: settings.in_flight,
        payload: settings.payload,
        completed: total.completed,
        errors: total.errors,
        seconds: round(seconds, 3),
        per_sec: round(per_sec, 1),
        mb_per_sec: round(per_sec * settings.payload as f64 / 1e6, 3),
        p50_us: round(total.latency.quantile_us(0.5), 1),
        p99_us: round(total.latency.quantile_us(0.99), 1),
        p999_us: round(total.latency.quantile_us(0.999), 1),
        server: String::new(),
    };
    Ok((report, total.first_error))
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Opens one connection and checks that the server echoes: so that a wrong
/// address, key or `--plain` fails at once, with the reason, not as errors.
async fn connect(settings: &LoadSettings, addr: SocketAddr, echo: &Echo) -> anyhow::Result<Client> {
    let name = addr.to_string();
    let client = tokio::time::timeout(
        settings.timeout,
        Client::connect(addr, settings.client.clone()),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "cannot connect to {name} within {} s (see --timeout)",
            settings.timeout.as_secs_f64()
        )
    })?
    .map_err(|e| connect_error(&name, &e, &settings.client))?;
    let results = client
        .batch(echo.request.clone())
        .await
        .map_err(|e| match e {
            CallError::Connection(reason) => anyhow!(
                "the server at {name} closed the connection ({reason}); \
                 does it authorize this client's key, or is it {}?",
                if settings.client.encryption().is_some() {
                    "plain (then use --plain)"
                } else {
                    "encrypted (then drop --plain)"
                }
            ),
            other => anyhow!("the first Test.echo call to {name} failed: {other}"),
        })?;
    echo.check(&results)
        .map_err(|reason| anyhow!("the first Test.echo call to {name} failed: {reason}"))?;
    Ok(client)
}

/// One of K loops on a connection: call, check, record, until the deadline.
async fn call_worker(
    client: Client,
    echo: Echo,
    deadline: Instant,
    progress: Arc<Progress>,
) -> WorkerStats {
    let hard_stop = tokio::time::Instant::from_std(deadline + GRACE);
    let mut stats = WorkerStats::default();
    loop {
        let began = Instant::now();
        if began >= deadline {
            break;
        }
        let answer = tokio::time::timeout_at(hard_stop, client.batch(echo.request.clone())).await;
        match answer {
            Ok(Ok(results)) => match echo.check(&results) {
                Ok(()) => stats.success(&progress, began.elapsed()),
                Err(reason) => stats.error(&progress, || reason),
            },
            Ok(Err(CallError::Connection(reason))) => {
                // The connection is gone: every worker on it stops.
                stats.error(&progress, || format!("the connection failed: {reason}"));
                break;
            }
            Ok(Err(e)) => stats.error(&progress, || e.to_string()),
            Err(_) => {
                stats.error(&progress, || {
                    format!(
                        "a call was still running {} s after the end",
                        GRACE.as_secs()
                    )
                });
                break;
            }
        }
    }
    stats
}

/// Opens connections one after another: connect, handshake, one echo, close.
async fn handshake_worker(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    echo: Echo,
    deadline: Instant,
    progress: Arc<Progress>,
) -> WorkerStats {
    let hard_stop = tokio::time::Instant::from_std(deadline + GRACE);
    let mut stats = WorkerStats::default();
    loop {
        let began = Instant::now();
        if began >= deadline {
            break;
        }
        match tokio::time::timeout_at(hard_stop, one_connection(addr, &config, &echo)).await {
            Ok(Ok(())) => stats.success(&progress, began.elapsed()),
            Ok(Err(reason)) => {
                stats.error(&progress, || reason);
                // Do not spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                stats.error(&progress, || {
                    format!(
                        "a connection was still open {} s after the end",
                        GRACE.as_secs()
                    )
                });
                break;
            }
        }
    }
    stats
}

/// Connect (`TCP_NODELAY`), handshake, one checked echo, close (waiting for
/// the connection to be shut down and dropped).
async fn one_connection(
    addr: SocketAddr,
    config: &ClientConfig,
    echo: &Echo,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    let (client, driver) = Client::new(stream, config.clone())
        .await
        .map_err(|e| format!("the handshake failed: {e}"))?;
    let driver = tokio::spawn(driver);
    let answer = client.batch(echo.request.clone()).await;
    drop(client);
    // The driver ends once the last handle is gone: it shuts the socket down.
    let _ = driver.await;
    let results = answer.map_err(|e| e.to_string())?;
    echo.check(&results)
}

/// Shows the calls made so far on stderr: a line rewritten in place about
/// four times a second on a terminal, else one line a second.
async fn show_progress(progress: Arc<Progress>, started: Instant, kind: Kind) {
    let terminal = std::io::stderr().is_terminal();
    let tick = if terminal {
        PROGRESS_TICK
    } else {
        Duration::from_secs(1)
    };
    let unit = match kind {
        Kind::Calls => "calls",
        Kind::Handshakes => "connections",
    };
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    loop {
        interval.tick().await;
        let seconds = started.elapsed().as_secs_f64();
        let completed = progress.completed.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let rate = completed as f64 / seconds.max(1e-9);
        let line = format!(
            "bench: {seconds:5.1} s  {completed:>10} {unit}  {rate:>10.0} {unit}/s  {errors} errors"
        );
        let mut stderr = std::io::stderr().lock();
        let _ = if terminal {
            write!(stderr, "\r{line}\x1b[K")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    }
}

/// Clears the progress line on a terminal.
fn end_progress() {
    if std::io::stderr().is_terminal() {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K");
        let _ = stderr.flush();
    }
}

fn write_summary(
    out: &mut impl Write,
    report: &LoadReport,
    settings: &LoadSettings,
) -> std::io::Result<()> {
    let unit = match settings.kind {
        Kind::Calls => "calls",
        Kind::Handshakes => "connections",
    };
    writeln!(
        out,
        "mtgnet bench: {}, {} ({})",
        report.kind, report.mode, report.server
    )?;
    match settings.kind {
        Kind::Calls => writeln!(
            out,
            "  load        {} connection{} × {} in flight, Test.echo of {} bytes",
            report.connections,
            if report.connections == 1 { "" } else { "s" },
            report.in_flight,
            report.payload
        )?,
        Kind::Handshakes => writeln!(
            out,
            "  load        {} worker{}, each: connect, {}one Test.echo of {} bytes, close",
            report.connections,
            if report.connections == 1 { "" } else { "s" },
            if report.mode == "plain" {
                ""
            } else {
                "handshake, "
            },
            report.payload
        )?,
    }
    writeln!(
        out,
        "  completed   {} {unit}, {} errors, in {:.2} s",
        report.completed, report.errors, report.seconds
    )?;
    writeln!(
        out,
        "  rate        {:.0} {unit}/s, {:.2} MB/s of echoed payload",
        report.per_sec, report.mb_per_sec
    )?;
    writeln!(
        out,
        "  latency     p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs{}",
        report.p50_us,
        report.p99_us,
        report.p999_us,
        match settings.kind {
            Kind::Calls => " per call",
            Kind::Handshakes => " per connection",
        }
    )
}

/// One row of `--crypto --json`.
#[derive(Debug, Serialize)]
struct CryptoRow {
    size: usize,
    seal_mb_s: f64,
    raw_seal_mb_s: f64,
    open_mb_s: f64,
    raw_open_mb_s: f64,
}

impl From<&CryptoThroughput> for CryptoRow {
    fn from(t: &CryptoThroughput) -> CryptoRow {
        CryptoRow {
            size: t.size,
            seal_mb_s: round(t.seal_mb_s, 1),
            raw_seal_mb_s: round(t.raw_seal_mb_s, 1),
            open_mb_s: round(t.open_mb_s, 1),
            raw_open_mb_s: round(t.raw_open_mb_s, 1),
        }
    }
}

/// `--crypto`: the session's seal and open next to raw libsodium, per size.
fn crypto(duration: Duration, json: bool) -> anyhow::Result<()> {
    let budget = duration / CRYPTO_SIZES.len() as u32;
    let terminal = std::io::stderr().is_terminal();
    let mut results = Vec::with_capacity(CRYPTO_SIZES.len());
    for size in CRYPTO_SIZES {
        if terminal {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(
                stderr,
                "\rbench: sealing and opening {size}-byte frames\x1b[K"
            );
            let _ = stderr.flush();
        }
        results.push(crypto_throughput(size, budget));
    }
    end_progress();
    let mut stdout = std::io::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Crypto {
            crypto: Vec<CryptoRow>,
        }
        let rows = results.iter().map(CryptoRow::from).collect();
        serde_json::to_writer(&mut stdout, &Crypto { crypto: rows })?;
        writeln!(stdout)?;
    } else {
        writeln!(
            stdout,
            "mtgnet bench --crypto: sealing and opening frames, MB/s of plaintext (1 MB = 10^6 bytes)"
        )?;
        writeln!(
            stdout,
            "  session = Session::seal_into / open_in_place (nonce, framing); raw = libsodium crypto_box_*_afternm"
        )?;
        writeln!(
            stdout,
            "  {:>9}  {:>10} {:>10} {:>6}   {:>10} {:>10} {:>6}",
            "size", "seal", "raw seal", "ratio", "open", "raw open", "ratio"
        )?;
        for t in &results {
            writeln!(
                stdout,
                "  {:>9}  {:>10.1} {:>10.1} {:>6.2}   {:>10.1} {:>10.1} {:>6.2}",
                size_text(t.size),
                t.seal_mb_s,
                t.raw_seal_mb_s,
                t.seal_ratio(),
                t.open_mb_s,
                t.raw_open_mb_s,
                t.open_ratio()
            )?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// A frame size for people: `64 B`, `1 KiB`, `64 KiB`, `1 MiB`.
fn size_text(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
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

    #[test]
    fn echo_checks_the_exact_text() {
        let echo = Echo::new(30).expect("echo");
        assert_eq!(&*echo.expected, "\"abcdefghijklmnopqrstuvwxyzabcd\"");
        let answer = |text: &str| CallResult {
            id: mtgnet::Id::from(0u64),
            outcome: Ok(RawJson::from_string(text.to_owned()).expect("JSON")),
            warnings: Vec::new(),
        };
        assert!(echo.check(&[answer(&echo.expected)]).is_ok());
        assert!(echo.check(&[answer("\"abc\"")]).is_err());
        assert!(echo.check(&[]).is_err());
    }

    #[test]
    fn sizes_read_well() {
        let texts: Vec<String> = CRYPTO_SIZES.iter().map(|&s| size_text(s)).collect();
        assert_eq!(texts, ["64 B", "1 KiB", "64 KiB", "1 MiB"]);
    }
}
