//! MTGNet v1 over tokio: a pipelined [`Client`], a concurrent [`Server`],
//! the encryption extension, and a [`blocking`] client.
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
//! use mtgnet::{Client, ClientConfig, Encryption, IdentitySecret, Registry, Server, ServerConfig, Service};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new().with(
//!     Service::new("Test").method("add", "Adds two integers.", |(a, b): (i64, i64)| async move { Ok(a + b) }),
//! );
//! let server = Server::new(registry, ServerConfig::encrypted(Encryption::new(Arc::new(IdentitySecret::generate()))))?;
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let shutdown = mtgnet::Shutdown::new();
//! tokio::spawn(async move { server.serve_connection(server_io, None, shutdown).await });
//!
//! let identity = Arc::new(IdentitySecret::generate());
//! let (client, driver) = Client::new(client_io, ClientConfig::encrypted(Encryption::new(identity))).await?;
//! tokio::spawn(driver);
//! let sum: i64 = client.call("Test", "add", (2, 3)).await?;
//! assert_eq!(sum, 5);
//! assert!(client.peer_identity().is_some());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "blocking")]
pub mod blocking;
mod budget;
mod client;
mod config;
pub mod demo;
mod error;
mod handshake;
mod listener;
mod server;
mod transport;

pub use client::{Client, ClientDriver, Reply};
pub use config::{
    ClientConfig, DEFAULT_HANDSHAKE_TIMEOUT, Encryption, EncryptionVersion, Limits, ServerConfig,
};
pub use error::{CallError, ConfigError, Error, HandshakeFailure};
pub use listener::{Listener, Shutdown};
pub use server::Server;

pub use mtgnet_encryption::{AuthorizedKeys, IdentitySecret, PublicKey};
pub use mtgnet_proto::client::Batch;
pub use mtgnet_proto::wire::CallResult;
pub use mtgnet_proto::{Condition, Context, FromArgs, Id, Peer, RawJson, Registry, Service, codes};

/// The sans-IO protocol core (framing, wire types, state machines).
pub use mtgnet_proto as proto;

/// The sans-IO encryption extension (keys, handshake, sealing).
pub use mtgnet_encryption as encryption;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
