//! TCP options, set on purpose: a client's connections (`TCP_NODELAY`,
//! keepalive from `ClientConfig::tcp_keepalive`) and a server's accepted
//! ones (`TCP_NODELAY`, a fixed keepalive).
//!
//! The connect timeout is not here: it bounds every connector, TCP or not
//! (see `Client::with_connector`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Unanswered keepalive probes after which the system fails a client's connection.
const KEEPALIVE_PROBES: u32 = 3;

/// Connects to the first of `addrs` that accepts, then sets the options.
pub(crate) async fn connect(
    addrs: Arc<[SocketAddr]>,
    keepalive: Option<Duration>,
) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(&addrs[..]).await?;
    configure(&stream, keepalive)?;
    Ok(stream)
}

/// `TCP_NODELAY` (a request is written whole and must not wait for the
/// acknowledgement of the previous one), and keepalive after `keepalive`
/// idle (see `ClientConfig::tcp_keepalive`).
pub(crate) fn configure(stream: &TcpStream, keepalive: Option<Duration>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    if let Some(idle) = keepalive {
        SockRef::from(stream).set_tcp_keepalive(&keepalive_params(idle))?;
    }
    Ok(())
}

/// A client's keepalive: a probe after `idle`, then every `idle / 3` (at
/// least 1 s), [`KEEPALIVE_PROBES`] of them.
fn keepalive_params(idle: Duration) -> TcpKeepalive {
    keepalive(
        idle,
        (idle / 3).max(Duration::from_secs(1)),
        KEEPALIVE_PROBES,
    )
}

/// Keepalive: the first probe after `time` of silence, then one every
/// `interval`, the connection failed after `retries` unanswered ones; the
/// interval and count only where the system lets us say so.
#[cfg_attr(
    not(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "windows",
    )),
    allow(unused_variables)
)]
fn keepalive(time: Duration, interval: Duration, retries: u32) -> TcpKeepalive {
    let params = TcpKeepalive::new().with_time(time);
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "windows",
    ))]
    let params = params.with_interval(interval).with_retries(retries);
    params
}

/// Idle time before the first keepalive probe of an accepted connection.
pub(crate) const ACCEPTED_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// Time between unanswered probes.
pub(crate) const ACCEPTED_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes after which the kernel drops the connection.
pub(crate) const ACCEPTED_KEEPALIVE_RETRIES: u32 = 6;

/// Sets the options every TCP connection of a server gets:
///
/// * `TCP_NODELAY`: requests and responses are whole frames written at
///   once, so Nagle's algorithm would only add latency;
/// * TCP keepalive, first probe after 60 s of silence, then every 10 s, the
///   connection dropped after 6 unanswered probes: a peer that vanished
///   without closing (host crashed, cable pulled, a NAT forgot the flow) is
///   noticed within about two minutes even while one of its calls runs for
///   long, and the probes keep middleboxes from forgetting a quiet
///   connection before the server's idle timeout (300 s) closes it.
///
/// Failing to set an option is logged, not fatal: the connection works
/// without it.
pub(crate) fn configure_accepted(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let keepalive = keepalive(
        ACCEPTED_KEEPALIVE_TIME,
        ACCEPTED_KEEPALIVE_INTERVAL,
        ACCEPTED_KEEPALIVE_RETRIES,
    );
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_sockets_get_nodelay_and_the_documented_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addrs: Arc<[SocketAddr]> = Arc::new([listener.local_addr().expect("addr")]);
        let stream = connect(Arc::clone(&addrs), Some(Duration::from_secs(30)))
            .await
            .expect("connect");
        let socket = SockRef::from(&stream);
        assert!(stream.nodelay().expect("nodelay"));
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                socket.tcp_keepalive_time().expect("idle"),
                Duration::from_secs(30)
            );
            assert_eq!(
                socket.tcp_keepalive_interval().expect("interval"),
                Duration::from_secs(10)
            );
            assert_eq!(
                socket.tcp_keepalive_retries().expect("probes"),
                KEEPALIVE_PROBES
            );
        }

        let short = connect(Arc::clone(&addrs), Some(Duration::from_secs(2)))
            .await
            .expect("connect");
        #[cfg(target_os = "linux")]
        assert_eq!(
            SockRef::from(&short)
                .tcp_keepalive_interval()
                .expect("interval"),
            Duration::from_secs(1),
            "the interval is at least 1 s"
        );

        let without = connect(addrs, None).await.expect("connect");
        assert!(without.nodelay().expect("nodelay"));
        assert!(!SockRef::from(&without).keepalive().expect("SO_KEEPALIVE"));
        drop((short, listener));
    }
}
