//! Unix-domain sockets: the peer's credentials reach handlers, and the
//! socket file lives exactly as long as its listener.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Context, Encryption, IdentitySecret, Limits, Registry,
    Server, ServerConfig, Service, Shutdown, UnixListener,
};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use crate::util::bounded;

/// `Who.peer()`: the caller's credentials and address, as the handler sees them.
fn who() -> Registry {
    Registry::new().with(mtgnet::demo::test_service()).with(
        Service::new("Who").method_with_context(
            "peer",
            "The caller's credentials (uid, gid, pid) and address.",
            |ctx: Context, (): ()| async move {
                let peer = ctx.peer();
                Ok((
                    peer.credentials.map(|c| (c.uid, c.gid, c.pid)),
                    peer.address.map(|a| a.to_string()),
                    peer.identity.is_some(),
                ))
            },
        ),
    )
}

type Seen = (Option<(u32, u32, Option<i32>)>, Option<String>, bool);

/// A server on a Unix socket at `path`, until `stop` is triggered.
async fn serve_at(
    path: &Path,
    config: ServerConfig,
) -> (Shutdown, JoinHandle<std::io::Result<()>>) {
    let listener = UnixListener::bind(path).await.expect("bind the socket");
    let server = Server::new(who(), config).expect("valid limits");
    let stop = Shutdown::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { server.serve(listener, stop).await }
    });
    (stop, task)
}

fn socket_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("mtgnet.sock")
}

/// This process's ids, as the kernel reports them for a peer.
fn own_credentials() -> (u32, u32, Option<i32>) {
    // SAFETY: getuid and getgid cannot fail and touch no memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let pid = i32::try_from(std::process::id()).expect("pid fits i32");
    (uid, gid, Some(pid))
}

#[tokio::test]
async fn a_handler_sees_the_uid_gid_and_pid_of_a_unix_peer_and_its_identity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    let identity = Arc::new(IdentitySecret::generate());
    let (stop, task) = serve_at(
        &path,
        ServerConfig::encrypted(Encryption::new(Arc::clone(&identity))),
    )
    .await;

    let config = ClientConfig::encrypted(
        Encryption::new(Arc::new(IdentitySecret::generate()))
            .authorized(AuthorizedKeys::only([identity.public_key()])),
    );
    let client = bounded(Client::connect_unix(&path, config))
        .await
        .expect("encrypted connection over the socket");
    let seen: Seen = bounded(client.call("Who", "peer", ())).await.expect("call");
    assert_eq!(seen, (Some(own_credentials()), None, true));

    stop.trigger();
    bounded(task).await.expect("task").expect("serve");
}

#[tokio::test]
async fn a_tcp_peer_has_an_address_and_no_credentials() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(who(), ServerConfig::plain()).expect("server");
    let stop = Shutdown::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { server.serve(listener, stop).await }
    });
    let client = bounded(Client::connect(addr, ClientConfig::plain()))
        .await
        .expect("connect");
    let (credentials, address, identified): Seen =
        bounded(client.call("Who", "peer", ())).await.expect("call");
    assert_eq!((credentials, identified), (None, false));
    assert!(
        address.is_some_and(|a| a.starts_with("127.0.0.1:")),
        "the handler sees the client's address"
    );
    stop.trigger();
    bounded(task).await.expect("task").expect("serve");
}

#[test]
fn the_blocking_client_calls_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (stop, task) = runtime.block_on(serve_at(&path, ServerConfig::plain()));

    let client =
        mtgnet::blocking::Client::connect_unix(&path, ClientConfig::plain()).expect("connect");
    let sum: i64 = client.call("Test", "add", (20, 22)).expect("call");
    assert_eq!(sum, 42);
    drop(client);

    stop.trigger();
    runtime
        .block_on(bounded(task))
        .expect("task")
        .expect("serve");
}

#[tokio::test]
async fn a_stale_socket_file_left_by_a_dead_server_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    // A server that died without removing its socket file: the file stays,
    // nothing listens on it.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let refused = std::os::unix::net::UnixStream::connect(&path).expect_err("stale");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    let (stop, task) = serve_at(&path, ServerConfig::plain()).await;
    let client = bounded(Client::connect_unix(&path, ClientConfig::plain()))
        .await
        .expect("the new server answers on the replaced file");
    let echoed: String = bounded(client.call("Test", "echo", ("here",)))
        .await
        .expect("call");
    assert_eq!(echoed, "here");
    stop.trigger();
    bounded(task).await.expect("task").expect("serve");
}

#[tokio::test]
async fn a_socket_a_server_listens_on_is_refused_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    let (stop, task) = serve_at(&path, ServerConfig::plain()).await;

    let err = bounded(UnixListener::bind(&path))
        .await
        .expect_err("a live socket is not replaced");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(
        err.to_string(),
        "address in use: a server is listening on this socket"
    );

    let client = bounded(Client::connect_unix(&path, ClientConfig::plain()))
        .await
        .expect("the first server still owns the socket");
    let sum: i64 = bounded(client.call("Test", "add", (1, 2)))
        .await
        .expect("call");
    assert_eq!(sum, 3);
    stop.trigger();
    bounded(task).await.expect("task").expect("serve");
}

#[tokio::test]
async fn a_path_that_is_not_a_socket_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    std::fs::write(&path, "precious data\n").expect("write");

    let err = bounded(UnixListener::bind(&path))
        .await
        .expect_err("a regular file is not replaced");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        err.to_string(),
        "the path exists and is not a socket (left alone)"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        "precious data\n"
    );
}

#[tokio::test]
async fn the_socket_file_is_removed_on_graceful_shutdown_and_when_the_listener_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    let (stop, task) = serve_at(&path, ServerConfig::plain()).await;
    assert!(path.exists());
    stop.trigger();
    bounded(task).await.expect("task").expect("serve");
    assert!(!path.exists(), "removed when serve stopped");

    let listener = UnixListener::bind(&path).await.expect("bind again");
    assert_eq!(listener.path(), path);
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists(), "removed when dropped");
}

#[tokio::test]
async fn a_listener_whose_file_was_replaced_leaves_the_new_file_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    let first = UnixListener::bind(&path).await.expect("bind");
    // Someone removes the file and another server binds the same path.
    std::fs::remove_file(&path).expect("remove");
    let second = UnixListener::bind(&path).await.expect("bind again");
    drop(first);
    assert!(path.exists(), "the second server's socket is not removed");
    let connected = std::os::unix::net::UnixStream::connect(&path);
    assert!(connected.is_ok(), "{connected:?}");
    drop(second);
    assert!(!path.exists());
}

#[tokio::test]
async fn the_server_limits_apply_over_unix_sockets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&dir);
    let limits = Limits::default().idle_timeout(Duration::from_millis(200));
    let (stop, task) = serve_at(&path, ServerConfig::plain().limits(limits)).await;

    let mut idle = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    let mut byte = [0u8; 1];
    let read = bounded(idle.read(&mut byte)).await.expect("read");
    assert_eq!(read, 0, "the idle connection is closed by the server");
    stop.trigger();
    bounded(task).await.expect("task").expect("serve");
}
