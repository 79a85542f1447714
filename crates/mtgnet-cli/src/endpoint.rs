//! Server addresses on the command line: `HOST:PORT` for TCP, or
//! `unix:PATH` for a Unix-domain socket.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use mtgnet::{Client, ClientConfig, Error};

/// The prefix that names a Unix-domain socket.
const UNIX: &str = "unix:";

/// Where a server listens, as written on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `HOST:PORT`, resolved when connecting.
    Tcp(String),
    /// `unix:PATH`.
    Unix(PathBuf),
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Endpoint, String> {
        match text.strip_prefix(UNIX) {
            Some("") => Err(format!(
                "{text:?} names no socket path (write unix:/path/to/socket)"
            )),
            Some(path) => Ok(Endpoint::Unix(PathBuf::from(path))),
            None => Ok(Endpoint::Tcp(text.to_owned())),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(address) => f.write_str(address),
            Endpoint::Unix(path) => write!(f, "{UNIX}{}", path.display()),
        }
    }
}

impl Endpoint {
    /// Connects and runs the handshake `config` asks for.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`] and [`Client::connect_unix`].
    pub(crate) async fn connect(&self, config: ClientConfig) -> Result<Client, Error> {
        match self {
            Endpoint::Tcp(address) => Client::connect(address.as_str(), config).await,
            Endpoint::Unix(path) => Client::connect_unix(path, config).await,
        }
    }

    /// Resolves a host name once, for clients that connect many times.
    ///
    /// # Errors
    ///
    /// The name does not resolve.
    pub(crate) async fn resolve(&self) -> anyhow::Result<Address> {
        match self {
            Endpoint::Tcp(address) => tokio::net::lookup_host(address.as_str())
                .await
                .with_context(|| format!("cannot resolve {address}"))?
                .next()
                .map(Address::Tcp)
                .ok_or_else(|| anyhow!("{address} resolves to no address")),
            Endpoint::Unix(path) => Ok(Address::Unix(Arc::from(path.as_path()))),
        }
    }
}

/// A server address ready to connect to: cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    /// A resolved TCP address.
    Tcp(SocketAddr),
    /// A Unix-domain socket.
    Unix(Arc<Path>),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(address) => address.fmt(f),
            Address::Unix(path) => write!(f, "{UNIX}{}", path.display()),
        }
    }
}

impl Address {
    /// Connects and runs the handshake `config` asks for.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`] and [`Client::connect_unix`].
    pub(crate) async fn connect(&self, config: ClientConfig) -> Result<Client, Error> {
        match self {
            Address::Tcp(address) => Client::connect(*address, config).await,
            Address::Unix(path) => Client::connect_unix(path, config).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_prefix_names_a_socket_path_and_anything_else_is_tcp() {
        assert_eq!(
            "unix:/run/mtgnet.sock".parse(),
            Ok(Endpoint::Unix(PathBuf::from("/run/mtgnet.sock")))
        );
        assert_eq!(
            "unix:relative.sock".parse(),
            Ok(Endpoint::Unix(PathBuf::from("relative.sock")))
        );
        assert_eq!(
            "127.0.0.1:7707".parse(),
            Ok(Endpoint::Tcp("127.0.0.1:7707".to_owned()))
        );
        assert!("unix:".parse::<Endpoint>().is_err());
        assert_eq!(
            Endpoint::Unix(PathBuf::from("/tmp/s")).to_string(),
            "unix:/tmp/s"
        );
    }
}
