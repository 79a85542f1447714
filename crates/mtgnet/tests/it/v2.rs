//! Encryption v2 over real loopback sockets: both roles, negotiation
//! beside v1, authorization and pinning, and the attacks a network
//! attacker can mount on records, which v1 cannot detect and v2 must.
//!
//! The attacks run through [`Relay`], a man in the middle that parses the
//! netstring+ frames going each way and lets each test script what it
//! does with them once the handshake is over (replay, swap, reflect,
//! inject from another session, cut). Servers run each connection through
//! [`Server::serve_connection`] so that the server side's verdict is seen
//! too ([`ObservedServer`]). Every timeout in force is [`PATIENT`] (10 s);
//! every detection must be [`PROMPT`] (under 2 s), so that no timeout can
//! pass for a detection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtgnet::encryption::RecordError;
use mtgnet::{
    AuthError, AuthorizedKeys, CallError, Client, ClientConfig, Encryption, EncryptionVersion,
    Error, HandshakeFailure, IdentitySecret, Limits, PeerError, Registry, Server, ServerConfig,
    Service, Shutdown,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::util::{BOUND, bounded, registry};

/// The handshake bound, idle timeout and call timeout of these tests:
/// long, so that a side that missed an attack would wait this long.
const PATIENT: Duration = Duration::from_secs(10);

/// How soon an attack must end the connection: well under [`PATIENT`].
const PROMPT: Duration = Duration::from_secs(2);

/// A call left in flight while an attack happens: it would be answered
/// only after this long, far beyond [`PROMPT`].
const LONG_SLEEP_MS: u64 = 5_000;

/// The v2 hello frame: `31:` + `mtgnet-noise-xx/1` + 32 bytes + `\n`.
const HELLO_FRAME_LEN: usize = 53;
/// Message 2 as a frame: `C0:` + 192 bytes + `\n`.
const MESSAGE2_FRAME_LEN: usize = 196;
/// Message 3 as a frame: `A0:` + 160 bytes + `\n`.
const MESSAGE3_FRAME_LEN: usize = 164;
/// A v1 handshake frame: `80:` + 128 bytes + `\n`.
const V1_FRAME_LEN: usize = 132;
/// A v2 close record as a frame: `11:` + 17 bytes (flag + tag) + `\n`.
const CLOSE_FRAME_LEN: usize = 21;

// ---------------------------------------------------------------------------
// A server whose connections report how they ended.
// ---------------------------------------------------------------------------

/// A server on 127.0.0.1:0 serving each connection with
/// [`Server::serve_connection`] and reporting how each one ended; it hosts
/// the usual test services plus `Count` (see [`counting_registry`]).
struct ObservedServer {
    addr: SocketAddr,
    identity: Arc<IdentitySecret>,
    /// How many `Count` calls have started.
    bumps: Arc<AtomicUsize>,
    stop: Shutdown,
    outcomes: mpsc::UnboundedReceiver<Result<(), Error>>,
    task: JoinHandle<()>,
}

impl ObservedServer {
    /// A server accepting both versions (the default) and any client.
    async fn any() -> ObservedServer {
        ObservedServer::start(None, AuthorizedKeys::any()).await
    }

    async fn start(
        version: Option<EncryptionVersion>,
        authorized: AuthorizedKeys,
    ) -> ObservedServer {
        let identity = Arc::new(IdentitySecret::generate());
        let mut encryption = Encryption::new(Arc::clone(&identity))
            .authorized(authorized)
            .handshake_timeout(PATIENT);
        if let Some(version) = version {
            encryption = encryption.version(version);
        }
        let bumps = Arc::new(AtomicUsize::new(0));
        let config = ServerConfig::encrypted(encryption).limits(
            Limits::default()
                .idle_timeout(PATIENT)
                .shutdown_grace(PATIENT),
        );
        let server = Server::new(counting_registry(&bumps), config).expect("valid limits");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let stop = Shutdown::new();
        let (report, outcomes) = mpsc::unbounded_channel();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut connections = JoinSet::new();
                loop {
                    let (io, peer) = tokio::select! {
                        accepted = listener.accept() => accepted.expect("accept"),
                        () = stop.triggered() => break,
                    };
                    let (server, stop, report) = (server.clone(), stop.clone(), report.clone());
                    connections.spawn(async move {
                        let outcome = server.serve_connection(io, Some(peer), stop).await;
                        let _ = report.send(outcome);
                    });
                }
                while connections.join_next().await.is_some() {}
            }
        });
        ObservedServer {
            addr,
            identity,
            bumps,
            stop,
            outcomes,
            task,
        }
    }

    fn key(&self) -> mtgnet::PublicKey {
        self.identity.public_key()
    }

    /// A v2 client configuration pinning this server, with [`PATIENT`] bounds.
    fn client_config(&self) -> ClientConfig {
        client_config(self.key(), EncryptionVersion::V2)
    }

    /// How the next connection to end ended.
    async fn next_outcome(&mut self) -> Result<(), Error> {
        bounded(self.outcomes.recv())
            .await
            .expect("the server reports every connection")
    }

    /// How many `Count` calls have started.
    fn bumped(&self) -> usize {
        self.bumps.load(Ordering::SeqCst)
    }
}

impl Drop for ObservedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The usual test services, plus `Count.bump() -> n`, the number of runs
/// so far including this one (a call that must not run twice), and
/// `Count.hold(ms)`, which counts as a run when it starts and answers
/// after `ms`.
fn counting_registry(bumps: &Arc<AtomicUsize>) -> Registry {
    let bumps = Arc::clone(bumps);
    let held = Arc::clone(&bumps);
    registry().with(
        Service::new("Count")
            .method(
                "bump",
                "bump() -> how many times bump has run, this run included.",
                move |(): ()| {
                    let bumps = Arc::clone(&bumps);
                    async move { Ok(bumps.fetch_add(1, Ordering::SeqCst) + 1) }
                },
            )
            .method(
                "hold",
                "hold(ms) -> n: counts as a bump as it starts, answers after ms.",
                move |(ms,): (u64,)| {
                    let bumps = Arc::clone(&held);
                    async move {
                        let n = bumps.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok(n)
                    }
                },
            ),
    )
}

fn client_config(server: mtgnet::PublicKey, version: EncryptionVersion) -> ClientConfig {
    ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .authorized(AuthorizedKeys::only([server]))
            .handshake_timeout(PATIENT)
            .version(version),
    )
    .call_timeout(PATIENT)
}

async fn connect(addr: SocketAddr, config: ClientConfig) -> Client {
    bounded(Client::connect(addr, config))
        .await
        .expect("the client connects")
}

/// The connection error a call failed with; anything else fails the test.
fn connection_error<T: std::fmt::Debug>(what: &str, outcome: Result<T, CallError>) -> Arc<Error> {
    match outcome {
        Err(CallError::Connection(e)) => e,
        other => panic!("{what}: expected a connection error, got {other:?}"),
    }
}

/// Asserts that `since` is less than [`PROMPT`] ago.
fn assert_prompt(since: Instant, what: &str) {
    let waited = since.elapsed();
    assert!(
        waited < PROMPT,
        "{what}: took {waited:?}, not promptly (timeouts are {PATIENT:?})"
    );
}

/// Starts `Test.sleep(ms)` in its own task and returns its outcome and when it ended.
fn sleeping(client: &Client, ms: u64) -> JoinHandle<(Result<u64, CallError>, Instant)> {
    let client = client.clone();
    tokio::spawn(async move {
        let outcome = client.call::<_, u64>("Test", "sleep", (ms,)).await;
        (outcome, Instant::now())
    })
}

/// Starts `Count.hold(ms)` in its own task.
fn holding(client: &Client, ms: u64) -> JoinHandle<Result<usize, CallError>> {
    let client = client.clone();
    tokio::spawn(async move { client.call::<_, usize>("Count", "hold", (ms,)).await })
}

// ---------------------------------------------------------------------------
// The man in the middle.
// ---------------------------------------------------------------------------

/// Which way a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

/// A whole frame the relay received, before the script decides its fate.
struct Seen<'a> {
    /// The relayed connection, numbered from 0 in the order accepted.
    conn: usize,
    dir: Dir,
    /// The frame's position among this direction's frames after the
    /// handshake (v2: 2 frames to the server, 1 to the client; v1: 1 and 1);
    /// `None` for handshake frames.
    record: Option<usize>,
    /// The whole frame, header to newline.
    bytes: &'a [u8],
}

/// What the relay does, in order, for a frame it received.
enum Act {
    /// Writes these bytes to that side.
    Send(Dir, Vec<u8>),
    /// Ends both streams at once (a FIN each way, no close record), then
    /// reads and discards whatever still arrives.
    Cut,
}

type Script = Box<dyn FnMut(&Seen<'_>) -> Vec<Act> + Send>;

/// Forwards the frame unchanged.
fn forward(seen: &Seen<'_>) -> Vec<Act> {
    vec![Act::Send(seen.dir, seen.bytes.to_vec())]
}

/// What the relay saw of one connection.
#[derive(Clone, Debug, Default)]
struct ConnLog {
    /// Whole frames received from the client, as it sent them.
    from_client: Vec<Vec<u8>>,
    /// Whole frames received from the server, as it sent them.
    from_server: Vec<Vec<u8>>,
    /// Raw bytes received from each side, whole frames or not.
    client_bytes: usize,
    server_bytes: usize,
    /// Whether each side has ended its stream (end of file or reset).
    client_ended: bool,
    server_ended: bool,
}

struct RelayShared {
    script: Mutex<Script>,
    logs: Mutex<Vec<ConnLog>>,
}

/// A man in the middle on 127.0.0.1:0 in front of `server`: for each
/// connection accepted it connects to the server and relays frames both
/// ways through its script. A side's end of stream is passed on to the
/// other side as a FIN, and so is a reset: each real peer only ever sees
/// what the relay chose to send, then a clean end of stream.
struct Relay {
    addr: SocketAddr,
    shared: Arc<RelayShared>,
    task: JoinHandle<()>,
}

impl Relay {
    /// A relay that forwards everything unchanged.
    async fn transparent(server: SocketAddr) -> Relay {
        Relay::new(server, forward).await
    }

    async fn new(
        server: SocketAddr,
        script: impl FnMut(&Seen<'_>) -> Vec<Act> + Send + 'static,
    ) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(RelayShared {
            script: Mutex::new(Box::new(script)),
            logs: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                // Dropped with this task: every relayed connection ends too.
                let mut connections = JoinSet::new();
                loop {
                    let (client, _) = listener.accept().await.expect("relay accept");
                    let conn = {
                        let mut logs = lock(&shared.logs);
                        logs.push(ConnLog::default());
                        logs.len() - 1
                    };
                    connections.spawn(relay_connection(conn, client, server, Arc::clone(&shared)));
                }
            }
        });
        Relay { addr, shared, task }
    }

    /// What the relay saw of connection `conn` so far.
    fn log(&self, conn: usize) -> ConnLog {
        lock(&self.shared.logs)
            .get(conn)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (within [`BOUND`]) until `ready` holds for connection `conn`.
    async fn wait(&self, conn: usize, what: &str, ready: impl Fn(&ConnLog) -> bool) -> ConnLog {
        let deadline = Instant::now() + BOUND;
        loop {
            let log = self.log(conn);
            if ready(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {BOUND:?}; the relay saw {log:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until both sides of connection `conn` have ended their streams.
    async fn ended(&self, conn: usize) -> ConnLog {
        self.wait(conn, "both sides ending", |log| {
            log.client_ended && log.server_ended
        })
        .await
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the whole frames at the front of `buf` (`HEX:payload\n`).
fn take_frames(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(colon) = buf.iter().position(|&b| b == b':') {
        let header = std::str::from_utf8(&buf[..colon]).expect("hex header");
        let len = usize::from_str_radix(header, 16).expect("hex length");
        let end = colon + 1 + len + 1;
        if buf.len() < end {
            break;
        }
        assert_eq!(buf[end - 1], b'\n', "frame terminator");
        frames.push(buf.drain(..end).collect());
    }
    frames
}

async fn relay_connection(
    conn: usize,
    client: TcpStream,
    server: SocketAddr,
    shared: Arc<RelayShared>,
) {
    let server = TcpStream::connect(server).await.expect("relay connects");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
    let (mut client_open, mut server_open) = (true, true);
    // Handshake frames still expected from each side, once known.
    let mut handshake_left: Option<(usize, usize)> = None;
    let (mut records_to_server, mut records_to_client) = (0, 0);
    let mut cut = false;
    let mut chunk_c = vec![0u8; 16 * 1024];
    let mut chunk_s = vec![0u8; 16 * 1024];
    while client_open || server_open {
        let (dir, read) = tokio::select! {
            read = client_rd.read(&mut chunk_c), if client_open => (Dir::ToServer, read),
            read = server_rd.read(&mut chunk_s), if server_open => (Dir::ToClient, read),
        };
        let n = read.unwrap_or(0);
        let frames = {
            let mut logs = lock(&shared.logs);
            let log = &mut logs[conn];
            let (buf, chunk) = match dir {
                Dir::ToServer => (&mut from_client, &chunk_c),
                Dir::ToClient => (&mut from_server, &chunk_s),
            };
            match dir {
                Dir::ToServer => log.client_bytes += n,
                Dir::ToClient => log.server_bytes += n,
            }
            buf.extend_from_slice(&chunk[..n]);
            let frames = take_frames(buf);
            for frame in &frames {
                match dir {
                    Dir::ToServer => log.from_client.push(frame.clone()),
                    Dir::ToClient => log.from_server.push(frame.clone()),
                }
            }
            if n == 0 {
                match dir {
                    Dir::ToServer => log.client_ended = true,
                    Dir::ToClient => log.server_ended = true,
                }
            }
            frames
        };
        for frame in frames {
            if cut {
                continue;
            }
            // v2 if the client's first frame is the v2 hello; v1 otherwise
            // (a v1-only server speaks first: that is v1 too).
            let left = handshake_left.get_or_insert(
                if dir == Dir::ToServer && frame.starts_with(b"31:mtgnet-noise-xx/1") {
                    (2, 1)
                } else {
                    (1, 1)
                },
            );
            let (left, records) = match dir {
                Dir::ToServer => (&mut left.0, &mut records_to_server),
                Dir::ToClient => (&mut left.1, &mut records_to_client),
            };
            let record = if *left > 0 {
                *left -= 1;
                None
            } else {
                *records += 1;
                Some(*records - 1)
            };
            let acts = {
                let mut script = lock(&shared.script);
                script(&Seen {
                    conn,
                    dir,
                    record,
                    bytes: &frame,
                })
            };
            for act in acts {
                match act {
                    // A side that went away takes nothing more; the test
                    // sees that on that side.
                    Act::Send(Dir::ToServer, bytes) => {
                        let _ = server_wr.write_all(&bytes).await;
                    }
                    Act::Send(Dir::ToClient, bytes) => {
                        let _ = client_wr.write_all(&bytes).await;
                    }
                    Act::Cut => {
                        cut = true;
                        let _ = server_wr.shutdown().await;
                        let _ = client_wr.shutdown().await;
                    }
                }
            }
        }
        if n == 0 {
            // Passes the end on as a FIN (a reset too: the other side
            // sees only a clean end of stream).
            match dir {
                Dir::ToServer => {
                    client_open = false;
                    let _ = server_wr.shutdown().await;
                }
                Dir::ToClient => {
                    server_open = false;
                    let _ = client_wr.shutdown().await;
                }
            }
        }
    }
}

/// The records (frames after the handshake) of a v2 connection sent by
/// the client and by the server, as the relay received them.
fn records(log: &ConnLog) -> (&[Vec<u8>], &[Vec<u8>]) {
    (
        log.from_client.get(2..).unwrap_or_default(),
        log.from_server.get(1..).unwrap_or_default(),
    )
}

fn is_close_frame(frame: &[u8]) -> bool {
    frame.len() == CLOSE_FRAME_LEN && frame.starts_with(b"11:") && frame.ends_with(b"\n")
}

// ---------------------------------------------------------------------------
// 1. Roles and negotiation.
// ---------------------------------------------------------------------------

/// Asserts the relay saw a v2 handshake on `conn`: the 53-byte hello, then
/// message 2 (196) and message 3 (164).
fn assert_v2_handshake(log: &ConnLog) {
    assert_eq!(log.from_client[0].len(), HELLO_FRAME_LEN);
    assert!(log.from_client[0].starts_with(b"31:mtgnet-noise-xx/1"));
    assert_eq!(log.from_server[0].len(), MESSAGE2_FRAME_LEN);
    assert!(log.from_server[0].starts_with(b"C0:"));
    assert_eq!(log.from_client[1].len(), MESSAGE3_FRAME_LEN);
    assert!(log.from_client[1].starts_with(b"A0:"));
}

/// Asserts the relay saw a v1 handshake on `conn`: one 128-byte frame each way.
fn assert_v1_handshake(log: &ConnLog) {
    assert_eq!(log.from_client[0].len(), V1_FRAME_LEN);
    assert!(log.from_client[0].starts_with(b"80:"));
    assert_eq!(log.from_server[0].len(), V1_FRAME_LEN);
    assert!(log.from_server[0].starts_with(b"80:"));
}

/// Connects a client of `version` with its own identity and checks that
/// both sides know the other's identity: the client the server's key, the
/// server's handler (through its `Context`) the client's.
async fn assert_identities(
    server: &ObservedServer,
    addr: SocketAddr,
    version: EncryptionVersion,
) -> Client {
    let identity = Arc::new(IdentitySecret::generate());
    let config = ClientConfig::encrypted(
        Encryption::new(Arc::clone(&identity))
            .authorized(AuthorizedKeys::only([server.key()]))
            .version(version),
    )
    .call_timeout(PATIENT);
    let client = connect(addr, config).await;
    assert_eq!(client.peer_identity(), Some(&server.key()));
    let seen: Option<String> = bounded(client.call("Who", "identity", ()))
        .await
        .expect("Who.identity");
    assert_eq!(seen, Some(identity.public_key().to_base64()));
    client
}

#[tokio::test]
async fn v2_client_and_default_server_know_each_other() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let client = assert_identities(&server, relay.addr, EncryptionVersion::V2).await;
    let sum: i64 = bounded(client.call("Test", "add", (40, 2)))
        .await
        .expect("add");
    assert_eq!(sum, 42);
    bounded(client.close()).await;
    let log = relay.ended(0).await;
    assert_v2_handshake(&log);
    // Two calls each way, then a close record each way.
    let (to_server, to_client) = records(&log);
    assert_eq!(to_server.len(), 3, "two requests and a close record");
    assert_eq!(to_client.len(), 3, "two responses and a close record");
    assert!(is_close_frame(&to_server[2]) && is_close_frame(&to_client[2]));
    server.next_outcome().await.expect("a clean end");
}

#[tokio::test]
async fn v1_client_is_served_by_the_default_server() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let client = assert_identities(&server, relay.addr, EncryptionVersion::V1).await;
    bounded(client.close()).await;
    let log = relay.ended(0).await;
    assert_v1_handshake(&log);
    // v1 has no close record: a request and a response, nothing more.
    assert_eq!(log.from_client.len(), 2);
    assert_eq!(log.from_server.len(), 2);
    server.next_outcome().await.expect("a clean end");
}

#[tokio::test]
async fn v1_and_v2_clients_share_the_default_server_at_once() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let v1 = assert_identities(&server, relay.addr, EncryptionVersion::V1).await;
    let v2 = assert_identities(&server, relay.addr, EncryptionVersion::V2).await;
    // A call running on each connection at once (each counts as it
    // starts), and quick calls on both answered meanwhile.
    let held_v1 = holding(&v1, 500);
    let held_v2 = holding(&v2, 500);
    eventually("both calls run on the server", || server.bumped() == 2).await;
    let quick = async {
        let a: i64 = v1.call("Test", "add", (1, 2)).await.expect("v1 add");
        let b: i64 = v2.call("Test", "add", (3, 4)).await.expect("v2 add");
        (a, b)
    };
    assert_eq!(bounded(quick).await, (3, 7));
    let mut runs = [
        bounded(held_v1).await.expect("task").expect("v1 hold"),
        bounded(held_v2).await.expect("task").expect("v2 hold"),
    ];
    runs.sort_unstable();
    assert_eq!(runs, [1, 2]);
    assert_v1_handshake(&relay.log(0));
    assert_v2_handshake(&relay.log(1));
    bounded(v1.close()).await;
    bounded(v2.close()).await;
    server.next_outcome().await.expect("a clean end");
    server.next_outcome().await.expect("a clean end");
}

#[tokio::test]
async fn v2_client_against_a_v1_only_server_fails_promptly_and_never_speaks_v1() {
    let mut server =
        ObservedServer::start(Some(EncryptionVersion::V1), AuthorizedKeys::any()).await;
    let relay = Relay::transparent(server.addr).await;
    let start = Instant::now();
    let err = bounded(Client::connect(
        relay.addr,
        client_config(server.key(), EncryptionVersion::V2),
    ))
    .await
    .expect_err("a v2 client does not fall back");
    assert!(
        matches!(
            err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::OnlyV1))
        ),
        "{err}"
    );
    assert_prompt(start, "the v2 client's verdict on a v1-only server");
    // The client sent its v2 hello and nothing else; the server took those
    // 49 bytes for a v1 handshake of the wrong size.
    let log = relay.ended(0).await;
    assert_eq!(log.client_bytes, HELLO_FRAME_LEN);
    assert_eq!(log.from_server.len(), 1);
    assert_eq!(log.from_server[0].len(), V1_FRAME_LEN);
    let outcome = server.next_outcome().await;
    assert!(
        matches!(
            outcome,
            Err(Error::Peer(PeerError::Handshake(HandshakeFailure::Size {
                len: 49
            })))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn v1_client_against_a_v2_only_server_is_closed_without_a_reply() {
    let mut server =
        ObservedServer::start(Some(EncryptionVersion::V2), AuthorizedKeys::any()).await;
    let relay = Relay::transparent(server.addr).await;
    let start = Instant::now();
    let err = bounded(Client::connect(
        relay.addr,
        client_config(server.key(), EncryptionVersion::V1),
    ))
    .await
    .expect_err("a v2-only server refuses v1");
    assert!(
        matches!(
            err,
            Error::Peer(PeerError::Handshake(HandshakeFailure::Closed))
        ),
        "{err}"
    );
    assert_prompt(start, "the v1 client's verdict on a v2-only server");
    let log = relay.ended(0).await;
    assert_eq!(log.client_bytes, V1_FRAME_LEN);
    assert_eq!(log.server_bytes, 0, "the server sent nothing");
    let outcome = server.next_outcome().await;
    assert!(
        matches!(
            outcome,
            Err(Error::Peer(PeerError::Handshake(HandshakeFailure::Version)))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn v2_server_refuses_an_unauthorized_client_after_message_3_without_any_record() {
    let allowed = IdentitySecret::generate().public_key();
    let mut server = ObservedServer::start(None, AuthorizedKeys::only([allowed])).await;
    let relay = Relay::transparent(server.addr).await;
    let stranger = Arc::new(IdentitySecret::generate());
    let config = ClientConfig::encrypted(
        Encryption::new(Arc::clone(&stranger))
            .authorized(AuthorizedKeys::only([server.key()]))
            .handshake_timeout(PATIENT),
    )
    .call_timeout(PATIENT);
    // The client's handshake ends when it has sent message 3: it cannot
    // know yet that the server refuses it, so connecting succeeds ...
    let client = connect(relay.addr, config).await;
    assert_eq!(client.peer_identity(), Some(&server.key()));
    // ... and the server's verdict arrives as the end of the stream before
    // any record.
    let outcome = server.next_outcome().await;
    assert!(
        matches!(&outcome, Err(Error::Auth(AuthError::NotAuthorized(key))) if *key == stranger.public_key()),
        "{outcome:?}"
    );
    let log = relay.ended(0).await;
    assert_eq!(
        log.server_bytes, MESSAGE2_FRAME_LEN,
        "message 2 and no record"
    );
    let start = Instant::now();
    let err = connection_error(
        "a call of the refused client",
        bounded(client.call::<_, i64>("Test", "add", (1, 2))).await,
    );
    assert!(
        matches!(*err, Error::Auth(AuthError::EndedAfterHandshake)),
        "{err}"
    );
    assert_prompt(start, "the refused client's call");
}

#[tokio::test]
async fn v2_client_with_a_wrong_pin_fails_before_sending_message_3() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let pinned = IdentitySecret::generate().public_key();
    let start = Instant::now();
    let err = bounded(Client::connect(
        relay.addr,
        client_config(pinned, EncryptionVersion::V2),
    ))
    .await
    .expect_err("the pin does not match");
    assert!(
        matches!(&err, Error::Auth(AuthError::NotAuthorized(key)) if *key == server.key()),
        "{err}"
    );
    assert_prompt(start, "the pinning client's verdict");
    let log = relay.ended(0).await;
    assert_eq!(
        log.client_bytes, HELLO_FRAME_LEN,
        "the server received the hello and nothing more: no message 3"
    );
    let outcome = server.next_outcome().await;
    assert!(
        matches!(
            outcome,
            Err(Error::Peer(PeerError::Handshake(HandshakeFailure::Closed)))
        ),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. Attacks on records: v2 detects them, v1 cannot.
// ---------------------------------------------------------------------------

/// Waits (within [`BOUND`]) until `ready` holds.
async fn eventually(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The replay: the client's record 1 (a `Count.bump`) is sent to the
/// server again right after the server's answer to it passed; the answer
/// to the replay, if any, is dropped, so that the client cannot notice.
fn replay_the_bump() -> impl FnMut(&Seen<'_>) -> Vec<Act> + Send + 'static {
    let mut bump = None;
    move |seen| match (seen.dir, seen.record) {
        (Dir::ToServer, Some(1)) => {
            bump = Some(seen.bytes.to_vec());
            forward(seen)
        }
        (Dir::ToClient, Some(0)) => {
            let mut acts = forward(seen);
            acts.extend(bump.clone().map(|bytes| Act::Send(Dir::ToServer, bytes)));
            acts
        }
        (Dir::ToClient, Some(1)) => Vec::new(),
        _ => forward(seen),
    }
}

/// With a long call in flight, calls `Count.bump` (answered, it runs once),
/// then expects the attacked record that follows it to fail on the server
/// (`Decrypt`), and the call in flight to fail promptly as `Truncated`:
/// the server closed without a close record. Nothing runs twice.
async fn bump_then_server_rejects_and_cuts_the_call_in_flight(
    server: &mut ObservedServer,
    relay: &Relay,
    client: &Client,
) {
    let slow = long_call_in_flight(relay, client, 2, LONG_SLEEP_MS).await;
    let start = Instant::now();
    let n: usize = bounded(client.call("Count", "bump", ()))
        .await
        .expect("the bump itself is answered");
    assert_eq!(n, 1);
    // The attacked record arrives: the server's verdict is the record's.
    let outcome = server.next_outcome().await;
    assert!(
        matches!(
            outcome,
            Err(Error::Peer(PeerError::Record(RecordError::Decrypt)))
        ),
        "{outcome:?}"
    );
    // It closed without a close record: the client's call in flight fails
    // at once, and the client knows the stream was cut.
    let (outcome, ended) = bounded(slow).await.expect("task");
    let err = connection_error("the call in flight", outcome);
    assert!(matches!(*err, Error::Peer(PeerError::Truncated)), "{err}");
    assert!(
        ended - start < PROMPT,
        "failed {:?} after the attack",
        ended - start
    );
    assert_eq!(server.bumped(), 1, "the attacked call did not run again");
}

/// Starts a long call (the client's record 0) and waits until the relay
/// has seen it, so that the next call is the client's record 1.
async fn long_call_in_flight(
    relay: &Relay,
    client: &Client,
    handshake_frames: usize,
    ms: u64,
) -> JoinHandle<(Result<u64, CallError>, Instant)> {
    let slow = sleeping(client, ms);
    relay
        .wait(0, "the long call's request", |log| {
            log.from_client.len() > handshake_frames
        })
        .await;
    slow
}

#[tokio::test]
async fn v2_replayed_record_closes_the_server_promptly_and_runs_nothing_twice() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::new(server.addr, replay_the_bump()).await;
    let client = connect(relay.addr, server.client_config()).await;
    bump_then_server_rejects_and_cuts_the_call_in_flight(&mut server, &relay, &client).await;
    let log = relay.ended(0).await;
    let (to_server, to_client) = records(&log);
    assert_eq!(
        to_server.len(),
        2,
        "the sleep and the bump; nothing else from the client"
    );
    assert_eq!(
        to_client.len(),
        1,
        "the bump's answer; no other record, no close record"
    );
    let err = connection_error(
        "a later call",
        bounded(client.call::<_, i64>("Test", "add", (1, 1))).await,
    );
    assert!(matches!(*err, Error::Peer(PeerError::Truncated)), "{err}");
}

/// The contrast the issue asks for: v1 seals every frame under one key
/// with a random nonce, so the same replay through the same relay is
/// accepted: the call runs twice and neither side notices anything.
#[tokio::test]
async fn v1_replayed_frame_runs_the_call_twice_unnoticed() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::new(server.addr, replay_the_bump()).await;
    let client = connect(
        relay.addr,
        client_config(server.key(), EncryptionVersion::V1),
    )
    .await;
    let slow = long_call_in_flight(&relay, &client, 1, 1_000).await;
    let n: usize = bounded(client.call("Count", "bump", ()))
        .await
        .expect("bump");
    assert_eq!(n, 1);
    eventually("the replayed bump runs", || server.bumped() == 2).await;
    // The server answered the replay too (the relay dropped that answer).
    relay
        .wait(0, "the answer to the replay", |log| {
            log.from_server.len() == 3
        })
        .await;
    // The connection lives on as if nothing happened.
    let (outcome, _) = bounded(slow).await.expect("task");
    assert_eq!(outcome.expect("the call in flight is answered"), 1_000);
    let x: i64 = bounded(client.call("Test", "add", (2, 3)))
        .await
        .expect("still usable");
    assert_eq!(x, 5);
    assert!(!client.is_closed());
    assert_eq!(server.bumped(), 2, "v1 ran the replayed call a second time");
    bounded(client.close()).await;
    server.next_outcome().await.expect("v1 saw nothing wrong");
}

#[tokio::test]
async fn v2_two_client_records_swapped_close_the_server_before_either_runs() {
    let mut server = ObservedServer::any().await;
    let mut held = None;
    let relay = Relay::new(server.addr, move |seen: &Seen<'_>| {
        match (seen.dir, seen.record) {
            (Dir::ToServer, Some(1)) => {
                held = Some(seen.bytes.to_vec());
                Vec::new()
            }
            (Dir::ToServer, Some(2)) => {
                let mut acts = forward(seen);
                acts.extend(held.take().map(|bytes| Act::Send(Dir::ToServer, bytes)));
                acts
            }
            _ => forward(seen),
        }
    })
    .await;
    let client = connect(relay.addr, server.client_config()).await;
    let x: i64 = bounded(client.call("Test", "add", (1, 1)))
        .await
        .expect("record 0 passes");
    assert_eq!(x, 2);
    let start = Instant::now();
    let bump = || client.call::<_, usize>("Count", "bump", ());
    let (first, second) = bounded(async { tokio::join!(bump(), bump()) }).await;
    assert_prompt(start, "the swapped calls' failure");
    for outcome in [first, second] {
        let err = connection_error("a swapped call", outcome);
        assert!(matches!(*err, Error::Peer(PeerError::Truncated)), "{err}");
    }
    let outcome = server.next_outcome().await;
    assert!(
        matches!(
            outcome,
            Err(Error::Peer(PeerError::Record(RecordError::Decrypt)))
        ),
        "{outcome:?}"
    );
    assert_eq!(server.bumped(), 0, "neither swapped call ran");
    let log = relay.ended(0).await;
    let (to_server, to_client) = records(&log);
    assert_eq!(to_server.len(), 3);
    // Same length: only their order gave them away.
    assert_eq!(to_server[1].len(), to_server[2].len());
    assert_eq!(to_client.len(), 1, "only the first call's answer");
}

#[tokio::test]
async fn v2_two_server_records_swapped_fail_the_client_with_nothing_delivered() {
    let mut server = ObservedServer::any().await;
    let mut held = None;
    let relay = Relay::new(server.addr, move |seen: &Seen<'_>| {
        match (seen.dir, seen.record) {
            (Dir::ToClient, Some(0)) => {
                held = Some(seen.bytes.to_vec());
                Vec::new()
            }
            (Dir::ToClient, Some(1)) => {
                let mut acts = forward(seen);
                acts.extend(held.take().map(|bytes| Act::Send(Dir::ToClient, bytes)));
                acts
            }
            _ => forward(seen),
        }
    })
    .await;
    let client = connect(relay.addr, server.client_config()).await;
    let start = Instant::now();
    let echo = |x: &'static str| client.call::<_, String>("Test", "echo", (x,));
    let (a, b) = bounded(async { tokio::join!(echo("a"), echo("b")) }).await;
    assert_prompt(start, "the client's verdict");
    for outcome in [a, b] {
        let err = connection_error("a call whose answer was swapped", outcome);
        assert!(
            matches!(*err, Error::Peer(PeerError::Record(RecordError::Decrypt))),
            "{err}"
        );
    }
    // The client closed without a close record: the server knows it was cut.
    let outcome = server.next_outcome().await;
    assert!(
        matches!(outcome, Err(Error::Peer(PeerError::Truncated))),
        "{outcome:?}"
    );
    let log = relay.ended(0).await;
    let (to_server, to_client) = records(&log);
    assert_eq!((to_server.len(), to_client.len()), (2, 2));
}

#[tokio::test]
async fn v2_server_record_reflected_to_the_server_closes_it_promptly() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::new(server.addr, |seen: &Seen<'_>| {
        let mut acts = forward(seen);
        if seen.dir == Dir::ToClient && seen.record == Some(0) {
            acts.push(Act::Send(Dir::ToServer, seen.bytes.to_vec()));
        }
        acts
    })
    .await;
    let client = connect(relay.addr, server.client_config()).await;
    bump_then_server_rejects_and_cuts_the_call_in_flight(&mut server, &relay, &client).await;
    let log = relay.ended(0).await;
    assert_eq!(
        records(&log).1.len(),
        1,
        "no record after the bump's answer"
    );
}

#[tokio::test]
async fn v2_client_record_reflected_to_the_client_fails_it_promptly() {
    let mut server = ObservedServer::any().await;
    // The client's record 0 comes back as the server's record 0: the same
    // counter, only the direction's key differs.
    let relay = Relay::new(server.addr, |seen: &Seen<'_>| {
        let mut acts = forward(seen);
        if seen.dir == Dir::ToServer && seen.record == Some(0) {
            acts.push(Act::Send(Dir::ToClient, seen.bytes.to_vec()));
        }
        acts
    })
    .await;
    let client = connect(relay.addr, server.client_config()).await;
    let start = Instant::now();
    let (outcome, ended) = bounded(sleeping(&client, LONG_SLEEP_MS))
        .await
        .expect("task");
    let err = connection_error("the call whose request came back", outcome);
    assert!(
        matches!(*err, Error::Peer(PeerError::Record(RecordError::Decrypt))),
        "{err}"
    );
    assert!(
        ended - start < PROMPT,
        "failed {:?} after the attack",
        ended - start
    );
    let outcome = server.next_outcome().await;
    assert!(
        matches!(outcome, Err(Error::Peer(PeerError::Truncated))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn v2_records_from_another_session_are_rejected_both_ways() {
    let mut server = ObservedServer::any().await;
    // Session 0 runs normally and is recorded; session 1 gets session 0's
    // request instead of its own, session 2 session 0's answer instead of
    // its own: same counter (0), same length, another session's keys.
    let mut captured: (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    let relay = Relay::new(server.addr, move |seen: &Seen<'_>| {
        match (seen.conn, seen.dir, seen.record) {
            (0, Dir::ToServer, Some(0)) => captured.0 = Some(seen.bytes.to_vec()),
            (0, Dir::ToClient, Some(0)) => captured.1 = Some(seen.bytes.to_vec()),
            (1, Dir::ToServer, Some(0)) => {
                return captured
                    .0
                    .clone()
                    .map(|bytes| Act::Send(Dir::ToServer, bytes))
                    .into_iter()
                    .collect();
            }
            (2, Dir::ToClient, Some(0)) => {
                return captured
                    .1
                    .clone()
                    .map(|bytes| Act::Send(Dir::ToClient, bytes))
                    .into_iter()
                    .collect();
            }
            _ => {}
        }
        forward(seen)
    })
    .await;
    let first = connect(relay.addr, server.client_config()).await;
    let n: usize = bounded(first.call("Count", "bump", ()))
        .await
        .expect("bump");
    assert_eq!(n, 1);

    // Another session's request, injected toward the server.
    let second = connect(relay.addr, server.client_config()).await;
    let start = Instant::now();
    let err = connection_error(
        "the call replaced by another session's",
        bounded(second.call::<_, usize>("Count", "bump", ())).await,
    );
    // The server closed before any record of its own.
    assert!(
        matches!(*err, Error::Auth(AuthError::EndedAfterHandshake)),
        "{err}"
    );
    assert_prompt(start, "the injected request's rejection");
    let outcome = server.next_outcome().await;
    assert!(
        matches!(
            outcome,
            Err(Error::Peer(PeerError::Record(RecordError::Decrypt)))
        ),
        "{outcome:?}"
    );
    assert_eq!(server.bumped(), 1, "the foreign request did not run");
    let log = relay.ended(1).await;
    assert_eq!(relay.log(0).from_client[2].len(), log.from_client[2].len());

    // Another session's answer, injected toward the client: it would have
    // been a valid-looking answer to this very call ({"id":1,"data":1}).
    let third = connect(relay.addr, server.client_config()).await;
    let start = Instant::now();
    let err = connection_error(
        "the call answered with another session's answer",
        bounded(third.call::<_, usize>("Count", "bump", ())).await,
    );
    assert!(
        matches!(*err, Error::Peer(PeerError::Record(RecordError::Decrypt))),
        "{err}"
    );
    assert_prompt(start, "the injected answer's rejection");
    let outcome = server.next_outcome().await;
    assert!(
        matches!(outcome, Err(Error::Peer(PeerError::Truncated))),
        "{outcome:?}"
    );
    let log = relay.ended(2).await;
    assert_eq!(relay.log(0).from_server[1].len(), log.from_server[1].len());
    assert_eq!(server.bumped(), 2, "the third session's own call ran, once");

    // The recorded session never noticed.
    let n: usize = bounded(first.call("Count", "bump", ()))
        .await
        .expect("bump");
    assert_eq!(n, 3);
    bounded(first.close()).await;
    server.next_outcome().await.expect("a clean end");
}

/// Cuts the connection right after forwarding the server's record
/// `after` (a whole record), without any close record.
fn cut_after_server_record(after: usize) -> impl FnMut(&Seen<'_>) -> Vec<Act> + Send + 'static {
    move |seen| {
        let mut acts = forward(seen);
        if seen.dir == Dir::ToClient && seen.record == Some(after) {
            acts.push(Act::Cut);
        }
        acts
    }
}

#[tokio::test]
async fn v2_stream_cut_after_a_complete_record_is_truncated_not_closed() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::new(server.addr, cut_after_server_record(0)).await;
    let client = connect(relay.addr, server.client_config()).await;
    let slow = long_call_in_flight(&relay, &client, 2, LONG_SLEEP_MS).await;
    let start = Instant::now();
    let echoed: String = bounded(client.call("Test", "echo", ("x",)))
        .await
        .expect("the last record before the cut is delivered");
    assert_eq!(echoed, "x");
    let (outcome, ended) = bounded(slow).await.expect("task");
    let err = connection_error("the call in flight at the cut", outcome);
    assert!(matches!(*err, Error::Peer(PeerError::Truncated)), "{err}");
    assert!(
        ended - start < PROMPT,
        "failed {:?} after the cut",
        ended - start
    );
    // The server, cut off too, knows it as well.
    let outcome = server.next_outcome().await;
    assert!(
        matches!(outcome, Err(Error::Peer(PeerError::Truncated))),
        "{outcome:?}"
    );
    let err = connection_error(
        "a later call",
        bounded(client.call::<_, i64>("Test", "add", (1, 1))).await,
    );
    assert!(matches!(*err, Error::Peer(PeerError::Truncated)), "{err}");
}

#[tokio::test]
async fn v2_stream_cut_after_the_first_request_is_truncated_for_the_server() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::new(server.addr, |seen: &Seen<'_>| {
        let mut acts = forward(seen);
        if seen.dir == Dir::ToServer && seen.record == Some(0) {
            acts.push(Act::Cut);
        }
        acts
    })
    .await;
    let client = connect(relay.addr, server.client_config()).await;
    let start = Instant::now();
    let outcome = bounded(client.call::<_, u64>("Test", "sleep", (LONG_SLEEP_MS,))).await;
    let err = connection_error("the call cut off", outcome);
    // The client opened no record before the cut.
    assert!(
        matches!(*err, Error::Auth(AuthError::EndedAfterHandshake)),
        "{err}"
    );
    assert_prompt(start, "the client's verdict on the cut");
    let outcome = server.next_outcome().await;
    assert!(
        matches!(outcome, Err(Error::Peer(PeerError::Truncated))),
        "{outcome:?}"
    );
}

/// The contrast: v1 has no close record, so the same cut looks like a
/// clean close to the client.
#[tokio::test]
async fn v1_cannot_tell_a_cut_from_a_clean_close() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::new(server.addr, cut_after_server_record(0)).await;
    let client = connect(
        relay.addr,
        client_config(server.key(), EncryptionVersion::V1),
    )
    .await;
    let slow = long_call_in_flight(&relay, &client, 1, 1_000).await;
    let echoed: String = bounded(client.call("Test", "echo", ("x",)))
        .await
        .expect("echo");
    assert_eq!(echoed, "x");
    let (outcome, _) = bounded(slow).await.expect("task");
    let err = connection_error("the call in flight at the cut", outcome);
    assert!(matches!(*err, Error::Closed), "{err}");
    server
        .next_outcome()
        .await
        .expect("v1: a clean end, as far as the server knows");
}

// ---------------------------------------------------------------------------
// 3. Clean closes.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn v2_client_close_sends_a_close_record_and_the_server_ends_cleanly() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let client = connect(relay.addr, server.client_config()).await;
    let x: i64 = bounded(client.call("Test", "add", (1, 2)))
        .await
        .expect("add");
    assert_eq!(x, 3);
    bounded(client.close()).await;
    server.next_outcome().await.expect("a clean end");
    let log = relay.ended(0).await;
    let (to_server, to_client) = records(&log);
    assert_eq!(to_server.len(), 2, "the request, then the close record");
    assert!(is_close_frame(&to_server[1]), "{:?}", to_server[1]);
    assert_eq!(
        to_client.len(),
        2,
        "the answer, then the server's close record"
    );
    assert!(is_close_frame(&to_client[1]), "{:?}", to_client[1]);
}

#[tokio::test]
async fn v2_server_shutting_down_answers_calls_in_flight_then_sends_its_close_record() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let client = connect(relay.addr, server.client_config()).await;
    let held = holding(&client, 300);
    eventually("the call runs on the server", || server.bumped() == 1).await;
    server.stop.trigger();
    assert_eq!(
        bounded(held)
            .await
            .expect("task")
            .expect("answered before the close"),
        1
    );
    server.next_outcome().await.expect("a clean end");
    let log = relay
        .wait(0, "the server's end", |log| log.server_ended)
        .await;
    let (_, to_client) = records(&log);
    assert_eq!(to_client.len(), 2, "the answer, then the close record");
    assert!(is_close_frame(&to_client[1]), "{:?}", to_client[1]);
    // The client saw a clean close, not a cut.
    eventually("the client sees the close", || client.is_closed()).await;
    let err = connection_error(
        "a call after the server's close",
        bounded(client.call::<_, i64>("Test", "add", (1, 1))).await,
    );
    assert!(matches!(*err, Error::Closed), "{err}");
}

#[tokio::test]
async fn v2_server_answers_a_call_in_flight_at_the_client_close_then_ends_cleanly() {
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let client = connect(relay.addr, server.client_config()).await;
    let slow = long_call_in_flight(&relay, &client, 2, 300).await;
    bounded(client.close()).await;
    // The client gives up its own waiting calls when it closes ...
    let (outcome, _) = bounded(slow).await.expect("task");
    let err = connection_error("a call in flight at close", outcome);
    assert!(matches!(*err, Error::Closed), "{err}");
    // ... the server still answers it, sends its close record, and ends cleanly.
    server.next_outcome().await.expect("a clean end");
    let log = relay
        .wait(0, "the server's end", |log| log.server_ended)
        .await;
    let (to_server, to_client) = records(&log);
    assert_eq!(to_server.len(), 2);
    assert!(is_close_frame(&to_server[1]));
    assert_eq!(to_client.len(), 2, "the answer, then the close record");
    assert!(is_close_frame(&to_client[1]), "{:?}", to_client[1]);
}

/// A v2 record frame that holds a full chunk (65,518 bytes of data): every
/// record of a message but the last is one.
fn is_full_record(frame: &[u8]) -> bool {
    frame.starts_with(b"FFFF:")
}

/// Message `i` of task `t`, a JSON string of one to three records' worth
/// of bytes that names its sender.
fn large_payload(t: usize, i: usize) -> String {
    let len = [70_000, 140_000, 65_000, 200_000][(t + i) % 4];
    let mut text = format!("task {t} message {i}: ");
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    text.extend((0..len).map(|k| char::from(alphabet[(k * 7 + t * 3 + i) % alphabet.len()])));
    text
}

/// Many tasks call at once with messages of several records, over one v2
/// connection with several worker threads: requests are sealed on the
/// client's threads and echoes on the server's, side by side. Each side's
/// records must still go out in counter order and each message's records
/// together, or the other side's opener fails (a record under an
/// unexpected counter does not decrypt; chunks of two messages mixed do
/// not parse). Then the clean close arrives after the last message, both
/// ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v2_large_messages_sealed_at_once_arrive_whole_and_in_order_then_the_close() {
    const TASKS: usize = 16;
    const EACH: usize = 4;
    let mut server = ObservedServer::any().await;
    let relay = Relay::transparent(server.addr).await;
    let client = connect(relay.addr, server.client_config()).await;
    let mut tasks = JoinSet::new();
    for t in 0..TASKS {
        let client = client.clone();
        tasks.spawn(async move {
            for i in 0..EACH {
                let sent = large_payload(t, i);
                let echoed: String = client
                    .call("Test", "echo", (sent.as_str(),))
                    .await
                    .unwrap_or_else(|e| panic!("task {t} message {i}: {e}"));
                assert!(echoed == sent, "task {t} message {i} came back altered");
            }
        });
    }
    while let Some(done) = bounded(tasks.join_next()).await {
        done.expect("every echo arrives whole");
    }
    bounded(client.close()).await;
    server.next_outcome().await.expect("a clean end");
    let log = relay.ended(0).await;
    let (to_server, to_client) = records(&log);
    for (side, frames) in [("client", to_server), ("server", to_client)] {
        // Every message went out as records (several each), then the
        // close record, last and only once.
        let (close, messages) = frames.split_last().expect("records");
        assert!(
            is_close_frame(close),
            "{side}: the last record is the close"
        );
        assert!(
            !messages.iter().any(|f| is_close_frame(f)),
            "{side}: one close"
        );
        let last_chunks = messages.iter().filter(|f| !is_full_record(f)).count();
        assert_eq!(
            last_chunks,
            TASKS * EACH,
            "{side}: one last chunk per message"
        );
        assert!(
            messages.len() > 2 * TASKS * EACH,
            "{side}: messages of several records"
        );
    }
}

/// The same without a relay in between: the client closes its socket as
/// soon as its close record is out, so the server's answer and close
/// record meet a closed socket. The client ended cleanly all the same, so
/// the server's connection ends `Ok`, in v1 as in v2.
#[tokio::test]
async fn server_ends_cleanly_when_a_closed_client_is_gone_before_its_answer() {
    for version in [EncryptionVersion::V2, EncryptionVersion::V1] {
        let mut server = ObservedServer::any().await;
        let client = connect(server.addr, client_config(server.key(), version)).await;
        let slow = holding(&client, 200);
        eventually("the call runs on the server", || server.bumped() == 1).await;
        bounded(client.close()).await;
        let err = connection_error(
            "a call in flight at close",
            bounded(slow).await.expect("task"),
        );
        assert!(matches!(*err, Error::Closed), "{version}: {err}");
        let outcome = server.next_outcome().await;
        assert!(outcome.is_ok(), "{version}: {outcome:?}");
    }
}
