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
    let server = TestServer::encrypted().await;
    flood(&server, 1000, 5).await;
}
