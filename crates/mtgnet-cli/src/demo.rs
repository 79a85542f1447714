//! `mtgnet demo`: a server and a client in one process, showing with
//! timings what MTGNet does: single calls, a batch, a notification, an
//! out-of-order pipeline, a remote error, a warning, and a throughput burst.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mtgnet::{
    AuthorizedKeys, Batch, CallError, CallResult, Client, ClientConfig, Condition, Encryption,
    IdentitySecret, Limits, RawJson, ServerConfig,
};

use crate::args::DemoArgs;
use crate::serve::LoopbackServer;

/// Calls in the throughput burst.
const BURST: usize = 2000;

/// Writes one line to stdout, failing the demo when stdout is gone.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

/// Runs `mtgnet demo`.
///
/// # Errors
///
/// The server cannot start, or a call that should succeed does not.
pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    crate::init_tracing("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(demo(args.plain))
}

async fn demo(plain: bool) -> anyhow::Result<()> {
    let server_identity = Arc::new(IdentitySecret::generate());
    let client_identity = Arc::new(IdentitySecret::generate());
    let server_key = server_identity.public_key();
    let client_key = client_identity.public_key();

    let limits = Limits::default().shutdown_grace(Duration::from_secs(1));
    let server_config = if plain {
        ServerConfig::plain()
    } else {
        // Mutual authentication: each side accepts only the other's key.
        ServerConfig::encrypted(
            Encryption::new(server_identity).authorized(AuthorizedKeys::only([client_key])),
        )
    }
    .limits(limits);
    let client_config = if plain {
        ClientConfig::plain()
    } else {
        ClientConfig::encrypted(
            Encryption::new(client_identity).authorized(AuthorizedKeys::only([server_key])),
        )
    }
    .call_timeout(Duration::from_secs(30));

    let server = LoopbackServer::start(server_config).await?;
    let address = server.addr;

    if plain {
        say!("MTGNet demo: a server and a client in one process, plain (unencrypted) TCP");
    } else {
        say!("MTGNet demo: a server and a client in one process, encrypted");
        say!(
            "  (encryption v2: Noise XX bound to Ed25519 identities, ChaCha20-Poly1305 records; \
             `mtgnet call --encryption v1` speaks the deployed peers' v1)"
        );
    }
    say!();
    say!("== identities");
    let started = Instant::now();
    let client = Client::connect(address, client_config)
        .await
        .with_context(|| format!("cannot connect to the demo server at {address}"))?;
    let connected = started.elapsed();
    if plain {
        say!("  server   {address}   (plain: no identities)");
        say!("  connect  {}", took(connected));
    } else {
        say!("  server   {address}   public key {server_key}");
        say!(
            "  client   {:<w$}   public key {client_key}",
            "",
            w = address.to_string().len()
        );
        let seen = client
            .peer_identity()
            .map_or_else(|| "none".to_owned(), ToString::to_string);
        say!(
            "  connect + handshake {}: the client pinned the server's key ({}), the server accepts only the client's",
            took(connected),
            if seen == server_key.to_string() {
                "verified"
            } else {
                "MISMATCH"
            }
        );
    }

    say!();
    say!("== single calls (one request, one response each)");
    for (service, method, args, shown) in [
        ("System", "rpcVersion", "[]", "()"),
        ("System", "services", "[]", "()"),
        ("Test", "echo", r#"["hello"]"#, r#"("hello")"#),
        ("Test", "add", "[2,3]", "(2, 3)"),
        (
            "Test",
            "add",
            "[4611686018427387904,4611686018427387905]",
            "(2^62, 2^62 + 1)",
        ),
    ] {
        let args = RawJson::from_string(args.to_owned())?;
        let started = Instant::now();
        let outcome = client.call_reply(service, method, &args).await;
        say!(
            "{}",
            row(
                &format!("{service}.{method}{shown}"),
                &outcome_text(outcome),
                started.elapsed()
            )
        );
    }

    say!();
    say!("== batch: 3 calls and 1 notification in one request, one response");
    let mut batch = Batch::new();
    let labels = ["System.rpcVersion()", "Test.add(40, 2)", "Test.fail()"];
    batch.call("System", "rpcVersion", RawJson::empty_array());
    batch.call("Test", "add", RawJson::from_string("[40,2]".to_owned())?);
    batch.notify(
        "Test",
        "echo",
        RawJson::from_string(r#"["from a batch"]"#.to_owned())?,
    );
    batch.call("Test", "fail", RawJson::empty_array());
    let started = Instant::now();
    let results = client.batch(batch).await?;
    let elapsed = started.elapsed();
    for (label, result) in labels.iter().zip(&results) {
        say!(
            "{}",
            row(label, &result_text(result), Duration::ZERO).trim_end()
        );
    }
    say!(
        "  {:<28}   (notification: runs on the server, no result)",
        r#"Test.echo("from a batch")"#
    );
    say!(
        "  {} results for 4 entries in {}; one call failing does not fail the others",
        results.len(),
        took(elapsed)
    );

    say!();
    say!("== notification: fire and forget, nothing comes back");
    let started = Instant::now();
    client
        .notify("Test", "echo", ("fire and forget",))
        .await
        .context("the notification was not sent")?;
    say!(
        "{}",
        row(
            r#"Test.echo("fire and forget")"#,
            "(queued, no response)",
            started.elapsed()
        )
    );

    say!();
    say!("== pipeline: Test.sleep(300), Test.sleep(100), Test.sleep(200) sent at once");
    let finished = RefCell::new(Vec::new());
    let started = Instant::now();
    let sleep = |ms: u64| {
        let client = client.clone();
        let finished = &finished;
        async move {
            let outcome = client.call::<_, u64>("Test", "sleep", (ms,)).await;
            finished.borrow_mut().push((ms, started.elapsed(), outcome));
        }
    };
    futures::join!(sleep(300), sleep(100), sleep(200));
    let total = started.elapsed();
    for (place, (ms, at, outcome)) in finished.into_inner().into_iter().enumerate() {
        let answer = match outcome {
            Ok(value) => value.to_string(),
            Err(e) => format!("failed: {e}"),
        };
        say!(
            "  {}  Test.sleep({ms}) → {answer:<5} done after {}",
            ["1st", "2nd", "3rd"].get(place).unwrap_or(&"   "),
            took(at)
        );
    }
    say!(
        "  total {}: answers arrive as they are ready, not in request order (one after another: 600 ms)",
        took(total)
    );

    say!();
    say!("== remote error: the server answers with an error condition");
    let started = Instant::now();
    let outcome = client.call_reply("Test", "fail", ()).await;
    say!(
        "{}",
        row("Test.fail()", &outcome_text(outcome), started.elapsed())
    );

    say!();
    say!("== warning: a result with a condition that did not stop the call");
    let started = Instant::now();
    let outcome = client.call_reply("Test", "warn", ("x",)).await;
    let elapsed = started.elapsed();
    let text = match &outcome {
        Ok(reply) => {
            let warnings: Vec<String> = reply.warnings.iter().map(condition_text).collect();
            format!(
                "{}  with {}",
                reply.data,
                warnings
                    .iter()
                    .map(|w| format!("warning {w}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Err(e) => format!("failed: {e}"),
    };
    say!("{}", row(r#"Test.warn("x")"#, &text, elapsed));

    say!();
    say!("== throughput: {BURST} pipelined Test.echo calls on one connection");
    let started = Instant::now();
    let calls = (0..BURST).map(|i| client.call::<_, usize>("Test", "echo", (i,)));
    let answers = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    let correct = answers
        .iter()
        .enumerate()
        .filter(|(i, answer)| answers_match(*i, answer))
        .count();
    let rate = BURST as f64 / elapsed.as_secs_f64().max(1e-9);
    say!(
        "  {BURST} calls in {}: {:.0} calls/s, {correct}/{BURST} answers correct",
        took(elapsed),
        rate
    );

    drop(client);
    server.stop().await?;
    say!();
    say!("done: the server shut down gracefully");
    std::io::stdout().flush()?;
    anyhow::ensure!(
        correct == BURST,
        "{} echo answers were wrong",
        BURST - correct
    );
    Ok(())
}

fn answers_match(i: usize, answer: &Result<usize, CallError>) -> bool {
    matches!(answer, Ok(n) if *n == i)
}

/// One aligned line: what was called, what came back, how long it took.
fn row(label: &str, result: &str, elapsed: Duration) -> String {
    let time = if elapsed.is_zero() {
        String::new()
    } else {
        took(elapsed)
    };
    format!("  {label:<28} → {result:<50} {time:>9}")
}

fn outcome_text(outcome: Result<mtgnet::Reply, CallError>) -> String {
    match outcome {
        Ok(reply) => reply.data.to_string(),
        Err(CallError::Remote(condition)) => format!("error {}", condition_text(&condition)),
        Err(e) => format!("failed: {e}"),
    }
}

fn result_text(result: &CallResult) -> String {
    match &result.outcome {
        Ok(data) => data.to_string(),
        Err(condition) => format!("error {}", condition_text(condition)),
    }
}

fn condition_text(condition: &Condition) -> String {
    format!("{}: {}", condition.code_text(), condition.message)
}

/// A duration for people: µs below a millisecond, ms below a second, else s.
fn took(elapsed: Duration) -> String {
    let micros = elapsed.as_secs_f64() * 1e6;
    if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.1} ms", micros / 1_000.0)
    } else {
        format!("{:.2} s", micros / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_right_unit() {
        assert_eq!(took(Duration::from_micros(412)), "412 µs");
        assert_eq!(took(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(took(Duration::from_millis(2_500)), "2.50 s");
    }
}
