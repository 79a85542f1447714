//! The socket options of accepted TCP connections, set deliberately.

use std::time::Duration;

use tokio::net::TcpStream;

/// Idle time before the first keepalive probe.
pub(crate) const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// Time between unanswered probes.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes after which the kernel drops the connection.
pub(crate) const KEEPALIVE_RETRIES: u32 = 6;

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
pub(crate) fn configure(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_TIME);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_vendor = "apple"
    ))]
    let keepalive = keepalive
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}
