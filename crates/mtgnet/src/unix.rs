//! Unix-domain sockets: a [`UnixListener`] that owns its socket file, and
//! the peer credentials of every connection.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtgnet_proto::{Peer, PeerCredentials};
use tokio::net::UnixStream;

use crate::listener::Listener;

/// How long probing an existing socket file for a live server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Listener for tokio::net::UnixListener {
    type Io = UnixStream;

    /// Accepts a connection; the peer process's user, group and process
    /// ids (`SO_PEERCRED`) are its [`Peer::credentials`] (`None` only if
    /// the kernel does not report them, which is logged).
    async fn accept(&mut self) -> io::Result<(UnixStream, Peer)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        let mut peer = Peer::default();
        match stream.peer_cred() {
            Ok(cred) => {
                peer.credentials = Some(PeerCredentials::new(cred.uid(), cred.gid(), cred.pid()));
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the peer's credentials"),
        }
        Ok((stream, peer))
    }
}

/// A Unix-domain socket listener that owns its socket file: it replaces a
/// stale one when it binds, and removes its own when it is dropped (which
/// [`Server::serve`](crate::Server::serve) does as soon as shutdown starts).
///
/// Each connection's [`Peer::credentials`] hold the peer process's user,
/// group and process ids (`SO_PEERCRED`). Who may connect at all is up to
/// the file's permissions (set by the umask) and its directory's: put the
/// socket in a directory only the intended users can reach, or check the
/// credentials in a handler or layer.
///
/// ```
/// use mtgnet::{Client, ClientConfig, Context, Registry, Server, ServerConfig, Service, Shutdown, UnixListener};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new().with(Service::new("Who").method_with_context(
///     "uid",
///     "The caller's user id.",
///     |ctx: Context, (): ()| async move { Ok(ctx.peer().credentials.map(|c| c.uid)) },
/// ));
/// let dir = std::env::temp_dir().join(format!("mtgnet-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let listener = UnixListener::bind(&path).await?;
/// let server = Server::new(registry, ServerConfig::plain())?;
/// let shutdown = Shutdown::new();
/// let serving = tokio::spawn({
///     let shutdown = shutdown.clone();
///     async move { server.serve(listener, shutdown).await }
/// });
///
/// let client = Client::connect_unix(&path, ClientConfig::plain()).await?;
/// let uid: Option<u32> = client.call("Who", "uid", ()).await?;
/// assert!(uid.is_some());
///
/// shutdown.trigger();
/// serving.await??;
/// assert!(!path.exists(), "the socket file is removed on shutdown");
/// # std::fs::remove_dir(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
    /// The device and inode of the socket file this listener created: the
    /// file is removed on drop only while it is still that one.
    file: Option<(u64, u64)>,
}

impl UnixListener {
    /// Listens on a Unix-domain socket at `path`.
    ///
    /// A socket file already at `path` is replaced only when nothing
    /// listens on it (connecting is refused: its server is gone, a stale
    /// file); anything else there is left alone.
    ///
    /// # Errors
    ///
    /// * `AddrInUse`: a server is listening on `path` (it accepted a
    ///   connection, or its backlog is full);
    /// * `AlreadyExists`: `path` exists and is not a socket (it is not
    ///   touched);
    /// * whatever binding fails with (no such directory, permission denied,
    ///   a path too long for a socket address).
    pub async fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        remove_stale(path).await?;
        let inner = tokio::net::UnixListener::bind(path)?;
        let file = std::fs::symlink_metadata(path)
            .ok()
            .map(|metadata| (metadata.dev(), metadata.ino()));
        Ok(UnixListener {
            inner,
            path: path.to_owned(),
            file,
        })
    }

    /// The path of the socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| Some((metadata.dev(), metadata.ino())) == self.file);
        // Another server may have replaced the file since: leave its socket.
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the socket file");
            }
        }
    }
}

impl Listener for UnixListener {
    type Io = UnixStream;

    /// As [`tokio::net::UnixListener`]'s: the peer's credentials included.
    async fn accept(&mut self) -> io::Result<(UnixStream, Peer)> {
        Listener::accept(&mut self.inner).await
    }
}

/// Removes a socket file at `path` that no server listens on; refuses one
/// that a server answers on, and anything that is not a socket.
async fn remove_stale(path: &Path) -> io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket (left alone)",
        ));
    }
    let in_use = || {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            "address in use: a server is listening on this socket",
        )
    };
    match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        Ok(Ok(_)) | Err(_) => Err(in_use()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Err(in_use()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale socket file");
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        Ok(Err(e)) => Err(io::Error::new(
            e.kind(),
            format!("cannot tell whether a server listens on the existing socket: {e}"),
        )),
    }
}
