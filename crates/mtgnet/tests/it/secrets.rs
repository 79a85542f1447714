//! No secret ever reaches a log line or a `Debug` string.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mtgnet::{
    AuthorizedKeys, Client, ClientConfig, Encryption, IdentitySecret, Registry, Server,
    ServerConfig, Service,
};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every textual form of a secret that could leak.
fn forms(identity: &IdentitySecret) -> Vec<String> {
    let b64 = identity.to_base64().expose_secret().to_owned();
    let hex = identity
        .expose_secret(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    vec![b64[..43].to_owned(), hex[..64].to_owned()]
}

#[test]
fn secrets_stay_out_of_trace_logs_and_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let server_identity = Arc::new(IdentitySecret::generate());
    let client_identity = Arc::new(IdentitySecret::generate());
    let mut debug_strings = Vec::new();

    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let registry = Registry::new()
                .with(mtgnet::demo::test_service())
                .with(Service::new("Extra"));
            let server_encryption = Encryption::new(Arc::clone(&server_identity));
            let server = Server::new(registry, ServerConfig::encrypted(server_encryption.clone()))
                .expect("valid limits");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let stop = mtgnet::Shutdown::new();
            let serving = tokio::spawn({
                let server = server.clone();
                let stop = stop.clone();
                async move { server.serve(listener, stop).await }
            });

            let encryption = Encryption::new(Arc::clone(&client_identity))
                .authorized(AuthorizedKeys::only([server_identity.public_key()]));
            let config = ClientConfig::encrypted(encryption.clone());
            let client = Client::connect(addr, config.clone())
                .await
                .expect("connect");
            let _: i64 = client.call("Test", "add", (1, 2)).await.expect("add");
            let _ = client.call::<_, ()>("Test", "fail", ()).await;
            // A rejected connection and a failed handshake log too.
            let wrong_pin = ClientConfig::encrypted(
                Encryption::new(Arc::clone(&client_identity))
                    .authorized(AuthorizedKeys::only([client_identity.public_key()])),
            );
            assert!(Client::connect(addr, wrong_pin).await.is_err());

            debug_strings.extend([
                format!("{server:?}"),
                format!("{server_encryption:?}"),
                format!("{encryption:?}"),
                format!("{config:?}"),
                format!("{client:?}"),
                format!("{client_identity:?}"),
                format!("{:?}", client_identity.to_base64()),
            ]);
            drop(client);
            stop.trigger();
            serving.await.expect("task").expect("serve");
        });
    });

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("UTF-8 logs");
    assert!(!logs.is_empty(), "the trace subscriber captured something");
    for identity in [&server_identity, &client_identity] {
        for form in forms(identity) {
            assert!(!logs.contains(&form), "a secret appears in the logs");
            for text in &debug_strings {
                assert!(
                    !text.contains(&form),
                    "a secret appears in a Debug string: {text}"
                );
            }
        }
    }
}
