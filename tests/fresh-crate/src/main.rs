//! The typed-service example, as a user writes it in a crate of their own.

use std::sync::Arc;

use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Condition, Context, Encryption, IdentitySecret, RawJson,
    Registry, Server, ServerConfig, Shutdown,
};

/// Integer arithmetic.
#[mtgnet::service(name = "Math", version = "1.0")]
pub trait Math {
    /// Adds two integers.
    async fn add(&self, a: i64, b: i64) -> Result<i64, Condition>;
    /// The caller's identity key, base64, if the connection is encrypted.
    async fn who_am_i(&self, ctx: &Context) -> Result<Option<String>, Condition>;
}

#[derive(Clone)]
struct Calc {
    offset: i64,
}

impl Math for Calc {
    async fn add(&self, a: i64, b: i64) -> Result<i64, Condition> {
        Ok(a + b + self.offset)
    }
    async fn who_am_i(&self, ctx: &Context) -> Result<Option<String>, Condition> {
        Ok(ctx.peer().identity.as_ref().map(|k| k.to_base64()))
    }
}

// The runtime built by hand rather than by `#[tokio::main]`: this crate
// asks tokio for no "macros", so CI can check that `mtgnet` does not
// either.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let server_identity = Encryption::new(Arc::new(IdentitySecret::generate()));
    let server_key = server_identity.public_key();
    let registry = Registry::new().with(MathServer::new(Calc { offset: 0 }));
    let server = Server::new(registry, ServerConfig::encrypted(server_identity))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let serving = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.serve(listener, shutdown).await }
    });

    let me = Arc::new(IdentitySecret::generate());
    let pinned = Encryption::new(Arc::clone(&me)).authorized(AuthorizedKeys::only([server_key]));
    let client = Client::connect(addr, ClientConfig::encrypted(pinned)).await?;

    let math = MathClient::new(client.clone());
    let five: i64 = math.add(2, 3).await?;
    let who: Option<String> = math.who_am_i().await?;
    assert_eq!(five, 5);
    assert_eq!(who, Some(me.public_key().to_base64()));

    // The doc comment is what `System.describeMethod` answers.
    let described: RawJson = client.call("Math", "describeMethod", ("add",)).await?;
    assert!(described.as_str().contains(r#""Doc":"Adds two integers.""#));
    // The untyped call by the method's wire name, as other peers make it.
    let untyped: Option<String> = client.call("Math", "whoAmI", ()).await?;
    assert_eq!(untyped.as_ref(), Some(&me.public_key().to_base64()));
    println!(
        "Math.add(2, 3) = {five}; whoAmI = {}",
        who.unwrap_or_default()
    );
    println!("Math.describeMethod(\"add\") = {}", described.as_str());

    client.close().await;
    shutdown.trigger();
    serving.await??;
    Ok(())
}
