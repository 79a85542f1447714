//! MTGNet v1 over tokio: a pipelined [`Client`], a concurrent [`Server`],
//! the encryption extension, a [`blocking`] client, and a [`proxy`] that
//! puts encryption v2 in front of a server that cannot speak it.
//!
//! MTGNet is a JSON-over-netstring RPC protocol: a request is an array of
//! calls (and notifications), answered by one response holding one result
//! per call, matched by id, in any order. Every server hosts the `System`
//! introspection service. The encryption extension authenticates both ends
//! with Ed25519 identities and seals every frame with XSalsa20-Poly1305
//! under a per-connection X25519 key; an encrypted connection is a drop-in
//! replacement for a plain one.
//!
//! ```text
//!   Client (cloneable handle)          Server (Registry of Services)
//!        |  call / batch / notify            ^  handlers run concurrently
//!   ClientCore (mtgnet-proto)           Registry::respond (mtgnet-proto)
//!        |  JSON                             |  JSON
//!   [Session::seal / open]  (mtgnet-encryption, after the Handshake)
//!        |  netstring+ frames                |
//!   ClientDriver task  <---- TCP ---->  one task per connection
//! ```
//!
//! This crate only moves bytes and wakes tasks; the protocol logic lives in
//! the sans-IO crates [`mtgnet_proto`] and [`mtgnet_encryption`], re-exported
//! here.
//!
//! An encrypted client and server, end to end over an in-memory stream:
//!
//! ```
//! use std::sync::Arc;
//! use mtgnet::{AuthorizedKeys, Client, ClientConfig, Encryption, IdentitySecret, Registry, Server, ServerConfig, Service};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new().with(
//!     Service::new("Test").method("add", "Adds two integers.", |(a, b): (i64, i64)| async move { Ok(a + b) }),
//! );
//! let server_identity = Encryption::new(Arc::new(IdentitySecret::generate()));
//! let server_key = server_identity.public_key();
//! let server = Server::new(registry, ServerConfig::encrypted(server_identity))?;
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let shutdown = mtgnet::Shutdown::new();
//! tokio::spawn(async move { server.serve_connection(server_io, None, shutdown).await });
//!
//! let identity = Arc::new(IdentitySecret::generate());
//! let pinned = Encryption::new(identity).authorized(AuthorizedKeys::only([server_key]));
//! let (client, driver) = Client::new(client_io, ClientConfig::encrypted(pinned)).await?;
//! tokio::spawn(driver);
//! let sum: i64 = client.call("Test", "add", (2, 3)).await?;
//! assert_eq!(sum, 5);
//! assert_eq!(client.peer_identity(), Some(&server_key));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

// The code `#[mtgnet::service]` writes names `::mtgnet`; this lets the
// crate use the macro itself (the `Test` service).
extern crate self as mtgnet;

pub mod authorize;
#[cfg(feature = "blocking")]
pub mod blocking;
mod budget;
mod client;
mod config;
mod connection;
#[cfg(feature = "demo")]
pub mod demo;
mod driver;
mod error;
mod handshake;
mod listener;
pub mod metrics;
pub mod proxy;
mod race;
mod reconnect;
mod record_sealer;
mod server;
mod tcp;
pub mod trace;
mod transport;
mod typed;
#[cfg(unix)]
mod unix;

pub use client::{Client, Reply};
pub use config::{
    ClientConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_TCP_KEEPALIVE,
    Encryption, EncryptionVersion, Limits, MAX_BUSY_POLL, ServerConfig,
};
pub use driver::ClientDriver;
pub use error::{AuthError, CallError, ConfigError, Error, HandshakeFailure, PeerError};
pub use listener::{Listener, Shutdown};
pub use reconnect::{ClientState, Reconnect};
pub use server::Server;
pub use typed::BatchCall;
#[cfg(unix)]
pub use unix::UnixListener;

pub use mtgnet_encryption::{AuthorizedKeys, IdentitySecret, PublicKey};
pub use mtgnet_proto::client::Batch;
pub use mtgnet_proto::dispatch::{CallRequest, Dispatch};
pub use mtgnet_proto::wire::CallResult;
pub use mtgnet_proto::{
    Condition, Context, FromArgs, Id, Peer, PeerCredentials, RawJson, Registry, Service, codes,
};

/// Turns a trait of `async fn` methods into an MTGNet service: one trait is
/// the contract of both ends, checked by the compiler on each.
///
/// ```
/// use mtgnet::{CallError, Client, ClientConfig, Condition, Context, Registry, Server, ServerConfig};
///
/// /// Integer arithmetic.
/// #[mtgnet::service(name = "Math", version = "1.0")]
/// pub trait Math {
///     /// Adds two integers.
///     async fn add(&self, a: i64, b: i64) -> Result<i64, Condition>;
///     /// The caller's address, as the server sees it.
///     async fn where_am_i(&self, ctx: &Context) -> Result<Option<String>, Condition>;
/// }
///
/// #[derive(Clone)]
/// struct Calc { offset: i64 }                 // handler state lives in the implementing type
///
/// impl Math for Calc {
///     async fn add(&self, a: i64, b: i64) -> Result<i64, Condition> {
///         a.checked_add(b + self.offset).ok_or_else(|| Condition::new("overflow", "too big"))
///     }
///     async fn where_am_i(&self, ctx: &Context) -> Result<Option<String>, Condition> {
///         Ok(ctx.peer().address.map(|a| a.to_string()))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new().with(MathServer::new(Calc { offset: 0 }));
/// let server = Server::new(registry, ServerConfig::plain())?;
/// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// tokio::spawn(async move { server.serve_connection(server_io, None, mtgnet::Shutdown::new()).await });
/// let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
/// tokio::spawn(driver);
///
/// let math = MathClient::new(client.clone());
/// assert_eq!(math.add(2, 3).await?, 5);                        // `Math.add` on the wire
/// assert_eq!(math.where_am_i().await?, None);                  // `Math.whereAmI`; ctx is server-side
/// let overflow = math.add(i64::MAX, 1).await.unwrap_err();
/// assert_eq!(overflow.remote().map(|c| c.message.as_str()), Some("too big"));
/// math.notify().add(1, 2).await?;                              // a notification
///
/// let mut batch = mtgnet::Batch::new();                        // typed calls in one request
/// let sum = MathClient::batch(&mut batch).add(20, 22)?;
/// let results = client.batch(batch).await?;
/// assert_eq!(sum.result(&results)?, 42);
///
/// let doc: serde_json::Value = client.call("Math", "describeMethod", ("add",)).await?;
/// assert_eq!(doc["Doc"], "Adds two integers.");
/// # Ok(()) }
/// ```
///
/// What it writes, for a trait `Math`:
///
/// * the trait, each `async fn` turned into `fn … -> impl Future<Output = …> + Send`:
///   implementors still write `async fn`, and their futures must be `Send`;
/// * `MathServer<T>`, which wraps a handler `T: Math + Send + Sync + 'static`
///   and converts into a [`Service`] (`Registry::with` takes it);
/// * `MathClient`, a stub over any [`Client`]: each method returns
///   `Result<T, CallError>`; `notify()` gives the methods as notifications
///   (`MathNotify`), `MathClient::batch(&mut batch)` as typed calls added to
///   a [`Batch`] (`MathBatch`, each returning a [`BatchCall`]).
///
/// The rules:
///
/// * **Names.** The service is the trait's name unless `name = "…"`; a
///   method is its name in lowerCamelCase (`who_am_i` → `whoAmI`) unless
///   `#[method(name = "…")]`. The names every service answers by itself
///   (`methods`, `describeMethod`, `version`) are refused, and so are two
///   methods with one wire name.
/// * **Introspection.** The trait's doc comment is the `describeService`
///   description, each method's doc comment its `describeMethod` text;
///   `version = "2.1"` sets `version()` to `{"code": 2, "name": "2.1"}`
///   (the code is the number before the first dot).
/// * **Methods** are `async fn` taking `&self`, then optionally
///   `ctx: &Context` (the peer, warnings; not part of the client's
///   signature), then at most eight arguments, each `name: Type` with an
///   owned `Deserialize + Serialize` type. They return `Result<T, E>`
///   written out as such, with `T: Serialize + DeserializeOwned` and
///   `E: Into<Condition>` (implement `From<YourError> for Condition` and
///   `?` works on your errors). Wrong argument counts or types from a peer
///   get an `invalid-arguments` error without the method running.
/// * Anything else (a non-async or generic method, `self` by value, a
///   pattern as an argument, a missing `Result`) is a compile error at the
///   offending token.
///
/// The [`Service`] builder of closures stays, for services built at run time.
pub use mtgnet_macros::service;

/// The sans-IO protocol core (framing, wire types, state machines).
pub use mtgnet_proto as proto;

/// The sans-IO encryption extension (keys, handshake, sealing).
pub use mtgnet_encryption as encryption;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
