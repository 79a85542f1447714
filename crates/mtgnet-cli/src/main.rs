//! The `mtgnet` command: generate keys, run a server or a proxy in front of
//! one, make a call, watch a demo of what MTGNet does, or benchmark it.
//!
//! Exit codes: 0 on success, 1 when the server answered a call with an
//! error condition, 2 for anything else (bad usage, connection, handshake
//! or protocol failure, IO). Errors are printed on stderr as one line.
#![forbid(unsafe_code)]

mod args;
mod bench;
mod call;
mod demo;
mod endpoint;
mod histogram;
mod keys;
mod proxy;
mod serve;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use mtgnet::CallError;

use crate::args::{Cli, Command};

/// Exit code for a call the server answered with an error condition.
const EXIT_REMOTE: u8 = 1;
/// Exit code for every other failure, usage errors included.
const EXIT_FAILURE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` come here too, and succeed.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Call(args) => call::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Keygen(args) => keys::keygen(&args),
        Command::Pubkey(args) => keys::pubkey(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(args),
        Command::BaselineServer(args) => bench::baseline::run_server(args.max_frame),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Prints `e` on stderr as one line and picks the exit code for it.
fn report(e: &anyhow::Error) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    if let Some(condition) = e.downcast_ref::<CallError>().and_then(CallError::remote) {
        let _ = writeln!(
            stderr,
            "error {}: {}",
            condition.code_text(),
            one_line(&condition.message)
        );
        return ExitCode::from(EXIT_REMOTE);
    }
    if is_broken_pipe(e) {
        // The reader went away (`mtgnet keygen | head -1`): nothing to say.
        return ExitCode::from(EXIT_FAILURE);
    }
    if speaks_only_v1(e) {
        let _ = writeln!(stderr, "error: {}", call::ONLY_V1);
        return ExitCode::from(EXIT_FAILURE);
    }
    let _ = writeln!(stderr, "error: {}", one_line(&format!("{e:#}")));
    ExitCode::from(EXIT_FAILURE)
}

/// Whether `e` is a v2 client meeting a server that speaks only v1.
fn speaks_only_v1(e: &anyhow::Error) -> bool {
    use mtgnet::{Error, HandshakeFailure, PeerError};
    e.chain().any(|cause| {
        let error =
            cause
                .downcast_ref::<Error>()
                .or_else(|| match cause.downcast_ref::<CallError>() {
                    Some(CallError::Connection(e)) => Some(&**e),
                    _ => None,
                });
        matches!(
            error,
            Some(Error::Peer(PeerError::Handshake(HandshakeFailure::OnlyV1)))
        )
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Joins the lines of a message so that every error stays on one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Logs to stderr at `default_level`, or as `RUST_LOG` says.
pub(crate) fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The tokio runtime of `serve` and `bench`: `threads` worker threads
/// (`None`: one per CPU); one thread is the current-thread scheduler, with
/// no work stealing and no wake-up crossing threads.
pub(crate) fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let built = match threads {
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
    };
    anyhow::Context::context(built, "cannot start the tokio runtime")
}

/// The binary's allocator. glibc's malloc and free were 15-17 % of the
/// server's CPU profile of 100-byte calls; with mimalloc, calls/s rose by
/// about a fifth on one core and on two (README, Performance). The library
/// leaves the choice to the application.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
