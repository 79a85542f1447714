//! The load run: connections, workers, progress.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use mtgnet::{Batch, CallError, CallResult, Client, ClientConfig, RawJson};
use tokio::task::JoinSet;

use super::report::{LoadReport, round};
use super::{GRACE, Kind, LoadSettings, PROGRESS_TICK, Target};
use crate::call::connect_error;
use crate::endpoint::Address;
use crate::histogram::Histogram;
use crate::serve::LoopbackServer;

/// Starts the in-process server if there is one, runs the load, stops it.
pub(super) async fn load(settings: &LoadSettings) -> anyhow::Result<(LoadReport, Option<String>)> {
    let (addr, server) = match &settings.target {
        Target::Remote(endpoint) => (endpoint.resolve().await?, None),
        Target::InProcess(config) => {
            let server = LoopbackServer::start(config.clone()).await?;
            (Address::Tcp(server.addr), Some(server))
        }
    };
    let outcome = measure(settings, &addr).await;
    if let Some(server) = server {
        server.stop().await?;
    }
    let (mut report, first_error) = outcome?;
    if settings.baseline {
        let found = baseline(settings).await?;
        report.baseline_per_sec = Some(round(found.per_sec, 1));
        report.baseline_ratio = Some(round(report.per_sec / found.per_sec, 3));
        report.baseline_p50_us = Some(round(found.p50_us, 1));
    }
    report.server = match &settings.target {
        Target::Remote(name) => name.to_string(),
        Target::InProcess(_) => format!("in-process server on {addr}"),
    };
    Ok((report, first_error))
}

/// Runs the raw echo with the same load: in this process when the server
/// was, else in a process of its own beside this one.
async fn baseline(settings: &LoadSettings) -> anyhow::Result<super::baseline::Baseline> {
    let request = super::baseline::request(settings.payload);
    let max_frame = request.len();
    let measure = |addr| {
        super::baseline::measure(
            addr,
            settings.connections,
            settings.in_flight,
            request.clone(),
            settings.duration,
        )
    };
    match settings.target {
        Target::InProcess(_) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("cannot listen on loopback for the baseline")?;
            let addr = listener.local_addr()?;
            let server = tokio::spawn(super::baseline::serve(listener, max_frame));
            let found = measure(addr).await;
            server.abort();
            found
        }
        Target::Remote(_) => {
            let server = super::baseline::ServerProcess::start(max_frame)?;
            measure(server.addr).await
        }
    }
}

/// What one worker did.
#[derive(Debug, Default)]
pub(super) struct WorkerStats {
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
pub(super) struct Progress {
    completed: AtomicU64,
    errors: AtomicU64,
}

/// The one request every worker sends, and the answer it must get.
#[derive(Clone)]
pub(super) struct Echo {
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
pub(super) async fn measure(
    settings: &LoadSettings,
    addr: &Address,
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
                    addr.clone(),
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
        encryption: settings
            .client
            .encryption()
            .map(|e| e.client_version().to_string()),
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
        baseline_per_sec: None,
        baseline_ratio: None,
        baseline_p50_us: None,
        server: String::new(),
    };
    Ok((report, total.first_error))
}

/// Opens one connection and checks that the server echoes: so that a wrong
/// address, key or `--plain` fails at once, with the reason, not as errors.
pub(super) async fn connect(
    settings: &LoadSettings,
    addr: &Address,
    echo: &Echo,
) -> anyhow::Result<Client> {
    let name = addr.to_string();
    let client = tokio::time::timeout(settings.timeout, addr.connect(settings.client.clone()))
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
pub(super) async fn call_worker(
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
pub(super) async fn handshake_worker(
    addr: Address,
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
        match tokio::time::timeout_at(hard_stop, one_connection(&addr, &config, &echo)).await {
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
pub(super) async fn one_connection(
    addr: &Address,
    config: &ClientConfig,
    echo: &Echo,
) -> Result<(), String> {
    let client = addr.connect(config.clone()).await.map_err(|e| match e {
        mtgnet::Error::Io(e) => format!("cannot connect: {e}"),
        e => format!("the handshake failed: {e}"),
    })?;
    let answer = client.batch(echo.request.clone()).await;
    client.close().await;
    let results = answer.map_err(|e| e.to_string())?;
    echo.check(&results)
}

/// Shows the calls made so far on stderr: a line rewritten in place about
/// four times a second on a terminal, else one line a second.
pub(super) async fn show_progress(progress: Arc<Progress>, started: Instant, kind: Kind) {
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
pub(super) fn end_progress() {
    if std::io::stderr().is_terminal() {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K");
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use mtgnet::{CallResult, RawJson};

    use super::*;

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
}
