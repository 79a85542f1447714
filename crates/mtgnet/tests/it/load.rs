//! Many concurrent connections at once, every result checked.

use std::time::Duration;

use mtgnet::Client;

use crate::util::{TestServer, bounded};

/// Opens `connections` clients at once, then has each make `calls`
/// pipelined calls; every echoed value must come back to its caller.
async fn flood(server: &TestServer, connections: usize, calls: usize) {
    let clients = futures::future::join_all(
        (0..connections).map(|_| Client::connect(server.addr, server.client_config())),
    )
    .await;
    let clients: Vec<Client> = clients
        .into_iter()
        .map(|c| c.expect("every connection is accepted"))
        .collect();
    let tasks = clients.into_iter().enumerate().map(|(c, client)| {
        tokio::spawn(async move {
            let calls = (0..calls).map(|i| {
                let client = client.clone();
                async move {
                    let tag = format!("{c}:{i}");
                    let echoed: String = client.call("Test", "echo", (&tag,)).await.expect("echo");
                    assert_eq!(echoed, tag, "a result reached the wrong caller");
                }
            });
            futures::future::join_all(calls).await;
            client
        })
    });
    let finished = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks))
        .await
        .expect("the flood finishes");
    // All connections were open at the same time until here.
    assert_eq!(
        finished.into_iter().filter(Result::is_ok).count(),
        connections
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_plain_connections_twenty_calls_each() {
    let server = TestServer::plain().await;
    flood(&server, 200, 20).await;
    let client = server.client().await;
    let x: i64 = bounded(client.call("Test", "add", (1, 1)))
        .await
        .expect("still serving");
    assert_eq!(x, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_encrypted_connections_pipelining_at_once() {
    // Both ends of every connection live in this process, next to the
    // other tests of this binary: two descriptors each, and some spare.
    let needed: OpenFiles = 2 * 1000 + 512;
    let limit = raise_open_files_limit(needed);
    if let Some(limit) = limit.filter(|&limit| limit < needed) {
        eprintln!(
            "SKIPPED a_thousand_encrypted_connections_pipelining_at_once: \
             RLIMIT_NOFILE allows {limit} open files (hard limit included), \
             {needed} needed; raise it (ulimit -n) to run this test"
        );
        return;
    }
    let server = TestServer::encrypted().await;
    flood(&server, 1000, 5).await;
}

/// A count of open files, as `getrlimit` gives it.
#[cfg(unix)]
type OpenFiles = libc::rlim_t;
#[cfg(not(unix))]
type OpenFiles = u64;

/// Raises this process's soft `RLIMIT_NOFILE` to `wanted` when it is lower,
/// as far as the hard limit allows; returns the soft limit now in force,
/// `None` if it cannot be read.
#[cfg(unix)]
fn raise_open_files_limit(wanted: OpenFiles) -> Option<OpenFiles> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` to a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur >= wanted {
        return Some(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads one `rlimit` from a valid pointer.
    let now = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        limit.rlim_cur
    };
    Some(now)
}

#[cfg(not(unix))]
fn raise_open_files_limit(_wanted: OpenFiles) -> Option<OpenFiles> {
    None
}
