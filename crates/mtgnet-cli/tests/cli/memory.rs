//! `mtgnet serve` (and `mtgnet proxy` in front of it) under clients that
//! send large calls and never read the answers: the resident memory
//! (`VmHWM`) stays within the byte budget per connection, and other clients
//! are served meanwhile.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mtgnet_encryption::{AuthorizedKeys, Handshake, IdentitySecret, Session};

use crate::util::Server;

const MIB: usize = 1024 * 1024;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// One `Test.echo` request of a 1 MiB string.
fn echo_request(id: usize) -> Vec<u8> {
    let text = "x".repeat(MIB);
    format!(r#"[{{"service":"Test","method":"echo","args":["{text}"],"id":{id}}}]"#).into_bytes()
}

/// The server's peak resident memory, in bytes.
fn peak_rss(server: &Server) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("read /proc/PID/status");
    let kb: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line");
    kb * 1024
}

/// A client that sends up to `calls` echo calls of 1 MiB and never reads:
/// it stops when the server stops reading (a write makes no progress for
/// 2 s). Returns the open connection and how many calls went out whole.
fn flood(addr: &str, encrypted: bool, calls: usize) -> (TcpStream, usize) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let session = encrypted.then(|| handshake(&mut stream));
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let mut sent = 0;
    for id in 1..=calls {
        let request = echo_request(id);
        let bytes = match &session {
            Some(session) => frame(&session.seal(&request)),
            None => frame(&request),
        };
        match stream.write_all(&bytes) {
            Ok(()) => sent += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("the server dropped the flooding client instead of pausing it: {e}"),
        }
    }
    (stream, sent)
}

/// A v1 handshake as a client accepting any server key.
fn handshake(stream: &mut TcpStream) -> Session {
    let identity = IdentitySecret::generate();
    let handshake = Handshake::new(&identity, AuthorizedKeys::any());
    stream
        .write_all(&frame(handshake.payload()))
        .expect("send handshake");
    let mut reply = [0u8; 132];
    stream.read_exact(&mut reply).expect("read handshake");
    handshake.finish(&reply[3..131]).expect("handshake")
}

/// Floods `server` with `clients` non-reading clients at once and checks
/// its peak memory against `bound`, and that it serves others meanwhile.
fn survives_flood(server: &Server, budget: usize, clients: usize, calls: usize, bound: usize) {
    let floods: Vec<_> = (0..clients)
        .map(|_| {
            let addr = server.addr.clone();
            let encrypted = server.public_key.is_some();
            std::thread::spawn(move || flood(&addr, encrypted, calls))
        })
        .collect();
    let held: Vec<(TcpStream, usize)> = floods
        .into_iter()
        .map(|f| f.join().expect("flooding client"))
        .collect();
    for (_, sent) in &held {
        // The byte budget is what stopped the reading: the calls sent hold
        // at least the budget, and far fewer than the 256 call slots.
        assert!(
            *sent * MIB >= budget && *sent < 256,
            "{sent} calls of 1 MiB read against a budget of {budget} bytes"
        );
    }
    server.assert_serves();
    let peak = peak_rss(server);
    eprintln!(
        "{clients} flooding client(s): peak {} MiB, calls sent {:?}",
        peak / MIB,
        held.iter().map(|(_, sent)| sent).collect::<Vec<_>>()
    );
    assert!(
        peak < bound,
        "peak resident memory {} MiB with {clients} flooding client(s); bound {} MiB (sent {:?})",
        peak / MIB,
        bound / MIB,
        held.iter().map(|(_, sent)| sent).collect::<Vec<_>>()
    );
    drop(held);
}

#[test]
fn plain_server_with_default_budget_stays_under_128_mib() {
    let server = Server::plain();
    survives_flood(&server, 32 * MIB, 1, 700, 128 * MIB);
}

#[test]
fn encrypted_server_with_default_budget_stays_under_128_mib() {
    let server = Server::encrypted();
    survives_flood(&server, 32 * MIB, 1, 700, 128 * MIB);
}

#[test]
fn plain_server_with_a_4_mib_budget_stays_under_48_mib() {
    let server = Server::start(&["--plain", "--max-connection-bytes", "4194304"]);
    survives_flood(&server, 4 * MIB, 1, 700, 48 * MIB);
}

#[test]
fn encrypted_server_with_a_4_mib_budget_stays_under_48_mib() {
    let server = Server::start(&["--max-connection-bytes", "4194304"]);
    survives_flood(&server, 4 * MIB, 1, 700, 48 * MIB);
}

#[test]
fn eight_flooding_clients_stay_under_eight_budgets_plus_64_mib() {
    let server = Server::start(&["--plain", "--max-connection-bytes", "4194304"]);
    survives_flood(&server, 4 * MIB, 8, 200, 8 * 4 * MIB + 64 * MIB);
}

#[test]
fn proxy_with_a_4_mib_budget_stays_under_48_mib() {
    // The flood crosses the proxy (a v1 client: `--encryption any`) to a
    // plain server; neither answers are read nor, once the server's own
    // budget is full, requests. The proxy holds at most its budget (half
    // each way) plus one message being read each way.
    let backend = Server::start(&["--plain", "--max-connection-bytes", "4194304"]);
    let proxy = Server::proxy(&[
        "--to",
        &backend.addr,
        "--to-plain",
        "--encryption",
        "any",
        "--max-connection-bytes",
        "4194304",
    ]);
    survives_flood(&proxy, 4 * MIB, 1, 700, 48 * MIB);
}
