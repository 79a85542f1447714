//! A client for programs without an async runtime.
//!
//! It runs the async [`Client`](crate::Client) on a private tokio runtime:
//! single-threaded and driven only while a call blocks, or, with a
//! [reconnect policy](crate::ClientConfig::reconnect), on one background
//! thread, so that a dropped connection is noticed and replaced between
//! calls too.
//!
//! ```no_run
//! use mtgnet::{blocking, ClientConfig};
//!
//! let client = blocking::Client::connect("127.0.0.1:7707", ClientConfig::plain())?;
//! let echoed: String = client.call("Test", "echo", ("hello",))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::ToSocketAddrs;
use std::sync::Arc;

use mtgnet_encryption::PublicKey;
use mtgnet_proto::client::Batch;
use mtgnet_proto::wire::CallResult;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::Runtime;

use crate::client::Reply;
use crate::config::ClientConfig;
use crate::error::{CallError, Error};
use crate::reconnect::ClientState;

/// A blocking MTGNet client: each method returns when its call is answered.
///
/// Not `Clone`: to call from several threads, share it behind a reference
/// (calls from different threads are serialized), or use the async client.
///
/// ```
/// use mtgnet::{blocking, ClientConfig};
///
/// # use mtgnet::{demo, Registry, Server, ServerConfig};
/// # let (tx, rx) = std::sync::mpsc::channel();
/// # std::thread::spawn(move || {
/// #     let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// #     runtime.block_on(async {
/// #         let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// #         tx.send(listener.local_addr().unwrap()).unwrap();
/// #         let server = Server::new(Registry::new().with(demo::test_service()), ServerConfig::plain()).unwrap();
/// #         server.serve(listener, mtgnet::Shutdown::new()).await
/// #     })
/// # });
/// # let address = rx.recv()?;
/// // `address` is that of a server hosting `mtgnet::demo::test_service()`.
/// let client = blocking::Client::connect(address, ClientConfig::plain())?;
/// let sum: i64 = client.call("Test", "add", (2, 3))?;
/// assert_eq!(sum, 5);
/// let failed = client.call::<_, ()>("Test", "fail", ()).unwrap_err();
/// assert_eq!(failed.remote().unwrap().message, "boom");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    inner: crate::Client,
    /// With a reconnect policy: the thread that drives the runtime between
    /// calls, and what tells it to stop.
    background: Option<Background>,
    /// Single-threaded, so the library needs no `rt-multi-thread`. Dropped
    /// last, after the background thread has stopped.
    runtime: Arc<Runtime>,
}

/// The thread that keeps a reconnecting blocking client's runtime running.
#[derive(Debug)]
struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(background) = &mut self.background {
            drop(background.stop.take());
            if let Some(thread) = background.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Client {
    /// Connects over TCP, running the handshake when `config` is encrypted.
    ///
    /// Without a reconnect policy the connection is served only while a
    /// method of this client blocks; with one, a background thread (named
    /// `mtgnet-client`) serves it all the time and reconnects whenever it
    /// drops, as [`crate::Client`] does: a call made after the server
    /// restarted finds a new connection, or waits for it within its call
    /// timeout.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::connect`], or when the runtime cannot start.
    pub fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, Error> {
        let runtime = runtime()?;
        let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
        let reconnects = config.reconnect_policy().is_some();
        let inner = runtime.block_on(crate::Client::connect(&addrs[..], config))?;
        Client::start(runtime, inner, reconnects)
    }

    /// Connects to a server on a Unix-domain socket at `path`, running the
    /// handshake when `config` is encrypted; see
    /// [`crate::Client::connect_unix`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::connect_unix`], or when the runtime cannot start.
    #[cfg(unix)]
    pub fn connect_unix(
        path: impl AsRef<std::path::Path>,
        config: ClientConfig,
    ) -> Result<Client, Error> {
        let runtime = runtime()?;
        let reconnects = config.reconnect_policy().is_some();
        let inner = runtime.block_on(crate::Client::connect_unix(path, config))?;
        Client::start(runtime, inner, reconnects)
    }

    /// The server's identity key, on an encrypted connection; see
    /// [`crate::Client::peer_identity`].
    pub fn peer_identity(&self) -> Option<&PublicKey> {
        self.inner.peer_identity()
    }

    /// Where the client stands; see [`crate::Client::state`].
    pub fn state(&self) -> ClientState {
        self.inner.state()
    }

    /// Calls `service.method(args...)`; see [`crate::Client::call`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call`].
    pub fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        self.runtime
            .block_on(self.inner.call(service, method, args))
    }

    /// Calls and returns the raw data with warnings; see [`crate::Client::call_reply`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call`].
    pub fn call_reply<A: Serialize>(
        &self,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<Reply, CallError> {
        self.runtime
            .block_on(self.inner.call_reply(service, method, args))
    }

    /// Sends a notification; see [`crate::Client::notify`].
    ///
    /// Returns once the socket has accepted the whole notification, so it
    /// is not lost when this client is dropped right after (the driver
    /// runs only while a method of this client blocks).
    ///
    /// # Errors
    ///
    /// As [`crate::Client::notify`]; [`CallError::Connection`] also when
    /// the connection ends before the notification is written.
    pub fn notify<A: Serialize>(
        &self,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<(), CallError> {
        self.runtime
            .block_on(self.inner.notify_written(service, method, args))
    }

    /// Sends a batch; see [`crate::Client::batch`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::batch`].
    pub fn batch(&self, batch: Batch) -> Result<Vec<CallResult>, CallError> {
        self.runtime.block_on(self.inner.batch(batch))
    }
}

impl Client {
    /// Wraps a connected client; with a reconnect policy, starts the thread
    /// that drives the runtime between calls (a caller's `block_on` then
    /// waits on its own future while that thread drives the I/O and timers).
    fn start(runtime: Runtime, inner: crate::Client, reconnects: bool) -> Result<Client, Error> {
        let runtime = Arc::new(runtime);
        let background = if reconnects {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let driving = Arc::clone(&runtime);
            let thread = std::thread::Builder::new()
                .name("mtgnet-client".to_owned())
                .spawn(move || {
                    let _ = driving.block_on(stopped);
                })?;
            Some(Background {
                stop: Some(stop),
                thread: Some(thread),
            })
        } else {
            None
        };
        Ok(Client {
            inner,
            background,
            runtime,
        })
    }
}

/// The runtime of a blocking client: one thread, the caller's (or, with a
/// reconnect policy, the background thread's).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
