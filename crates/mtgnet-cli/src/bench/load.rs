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

    /// Adds what another worker did.
    fn merge(&mut self, other: WorkerStats) {
        self.completed += other.completed;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
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

/// How to open a connection: what [`connect`] needs of the settings, cheap
/// to clone onto another thread.
#[derive(Clone)]
pub(super) struct Dial {
    client: ClientConfig,
    /// Bound on connecting + handshake.
    timeout: Duration,
}

impl Dial {
    fn of(settings: &LoadSettings) -> Dial {
        Dial {
            client: settings.client.clone(),
            timeout: settings.timeout,
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
    let dial = Dial::of(settings);
    let mut workers = JoinSet::new();
    let started;
    let threads = match settings.threads {
        Some(threads) => threads,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    }
    .min(settings.connections);
    let mut threaded = None;
    match settings.kind {
        Kind::Calls if threads > 1 => {
            let run = CallThreads::start(settings, &dial, addr, &echo, threads, &progress).await?;
            started = run.started;
            threaded = Some(run);
        }
        Kind::Calls => {
            let mut clients = Vec::with_capacity(settings.connections);
            for _ in 0..settings.connections {
                clients.push(connect(&dial, addr, &echo).await?);
            }
            started = Instant::now();
            spawn_call_workers(
                &mut workers,
                &clients,
                settings.in_flight,
                &echo,
                started + settings.duration,
                &progress,
            );
        }
        Kind::Handshakes => {
            drop(connect(&dial, addr, &echo).await?);
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
    let total = match threaded {
        Some(run) => run.join().await,
        None => join_workers(workers).await,
    };
    let total = match total {
        Ok(total) => total,
        Err(e) => {
            reporter.abort();
            end_progress();
            return Err(e);
        }
    };
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

/// Starts `in_flight` call workers on each of `clients`, until `deadline`.
fn spawn_call_workers(
    workers: &mut JoinSet<WorkerStats>,
    clients: &[Client],
    in_flight: usize,
    echo: &Echo,
    deadline: Instant,
    progress: &Arc<Progress>,
) {
    for client in clients {
        for _ in 0..in_flight {
            workers.spawn(call_worker(
                client.clone(),
                echo.clone(),
                deadline,
                Arc::clone(progress),
            ));
        }
    }
}

/// Waits for every worker and sums up what they did.
async fn join_workers(mut workers: JoinSet<WorkerStats>) -> anyhow::Result<WorkerStats> {
    let mut total = WorkerStats::default();
    while let Some(done) = workers.join_next().await {
        total.merge(done.context("a benchmark worker panicked")?);
    }
    Ok(total)
}

/// The call workers of a run over several connections, on threads of their
/// own: each thread is a current-thread runtime with its share of the
/// connections, so that a connection's callers, reader and writer never
/// wake another thread (the shape `mtgnet serve` has). One work-stealing
/// runtime for 4 connections spent its time moving tasks between cores.
struct CallThreads {
    started: Instant,
    threads: Vec<std::thread::JoinHandle<anyhow::Result<WorkerStats>>>,
}

impl CallThreads {
    /// Connects every thread's share, then starts the clock for all of them
    /// at once. If any connection fails, every thread stops and the first
    /// error is returned.
    async fn start(
        settings: &LoadSettings,
        dial: &Dial,
        addr: &Address,
        echo: &Echo,
        threads: usize,
        progress: &Arc<Progress>,
    ) -> anyhow::Result<CallThreads> {
        let (ready, mut readied) = tokio::sync::mpsc::channel::<anyhow::Result<()>>(threads);
        // `None` until the clock starts; dropped without a value: stop.
        let (start, starting) = tokio::sync::watch::channel::<Option<Instant>>(None);
        let mut spawned = Vec::with_capacity(threads);
        for share in shares(settings.connections, threads) {
            let (dial, addr, echo) = (dial.clone(), addr.clone(), echo.clone());
            let (ready, mut starting) = (ready.clone(), starting.clone());
            let (in_flight, duration, progress) =
                (settings.in_flight, settings.duration, Arc::clone(progress));
            let thread = std::thread::Builder::new()
                .name("mtgnet-bench".to_owned())
                .spawn(move || {
                    crate::runtime(Some(1))?.block_on(async move {
                        let mut clients = Vec::with_capacity(share);
                        for _ in 0..share {
                            match connect(&dial, &addr, &echo).await {
                                Ok(client) => clients.push(client),
                                Err(e) => {
                                    let _ = ready.send(Err(e)).await;
                                    return Ok(WorkerStats::default());
                                }
                            }
                        }
                        let _ = ready.send(Ok(())).await;
                        drop(ready);
                        let Ok(started) = starting.wait_for(Option::is_some).await.map(|s| *s)
                        else {
                            return Ok(WorkerStats::default());
                        };
                        let deadline = started.unwrap_or_else(Instant::now) + duration;
                        let mut workers = JoinSet::new();
                        spawn_call_workers(
                            &mut workers,
                            &clients,
                            in_flight,
                            &echo,
                            deadline,
                            &progress,
                        );
                        join_workers(workers).await
                    })
                })
                .context("cannot start a benchmark thread")?;
            spawned.push(thread);
        }
        drop(ready);
        let mut failed = None;
        for _ in 0..threads {
            match readied.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => failed = Some(e),
                None => {
                    failed = Some(anyhow!(
                        "a benchmark thread stopped before its connections were open"
                    ))
                }
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some(e) = failed {
            // Dropping `start` without a value releases the waiting threads.
            drop(start);
            let _ = CallThreads {
                started: Instant::now(),
                threads: spawned,
            }
            .join()
            .await;
            return Err(e);
        }
        let started = Instant::now();
        // Every thread holds a receiver until it has read this.
        let _ = start.send(Some(started));
        Ok(CallThreads {
            started,
            threads: spawned,
        })
    }

    /// Waits for every thread (without blocking the runtime) and sums up
    /// what their workers did.
    async fn join(self) -> anyhow::Result<WorkerStats> {
        let threads = self.threads;
        tokio::task::spawn_blocking(move || {
            let mut total = WorkerStats::default();
            for thread in threads {
                let stats = thread
                    .join()
                    .map_err(|_| anyhow!("a benchmark thread panicked"))??;
                total.merge(stats);
            }
            Ok(total)
        })
        .await
        .context("a benchmark thread could not be joined")?
    }
}

/// `connections` spread over `threads`: sizes that differ by at most one.
fn shares(connections: usize, threads: usize) -> impl Iterator<Item = usize> {
    (0..threads).map(move |i| connections / threads + usize::from(i < connections % threads))
}

/// Opens one connection and checks that the server echoes: so that a wrong
/// address, key or `--plain` fails at once, with the reason, not as errors.
pub(super) async fn connect(dial: &Dial, addr: &Address, echo: &Echo) -> anyhow::Result<Client> {
    let name = addr.to_string();
    let client = tokio::time::timeout(dial.timeout, addr.connect(dial.client.clone()))
        .await
        .map_err(|_| {
            anyhow!(
                "cannot connect to {name} within {} s (see --timeout)",
                dial.timeout.as_secs_f64()
            )
        })?
        .map_err(|e| connect_error(&name, &e, &dial.client))?;
    let results = client
        .batch(echo.request.clone())
        .await
        .map_err(|e| match e {
            CallError::Connection(reason) => anyhow!(
                "the server at {name} closed the connection ({reason}); \
                 does it authorize this client's key, or is it {}?",
                if dial.client.encryption().is_some() {
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
