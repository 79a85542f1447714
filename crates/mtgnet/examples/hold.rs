//! Opens many connections to a server, makes one call on each, then holds
//! them open, idle: for measuring a server's memory per idle connection.
//!
//! `cargo run --release --example hold -- ADDR [SERVER-KEY|plain] [connections] [seconds]`

use std::sync::Arc;
use std::time::Duration;

use mtgnet::{AuthorizedKeys, Client, ClientConfig, Encryption, IdentitySecret, PublicKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .ok_or("usage: hold ADDR [SERVER-KEY|plain] [connections] [seconds]")?;
    let config = match args.next().as_deref() {
        Some("plain") => ClientConfig::plain(),
        Some(key) => {
            let key: PublicKey = key.parse()?;
            ClientConfig::encrypted(
                Encryption::new(Arc::new(IdentitySecret::generate()))
                    .authorized(AuthorizedKeys::only([key])),
            )
        }
        None => ClientConfig::encrypted(
            Encryption::new(Arc::new(IdentitySecret::generate())).dangerous_accept_any_key(),
        ),
    };
    let connections: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let seconds: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = Client::connect(addr.as_str(), config.clone()).await?;
        let _: serde_json::Value = client.call("System", "rpcVersion", ()).await?;
        clients.push(client);
    }
    println!("holding {} idle connections for {seconds} s", clients.len());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok(())
}
