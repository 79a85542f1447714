//! Calls through the whole stack (client, framing, sealing, server) over an
//! in-memory stream: plain and encrypted side by side in the same run, so
//! the ratio is the cost of encryption.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Encryption, IdentitySecret, RawJson, Registry, Server,
    ServerConfig,
};
use tokio::runtime::Runtime;

fn connect(rt: &Runtime, encrypted: bool) -> Client {
    rt.block_on(async {
        let registry = Registry::new().with(mtgnet::demo::test_service());
        let (server_config, client_config) = if encrypted {
            {
                let server = Encryption::new(Arc::new(IdentitySecret::generate()));
                let pin = AuthorizedKeys::only([server.public_key()]);
                (
                    ServerConfig::encrypted(server),
                    ClientConfig::encrypted(
                        Encryption::new(Arc::new(IdentitySecret::generate())).authorized(pin),
                    ),
                )
            }
        } else {
            (ServerConfig::plain(), ClientConfig::plain())
        };
        let server = Server::new(registry, server_config).expect("valid limits");
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            server
                .serve_connection(server_io, None, mtgnet::Shutdown::new())
                .await
        });
        let (client, driver) = Client::new(client_io, client_config)
            .await
            .expect("connects");
        tokio::spawn(driver);
        client
    })
}

async fn echo_many(client: &Client, args: &RawJson, n: usize) {
    let calls = (0..n).map(|_| async {
        let reply = client.call_reply("Test", "echo", args).await.expect("echo");
        black_box(reply);
    });
    futures::future::join_all(calls).await;
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for payload in [100usize, 65536] {
        let args = RawJson::from_serialize(&("x".repeat(payload),)).expect("json");
        let mut group = c.benchmark_group(format!("pipelined_64_echo_{payload}B"));
        group.throughput(Throughput::Elements(64));
        for (name, encrypted) in [("plain", false), ("encrypted", true)] {
            let client = connect(&rt, encrypted);
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| rt.block_on(echo_many(&client, &args, 64)))
            });
        }
        group.finish();
    }
    let args = RawJson::from_serialize(&("x".repeat(100),)).expect("json");
    let mut group = c.benchmark_group("sequential_echo_100B");
    group.throughput(Throughput::Elements(1));
    for (name, encrypted) in [("plain", false), ("encrypted", true)] {
        let client = connect(&rt, encrypted);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| rt.block_on(echo_many(&client, &args, 1)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(20);
    targets = calls
}
criterion_main!(benches);
