//! `--baseline`: the ceiling a run is measured against. A raw TCP echo of
//! the same netstring+ frames (each one the bytes of a `Test.echo` request)
//! with the same connections and the same number in flight: no JSON, no
//! dispatch, no crypto, one task per connection on each side, no cross-task
//! wake-up. What mtgnet does beyond moving frames shows as the ratio.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use mtgnet::proto::framing::{FrameDecoder, encode_frame};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::GRACE;
use crate::histogram::Histogram;

/// Bytes a baseline server holds for a connection (echoes not yet written)
/// before it stops reading it.
const SERVER_BACKLOG: usize = 4 << 20;
/// Bytes read per attempt.
const READ_CHUNK: usize = 64 * 1024;

/// What the baseline run found.
#[derive(Debug)]
pub(super) struct Baseline {
    /// Round trips per second, all connections together.
    pub(super) per_sec: f64,
    /// Median round trip, in µs.
    pub(super) p50_us: f64,
}

/// The frame payload every round trip carries: the bytes of a `Test.echo`
/// request for a string of `payload` bytes, as a client sends it.
pub(super) fn request(payload: usize) -> Bytes {
    format!(
        r#"[{{"service":"Test","method":"echo","id":1,"args":["{}"]}}]"#,
        "x".repeat(payload)
    )
    .into()
}

/// Accepts connections and echoes every frame back until the listener
/// task is dropped.
pub(crate) async fn serve(listener: TcpListener, max_frame: usize) -> io::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        connections.spawn(async move {
            // A client that breaks the framing or goes away only ends its
            // own connection.
            let _ = echo(stream, max_frame).await;
        });
        // Reap the finished ones so the set does not grow with the run.
        while connections.try_join_next().is_some() {}
    }
}

/// Echoes one connection's frames, reading and writing in one task.
async fn echo(stream: TcpStream, max_frame: usize) -> anyhow::Result<()> {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::new();
    loop {
        let interest = match (output.is_empty(), output.len() < SERVER_BACKLOG) {
            (true, _) => Interest::READABLE,
            (false, true) => Interest::READABLE | Interest::WRITABLE,
            (false, false) => Interest::WRITABLE,
        };
        let ready = stream.ready(interest).await?;
        if ready.is_writable() && !output.is_empty() {
            write_some(&stream, &mut output)?;
        }
        if ready.is_readable() && interest.is_readable() {
            if read_some(&stream, &mut input)? == Some(0) {
                return Ok(());
            }
            while let Some(frame) = decoder.decode(&mut input)? {
                encode_frame(&frame, &mut output);
            }
        }
    }
}

/// Writes what the socket takes now.
fn write_some(stream: &TcpStream, output: &mut BytesMut) -> io::Result<()> {
    match stream.try_write(output) {
        Ok(n) => {
            let _ = output.split_to(n);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads what the socket has now: `Some(0)` at the end of the stream,
/// `None` when nothing was there after all.
fn read_some(stream: &TcpStream, input: &mut BytesMut) -> io::Result<Option<usize>> {
    input.reserve(READ_CHUNK);
    match stream.try_read_buf(input) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs `connections` × `in_flight` round trips of `request` against the
/// echo server at `addr` for `duration`.
pub(super) async fn measure(
    addr: SocketAddr,
    connections: usize,
    in_flight: usize,
    request: Bytes,
    duration: Duration,
) -> anyhow::Result<Baseline> {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::time::timeout(GRACE, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("the baseline server at {addr} did not accept in time"))?
            .with_context(|| format!("cannot connect to the baseline server at {addr}"))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for stream in streams {
        workers.spawn(round_trips(stream, in_flight, request.clone(), deadline));
    }
    let mut completed = 0u64;
    let mut latency = Histogram::default();
    while let Some(done) = workers.join_next().await {
        let (count, histogram) = done.context("a baseline worker panicked")??;
        completed += count;
        latency.merge(&histogram);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Baseline {
        per_sec: completed as f64 / seconds,
        p50_us: latency.quantile_us(0.5),
    })
}

/// One connection: keeps `depth` frames in flight until `deadline`, then
/// collects the last echoes. Each echo must be the frame sent.
async fn round_trips(
    stream: TcpStream,
    depth: usize,
    request: Bytes,
    deadline: Instant,
) -> anyhow::Result<(u64, Histogram)> {
    let mut frame = BytesMut::new();
    encode_frame(&request, &mut frame);
    let mut decoder = FrameDecoder::new(request.len());
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(frame.len() * depth);
    let mut sent = VecDeque::with_capacity(depth);
    let now = Instant::now();
    for _ in 0..depth {
        output.extend_from_slice(&frame);
        sent.push_back(now);
    }
    let mut completed = 0u64;
    let mut latency = Histogram::default();
    while !sent.is_empty() {
        let interest = if output.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let ready = tokio::time::timeout(GRACE, stream.ready(interest))
            .await
            .map_err(|_| anyhow!("the baseline server stopped answering"))??;
        if ready.is_writable() && !output.is_empty() {
            write_some(&stream, &mut output)?;
        }
        if !ready.is_readable() {
            continue;
        }
        if read_some(&stream, &mut input)? == Some(0) {
            bail!("the baseline server closed the connection");
        }
        let now = Instant::now();
        while let Some(echo) = decoder.decode(&mut input)? {
            if echo[..] != request[..] {
                bail!("the baseline server echoed other bytes");
            }
            let since = sent
                .pop_front()
                .ok_or_else(|| anyhow!("the baseline server echoed a frame never sent"))?;
            latency.record(now - since);
            completed += 1;
            if now < deadline {
                output.extend_from_slice(&frame);
                sent.push_back(now);
            }
        }
    }
    Ok((completed, latency))
}

/// A baseline echo server in a process of its own (this binary's hidden
/// `baseline-server` command), for runs against a server in another
/// process: killed when dropped.
pub(super) struct ServerProcess {
    child: Child,
    /// Its stdin: it exits when this closes, so that it ends with this
    /// process even if this one is killed.
    _lifeline: Option<std::process::ChildStdin>,
    /// Where it listens.
    pub(super) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts it on a free loopback port and waits for its `listening` line.
    pub(super) fn start(max_frame: usize) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("cannot find this program to run it again")?;
        let child = Command::new(exe)
            .args(["baseline-server", "--max-frame", &max_frame.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the baseline server")?;
        let mut server = ServerProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            _lifeline: None,
            child,
        };
        server._lifeline = server.child.stdin.take();
        let stdout = server
            .child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("the baseline server has no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("cannot read the baseline server's address")?;
        server.addr = line
            .strip_prefix("listening ")
            .and_then(|addr| addr.trim_end().parse().ok())
            .ok_or_else(|| anyhow!("the baseline server did not start: {line:?}"))?;
        Ok(server)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mtgnet baseline-server`: prints `listening ADDR`, echoes until
/// killed or its stdin closes (the `bench` that started it is gone).
pub(crate) fn run_server(max_frame: usize) -> anyhow::Result<()> {
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on loopback")?;
        println!("listening {}", listener.local_addr()?);
        serve(listener, max_frame).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_comes_back_and_is_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener, 1 << 20));
        let request = request(100_000);
        let baseline = measure(addr, 2, 8, request, Duration::from_millis(200))
            .await
            .expect("measures");
        assert!(baseline.per_sec > 0.0);
        assert!(baseline.p50_us > 0.0);
        server.abort();
    }

    #[tokio::test]
    async fn a_wrong_echo_is_an_error() {
        // A "server" that answers every frame with another one.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"3:abc\n")
                .await
                .expect("write");
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let err = measure(addr, 1, 1, request(10), Duration::from_millis(100))
            .await
            .expect_err("wrong bytes");
        assert_eq!(err.to_string(), "the baseline server echoed other bytes");
    }
}
