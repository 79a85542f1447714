//! The blocking client, used from a plain thread.

use std::sync::Arc;

use mtgnet::{AuthorizedKeys, CallError, ClientConfig, Encryption, IdentitySecret, blocking};

use crate::util::{BOUND, TestServer};

fn with_server(encrypted: bool, test: impl FnOnce(&TestServer) + Send) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(async {
        if encrypted {
            TestServer::encrypted().await
        } else {
            TestServer::plain().await
        }
    });
    std::thread::scope(|s| {
        s.spawn(|| test(&server)).join().expect("test thread");
    });
    drop(server);
}

#[test]
fn blocking_client_calls_plain_and_encrypted_servers() {
    for encrypted in [false, true] {
        with_server(encrypted, |server| {
            let client =
                blocking::Client::connect(server.addr, server.client_config()).expect("connects");
            let sum: i64 = client.call("Test", "add", (2, 40)).expect("add");
            assert_eq!(sum, 42);
            client.notify("Test", "echo", ("n",)).expect("notify");
            let err = client.call::<_, ()>("Test", "fail", ()).expect_err("fails");
            assert!(
                matches!(err, CallError::Remote(ref c) if c.code == 42),
                "{err}"
            );
            let reply = client.call_reply("Test", "warn", ("w",)).expect("warn");
            assert_eq!(reply.warnings.len(), 1);
            assert_eq!(client.peer_identity().is_some(), encrypted);
        });
    }
}

#[test]
fn blocking_client_reports_a_pin_mismatch() {
    with_server(true, |server| {
        let config = ClientConfig::encrypted(
            Encryption::new(Arc::new(IdentitySecret::generate())).authorized(AuthorizedKeys::only(
                [IdentitySecret::generate().public_key()],
            )),
        );
        let err =
            blocking::Client::connect(server.addr, config).expect_err("pinned to another key");
        assert!(
            matches!(
                err,
                mtgnet::Error::Auth(mtgnet::AuthError::NotAuthorized(_))
            ),
            "{err}"
        );
    });
}

#[test]
fn blocking_notify_then_drop_still_reaches_the_server() {
    let (hits, hit) = std::sync::mpsc::channel::<u32>();
    let hits = std::sync::Mutex::new(hits);
    let registry = mtgnet::Registry::new().with(mtgnet::Service::new("Record").method(
        "hit",
        "Records its argument.",
        move |(n,): (u32,)| {
            let _ = hits.lock().expect("lock").send(n);
            async move { Ok(()) }
        },
    ));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(TestServer::start(
        mtgnet::ServerConfig::plain(),
        None,
        registry,
    ));
    for n in 0..20 {
        std::thread::scope(|s| {
            s.spawn(|| {
                let client = blocking::Client::connect(server.addr, server.client_config())
                    .expect("connects");
                client.notify("Record", "hit", (n,)).expect("notify");
                // Dropped at once: the notification must already be on the wire.
            })
            .join()
            .expect("client thread");
        });
        assert_eq!(
            hit.recv_timeout(BOUND),
            Ok(n),
            "notification {n} reached the server"
        );
    }
    drop(server);
}
