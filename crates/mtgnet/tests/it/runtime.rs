//! The server's runtime bounds, each reached and checked exactly: call
//! slots held until replies are written, the byte budget, the write stall,
//! shutdown answers, and nothing left running once `serve` returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mtgnet::{Limits, Registry, Server, ServerConfig, Service, Shutdown};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;

use crate::util::{TestServer, bounded, registry};

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// A `Count` service whose methods count how often they were called:
/// `make(n)` answers a string of `n` bytes, `echo(x)` answers `x`.
fn counting(calls: &Arc<AtomicUsize>) -> Service {
    let (made, echoed) = (Arc::clone(calls), Arc::clone(calls));
    Service::new("Count")
        .method("make", "A string of n bytes.", move |(n,): (usize,)| {
            made.fetch_add(1, Ordering::SeqCst);
            async move { Ok("m".repeat(n)) }
        })
        .method("echo", "Returns x.", move |(x,): (String,)| {
            echoed.fetch_add(1, Ordering::SeqCst);
            async move { Ok(x) }
        })
}

/// Serves one connection over an in-memory stream whose buffer holds
/// `buffer` bytes; returns the client's end and the counter of calls run.
fn serve_in_memory(
    limits: Limits,
    buffer: usize,
) -> (
    DuplexStream,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<Result<(), mtgnet::Error>>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Server::new(
        Registry::new().with(counting(&calls)),
        ServerConfig::plain().limits(limits),
    )
    .expect("valid limits");
    let (client, server_io) = tokio::io::duplex(buffer);
    let serving = tokio::spawn(async move {
        server
            .serve_connection(server_io, None, Shutdown::new())
            .await
    });
    (client, calls, serving)
}

/// Waits until `counter` has not moved for 300 ms; returns its value.
async fn settled(counter: &AtomicUsize) -> usize {
    bounded(async {
        let mut last = counter.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = counter.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await
}

/// Reads one netstring+ frame's payload.
async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> Vec<u8> {
    let mut header = Vec::new();
    loop {
        let byte = io.read_u8().await.expect("frame header");
        if byte == b':' {
            break;
        }
        header.push(byte);
    }
    let len = usize::from_str_radix(std::str::from_utf8(&header).expect("ASCII"), 16)
        .expect("hex length");
    let mut payload = vec![0; len + 1];
    io.read_exact(&mut payload).await.expect("payload");
    assert_eq!(payload.pop(), Some(b'\n'));
    payload
}

#[tokio::test]
async fn a_call_slot_is_held_until_its_reply_is_written_not_when_it_is_queued() {
    let limits = Limits::default()
        .max_in_flight(4)
        .max_connection_bytes(1 << 30);
    // 64 KiB of buffer: no 1 MiB reply is ever written whole.
    let (mut client, calls, _serving) = serve_in_memory(limits, 64 * 1024);
    for id in 1..=20 {
        let request =
            format!(r#"[{{"service":"Count","method":"make","args":[1048576],"id":{id}}}]"#);
        client
            .write_all(&frame(request.as_bytes()))
            .await
            .expect("write");
    }
    assert_eq!(
        settled(&calls).await,
        4,
        "max_in_flight 4 and no reply written: exactly 4 calls may run"
    );
}

#[tokio::test]
async fn the_byte_budget_stops_reading_until_replies_drain_and_nothing_is_lost() {
    const BUDGET: usize = 1024 * 1024;
    let limits = Limits::default()
        .max_in_flight(256)
        .max_connection_bytes(BUDGET);
    let (client, calls, _serving) = serve_in_memory(limits, 64 * 1024);
    let text = "e".repeat(256 * 1024);
    let requests: Vec<Vec<u8>> = (1..=10)
        .map(|id| {
            format!(r#"[{{"service":"Count","method":"echo","args":["{text}"],"id":{id}}}]"#)
                .into_bytes()
        })
        .collect();
    let size = requests[0].len();
    let (mut rd, mut wr) = tokio::io::split(client);
    let writing = tokio::spawn(async move {
        for request in &requests {
            wr.write_all(&frame(request)).await.expect("write");
        }
        wr
    });
    let ran = settled(&calls).await;
    // Reading stops once the connection holds its budget: the calls read
    // reach it, one fewer would not, and slots (256) are not the bound.
    assert!(
        ran * size >= BUDGET && (ran - 1) * size < BUDGET,
        "{ran} calls of {size} bytes ran against a {BUDGET}-byte budget"
    );
    // Reading the replies drains the budget: every call is answered.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let reply = bounded(read_frame(&mut rd)).await;
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("JSON");
        assert_eq!(reply[0]["data"].as_str().map(str::len), Some(text.len()));
        ids.push(reply[0]["id"].as_u64().expect("id"));
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=10).collect::<Vec<u64>>());
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    drop(bounded(writing).await);
}

#[tokio::test]
async fn a_large_reply_over_a_slow_but_live_link_is_not_cut_by_the_stall_limit() {
    let limits = Limits::default()
        .write_stall(Duration::from_millis(500))
        .idle_timeout(Duration::from_millis(500));
    let (mut client, _calls, _serving) = serve_in_memory(limits, 16 * 1024);
    let request = br#"[{"service":"Count","method":"make","args":[1048576],"id":1}]"#;
    client.write_all(&frame(request)).await.expect("write");
    // 16 KiB every 50 ms: the whole reply takes over 3 s, six stall limits,
    // but no single wait for the socket lasts longer than 50 ms.
    let mut received = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    let started = Instant::now();
    // The frame's whole length, once its header has arrived.
    let total = |received: &[u8]| -> Option<usize> {
        let colon = received.iter().position(|&b| b == b':')?;
        let len = usize::from_str_radix(std::str::from_utf8(&received[..colon]).ok()?, 16).ok()?;
        Some(colon + 1 + len + 1)
    };
    while total(&received).is_none_or(|total| received.len() < total) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = bounded(client.read(&mut chunk)).await.expect("read");
        assert_ne!(
            n,
            0,
            "cut after {} bytes and {:?}",
            received.len(),
            started.elapsed()
        );
        received.extend_from_slice(&chunk[..n]);
    }
    let mut rest = received.as_slice();
    let payload = bounded(read_frame(&mut rest)).await;
    let reply: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(reply[0]["data"].as_str().map(str::len), Some(1024 * 1024));
    assert!(started.elapsed() > Duration::from_secs(1));
}

/// A stream that records how many frames each write the server makes
/// carries (a frame ends with `\n`, which compact JSON never contains).
struct Recording {
    io: DuplexStream,
    frames_per_write: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Recording {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &written {
            let frames = buf[..*n].iter().filter(|&&b| b == b'\n').count();
            self.frames_per_write
                .lock()
                .expect("not poisoned")
                .push(frames);
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A client that pipelines sends a window of calls in one write. Were they
/// all started before any answer went out, the answers would all go back in
/// one write, and client and server would take turns, each idle while the
/// other works (two cores no faster than one). The server answers the
/// first 32 while the rest wait to start.
#[tokio::test]
async fn a_pipelined_window_is_answered_in_parts_as_it_is_handled_not_all_at_the_end() {
    const WINDOW: usize = 64;
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Server::new(
        Registry::new().with(counting(&calls)),
        ServerConfig::plain(),
    )
    .expect("valid config");
    let (mut client, server_io) = tokio::io::duplex(1 << 20);
    let frames_per_write = Arc::default();
    let recording = Recording {
        io: server_io,
        frames_per_write: Arc::clone(&frames_per_write),
    };
    let _serving = tokio::spawn(async move {
        server
            .serve_connection(recording, None, Shutdown::new())
            .await
    });
    let mut window = Vec::new();
    for id in 1..=WINDOW {
        let request = format!(r#"[{{"service":"Count","method":"echo","args":["x"],"id":{id}}}]"#);
        window.extend_from_slice(&frame(request.as_bytes()));
    }
    client.write_all(&window).await.expect("write");
    for _ in 0..WINDOW {
        bounded(read_frame(&mut client)).await;
    }
    let writes = frames_per_write.lock().expect("not poisoned").clone();
    assert_eq!(writes.iter().sum::<usize>(), WINDOW, "writes: {writes:?}");
    assert_eq!(
        writes,
        [32; WINDOW / 32],
        "the answers go out 32 at a time, each part as soon as it is handled"
    );
}

#[tokio::test]
async fn a_peer_that_never_reads_is_closed_after_the_write_stall_not_the_idle_timeout() {
    let limits = Limits::default()
        .write_stall(Duration::from_millis(300))
        .idle_timeout(Duration::from_secs(60));
    let (mut client, _calls, serving) = serve_in_memory(limits, 16 * 1024);
    let request = br#"[{"service":"Count","method":"make","args":[1048576],"id":1}]"#;
    client.write_all(&frame(request)).await.expect("write");
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("closed within 5 s, long before the 60 s idle timeout")
        .expect("task");
    let Err(mtgnet::Error::Io(e)) = ended else {
        panic!("expected a write timeout, got {ended:?}");
    };
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn shutdown_answers_requests_read_but_not_started_with_shutting_down() {
    let mut server = TestServer::start(
        ServerConfig::plain().limits(Limits::default().max_in_flight(1)),
        None,
        registry(),
    )
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // One write: the second request is read with the first, and waits for
    // the one slot while the first sleeps.
    let mut both = frame(br#"[{"service":"Test","method":"sleep","args":[400],"id":1}]"#);
    both.extend(frame(
        br#"[{"service":"Test","method":"add","args":[1,2],"id":2}]"#,
    ));
    stream.write_all(&both).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(async move {
        server.shutdown().await;
    });
    let first = bounded(read_frame(&mut stream)).await;
    let second = bounded(read_frame(&mut stream)).await;
    assert_eq!(first, br#"[{"id":1,"data":400}]"#);
    assert_eq!(
        second,
        br#"[{"id":2,"error":{"message":"the server is shutting down","code":"shutting-down"}}]"#
    );
    let mut rest = Vec::new();
    bounded(stream.read_to_end(&mut rest)).await.expect("EOF");
    assert!(rest.is_empty(), "nothing after the answers: {rest:?}");
    bounded(stopping).await.expect("shutdown");
}

/// The kernel's state of the IPv4 TCP socket `local` -> `remote` (as in
/// `/proc/net/tcp`: 1 is ESTABLISHED), if it exists.
#[cfg(target_os = "linux")]
fn tcp_state(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<u8> {
    let hex = |addr: std::net::SocketAddr| match addr {
        std::net::SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        std::net::SocketAddr::V6(_) => unreachable!("loopback IPv4 only"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| u8::from_str_radix(fields[3], 16).ok())
            .flatten()
    })
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_serve_returns_no_task_of_it_is_left_holding_a_socket() {
    const ESTABLISHED: u8 = 1;
    let limits = Limits::default().shutdown_grace(Duration::from_millis(200));
    let mut server =
        TestServer::start(ServerConfig::plain().limits(limits), None, registry()).await;
    // An 8 MiB reply to a client that never reads: the writer stalls with
    // far more than the socket buffers can take.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let client = stream.local_addr().expect("client address");
    let text = "s".repeat(8 * 1024 * 1024);
    let request = format!(r#"[{{"service":"Test","method":"echo","args":["{text}"],"id":1}}]"#);
    stream
        .write_all(&frame(request.as_bytes()))
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tcp_state(server.addr, client), Some(ESTABLISHED));
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Closed by the time serve returned, not some time after: the stalled
    // writer task was ended and waited for.
    assert_ne!(
        tcp_state(server.addr, client),
        Some(ESTABLISHED),
        "the server's socket is still open after serve returned"
    );
    // And the reply was cut: reading ends before all of it.
    let mut received = 0;
    let mut chunk = vec![0; 1 << 16];
    loop {
        match bounded(stream.read(&mut chunk)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(
        received < text.len(),
        "the reply went on after serve returned"
    );
}

#[tokio::test]
async fn a_lone_surrogate_costs_the_call_not_the_connection() {
    let server = TestServer::plain().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(&frame(br#"[{"service":"\ud800","method":"add","args":[1,2],"id":1},{"service":"Test","method":"add","args":[1,2],"id":"\udfff"},{"service":"Test","method":"add","args":[1,2],"id":2}]"#))
        .await
        .expect("write");
    let reply = String::from_utf8(bounded(read_frame(&mut stream)).await).expect("UTF-8");
    for expected in [
        r#"{"id":1,"error":{"message":"service is not valid Unicode (a lone surrogate escape)","code":"invalid-call"}}"#,
        r#"{"id":"\udfff","error":{"message":"the Id is a string that is not valid Unicode (a lone surrogate escape)","code":"invalid-call"}}"#,
        r#"{"id":2,"data":3}"#,
    ] {
        assert!(reply.contains(expected), "{expected} in {reply}");
    }
    stream
        .write_all(&frame(
            br#"[{"service":"Test","method":"add","args":[2,2],"id":3}]"#,
        ))
        .await
        .expect("write");
    assert_eq!(
        bounded(read_frame(&mut stream)).await,
        br#"[{"id":3,"data":4}]"#
    );
}

/// Connections handed over through a channel: a listener that is not TCP.
struct Handed(tokio::sync::mpsc::Receiver<DuplexStream>);

impl mtgnet::Listener for Handed {
    type Io = DuplexStream;

    async fn accept(&mut self) -> std::io::Result<(DuplexStream, mtgnet::Peer)> {
        match self.0.recv().await {
            Some(io) => Ok((io, mtgnet::Peer::default())),
            None => std::future::pending().await,
        }
    }
}

#[tokio::test]
async fn a_custom_listener_keeps_the_connection_limit_and_graceful_shutdown() {
    let server = Server::new(
        registry(),
        ServerConfig::plain().limits(Limits::default().max_connections(1)),
    )
    .expect("valid limits");
    let (hand, handed) = tokio::sync::mpsc::channel(4);
    let shutdown = Shutdown::new();
    let serving = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.serve(Handed(handed), shutdown).await }
    });
    let connect = || async {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        hand.send(server_io).await.expect("handed over");
        let (client, driver) = mtgnet::Client::new(client_io, mtgnet::ClientConfig::plain())
            .await
            .expect("client");
        tokio::spawn(driver);
        client
    };
    let first = connect().await;
    let second = connect().await;
    let sum: i64 = bounded(first.call("Test", "add", (1, 2)))
        .await
        .expect("served");
    assert_eq!(sum, 3);
    // One connection at a time: the second waits while the first is open.
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        second.call::<_, i64>("Test", "add", (2, 2)),
    )
    .await;
    assert!(
        waiting.is_err(),
        "the second connection was served beside the first"
    );
    first.close().await;
    let sum: i64 = bounded(second.call("Test", "add", (2, 2)))
        .await
        .expect("served next");
    assert_eq!(sum, 4);
    // A call running at shutdown is answered; then serve returns.
    let running = tokio::spawn({
        let second = second.clone();
        async move { second.call::<_, u64>("Test", "sleep", (200,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.trigger();
    assert_eq!(
        bounded(running).await.expect("task").expect("answered"),
        200
    );
    bounded(serving)
        .await
        .expect("task")
        .expect("serve returns Ok");
}

#[tokio::test]
async fn accepted_tcp_connections_get_nodelay_and_keepalive_and_their_peer_address() {
    let mut listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (stream, peer) = bounded(mtgnet::Listener::accept(&mut listener))
        .await
        .expect("accept");
    assert_eq!(peer.address, Some(client.local_addr().expect("addr")));
    assert_eq!(peer.credentials, None);

    let socket = socket2::SockRef::from(&stream);
    assert!(socket.tcp_nodelay().expect("TCP_NODELAY"));
    assert!(socket.keepalive().expect("SO_KEEPALIVE"));
    assert_eq!(
        (
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            socket.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            socket.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
        ),
        (Duration::from_secs(60), Duration::from_secs(10), 6)
    );
}

/// CPU time this thread has used (user + system), from
/// `/proc/thread-self/stat`, in clock ticks of 10 ms.
#[cfg(target_os = "linux")]
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // Fields after the command name, which ends with the last ')'.
    let after = &stat[stat.rfind(')').expect("command name") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| fields[i].parse::<u64>().expect("a tick count");
    ticks(11) + ticks(12)
}

/// Busy polling keeps a connection's thread working for at most the time
/// given after each write, then lets it sleep: client and server both
/// poll for 10 ms after every write, on this one thread, and an idle half
/// second after the last call costs this thread far less than half a
/// second of CPU. (A spin that did not end would cost all of it: the
/// timer that ends the wait still fires between the spinning turns.)
#[cfg(target_os = "linux")]
#[tokio::test]
async fn busy_polling_answers_calls_and_stops_spinning_when_its_time_is_up() {
    let spin = Duration::from_millis(10);
    let server = TestServer::start(
        ServerConfig::plain().busy_poll(spin),
        None,
        crate::util::registry(),
    )
    .await;
    let client = bounded(mtgnet::Client::connect(
        server.addr,
        mtgnet::ClientConfig::plain().busy_poll(spin),
    ))
    .await
    .expect("connects");
    for n in 0..100 {
        let text = format!("call {n}");
        let echoed: String = bounded(client.call("Test", "echo", (&text,)))
            .await
            .expect("echoed");
        assert_eq!(echoed, text);
    }
    let before = thread_cpu_ticks();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spent = thread_cpu_ticks() - before;
    assert!(
        spent <= 15,
        "{spent} ticks of 10 ms spent idle: the spinning did not stop"
    );
}

#[test]
fn busy_polling_longer_than_the_maximum_is_refused_by_name() {
    let too_long = mtgnet::MAX_BUSY_POLL + Duration::from_nanos(1);
    let refused = Server::new(Registry::new(), ServerConfig::plain().busy_poll(too_long));
    assert!(
        matches!(
            refused,
            Err(mtgnet::ConfigError::OutOfRange {
                setting: "busy_poll",
                ..
            })
        ),
        "{:?}",
        refused.err()
    );
    let client = mtgnet::ClientConfig::plain().busy_poll(too_long).validate();
    assert!(
        matches!(
            client,
            Err(mtgnet::ConfigError::OutOfRange {
                setting: "busy_poll",
                ..
            })
        ),
        "{client:?}"
    );
    assert!(
        Server::new(
            Registry::new(),
            ServerConfig::plain().busy_poll(mtgnet::MAX_BUSY_POLL)
        )
        .is_ok()
    );
}
