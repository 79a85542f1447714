//! Pipelined echo calls over TCP loopback for a few seconds, plain or
//! encrypted: a minimal load generator to profile the call path.
//!
//! `cargo run --release --example pipeline -- [plain|encrypted] [payload] [seconds]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Encryption, IdentitySecret, RawJson, Registry, Server,
    ServerConfig,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let encrypted = args.next().as_deref() != Some("plain");
    let payload: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(
        Registry::new().with(mtgnet::demo::test_service()),
        server_config,
    )?;
    tokio::spawn(async move { server.serve(listener, mtgnet::Shutdown::new()).await });
    let client = Client::connect(addr, client_config).await?;

    let args = RawJson::from_serialize(&("x".repeat(payload),))?;
    let expected = RawJson::from_serialize(&"x".repeat(payload))?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let workers = (0..64).map(|_| {
        let (client, args, expected) = (client.clone(), args.clone(), expected.clone());
        tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let reply = client
                    .call_reply("Test", "echo", &args)
                    .await
                    .expect("echo");
                assert!(reply.data == expected);
                done += 1;
            }
            done
        })
    });
    let mut total = 0;
    for worker in workers.collect::<Vec<_>>() {
        total += worker.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{} payload {payload} B: {total} calls in {elapsed:.2} s = {:.0} calls/s",
        if encrypted { "encrypted" } else { "plain" },
        total as f64 / elapsed
    );
    Ok(())
}
