//! `mtgnet call`: one call, its result as one line of JSON.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, anyhow};
use mtgnet::{
    AuthError, AuthorizedKeys, CallError, ClientConfig, Encryption, EncryptionVersion, Error,
    HandshakeFailure, PeerError, RawJson,
};
use serde_json::value::RawValue;

use crate::args::CallArgs;
use crate::endpoint::Endpoint;
use crate::keys;

/// `call`'s arguments, validated: arguments encoded, identity loaded.
#[derive(Debug)]
pub(crate) struct CallSettings {
    /// Server address.
    pub(crate) addr: Endpoint,
    /// Service name.
    pub(crate) service: String,
    /// Method name.
    pub(crate) method: String,
    /// The arguments as one JSON array.
    pub(crate) args: RawJson,
    /// Bound on connect + handshake + call.
    pub(crate) timeout: Duration,
    /// Encryption and call timeout.
    pub(crate) config: ClientConfig,
}

impl TryFrom<CallArgs> for CallSettings {
    type Error = anyhow::Error;

    fn try_from(args: CallArgs) -> anyhow::Result<CallSettings> {
        let json_args = encode_args(&args.args)?;
        let mut config = if args.plain {
            ClientConfig::plain()
        } else {
            let (identity, _) = keys::load_identity(args.secret_file.as_deref())?;
            let encryption = Encryption::new(identity)
                .handshake_timeout(args.timeout)
                .version(args.encryption.version());
            let encryption = if args.server_key.is_empty() {
                // The deployed default; `run` says so on stderr.
                encryption.dangerous_accept_any_key()
            } else {
                encryption.authorized(AuthorizedKeys::only(args.server_key))
            };
            ClientConfig::encrypted(encryption)
        };
        config = config.call_timeout(args.timeout);
        Ok(CallSettings {
            addr: args.addr,
            service: args.service,
            method: args.method,
            args: json_args,
            timeout: args.timeout,
            config,
        })
    }
}

/// Encodes command-line arguments as a JSON array: each one as JSON when it
/// is JSON, else as a string.
fn encode_args(args: &[String]) -> anyhow::Result<RawJson> {
    let mut array = String::from("[");
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        match serde_json::from_str::<Box<RawValue>>(arg.trim()) {
            Ok(raw) => array.push_str(&compact(raw.get())),
            Err(_) => array.push_str(&serde_json::to_string(arg)?),
        }
    }
    array.push(']');
    RawJson::from_string(array).context("cannot encode the arguments as JSON")
}

/// Removes the whitespace between JSON tokens, leaving every token (and so
/// every number, however large) exactly as written.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// The one line `call` prints on stderr when no `--server-key` pins the
/// server: the call still runs (the deployed peers' default).
pub(crate) const UNPINNED: &str = "warning: the server's key is not pinned (no --server-key): \
     whoever answers at this address is trusted, so anyone on the path can pose as the server";

/// What a v2 client says of a server that speaks only encryption v1.
pub(crate) const ONLY_V1: &str =
    "the server speaks only encryption v1; `--encryption v1` accepts its weaker protection";

/// Runs `mtgnet call`.
///
/// # Errors
///
/// A [`CallError::Remote`] when the server answered with an error; any other
/// error (usage, connection, handshake, protocol) with a message naming the
/// likely cause.
pub(crate) fn run(args: CallArgs) -> anyhow::Result<()> {
    let settings = CallSettings::try_from(args)?;
    crate::init_tracing("warn");
    if settings
        .config
        .encryption()
        .is_some_and(|encryption| encryption.authorized_keys().is_any())
    {
        eprintln!("{UNPINNED}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let timeout = settings.timeout;
    let result = runtime.block_on(async {
        tokio::time::timeout(timeout, call(&settings))
            .await
            .unwrap_or_else(|_| {
                Err(anyhow!(
                    "no answer from {} within {} s (connect, handshake and call; see --timeout)",
                    settings.addr,
                    timeout.as_secs_f64()
                ))
            })
    })?;
    // Warnings first, whether the call succeeded or failed.
    let mut stderr = std::io::stderr().lock();
    for warning in &result.warnings {
        writeln!(
            stderr,
            "warning {}: {}",
            warning.code_text(),
            warning.message
        )?;
    }
    drop(stderr);
    let data = result.outcome.map_err(CallError::Remote)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", compact(data.as_str()))?;
    stdout.flush()?;
    Ok(())
}

async fn call(settings: &CallSettings) -> anyhow::Result<mtgnet::CallResult> {
    let encrypted = settings.config.encryption().is_some();
    let client = settings
        .addr
        .connect(settings.config.clone())
        .await
        .map_err(|e| connect_error(&settings.addr.to_string(), &e, &settings.config))?;
    client
        .call_result(&settings.service, &settings.method, &settings.args)
        .await
        .map_err(|e| match e {
            CallError::Remote(_) => anyhow::Error::new(e),
            CallError::Timeout => anyhow!(
                "{}.{} did not answer within {} s (see --timeout)",
                settings.service,
                settings.method,
                settings.timeout.as_secs_f64()
            ),
            CallError::Connection(reason) => anyhow!(
                "{}",
                connection_lost(&reason, encrypted, settings.config.encryption())
            ),
            other => anyhow::Error::new(other),
        })
}

/// Explains a failure to connect or to complete the handshake.
pub(crate) fn connect_error(addr: &str, e: &Error, config: &ClientConfig) -> anyhow::Error {
    let pinned = config
        .encryption()
        .is_some_and(|enc| !enc.authorized_keys().is_any());
    match e {
        Error::Io(io) => anyhow!("cannot connect to {addr}: {io}"),
        Error::Peer(PeerError::Handshake(HandshakeFailure::Closed)) => anyhow!(
            "the server closed the connection during the handshake \
             (is it running with --plain, or does it not authorize this key?)"
        ),
        Error::Peer(PeerError::Handshake(HandshakeFailure::Timeout)) => anyhow!(
            "the handshake timed out (is the server running with --plain? then use --plain)"
        ),
        Error::Peer(PeerError::Handshake(
            HandshakeFailure::Size { .. } | HandshakeFailure::Frame(_),
        )) => anyhow!(
            "the server did not answer with an encryption handshake ({e}); \
             is it running with --plain? then use --plain"
        ),
        Error::Auth(AuthError::NotAuthorized(key)) if pinned => anyhow!(
            "the server's key {key} is not one of the --server-key keys: refusing to talk to it"
        ),
        Error::Auth(AuthError::NotAuthorized(key)) => {
            anyhow!("the server's key {key} is not authorized")
        }
        Error::Auth(AuthError::InvalidSignature) => anyhow!(
            "the server's handshake signature does not verify: it does not hold the key it claims"
        ),
        Error::Peer(PeerError::Handshake(HandshakeFailure::OnlyV1)) => anyhow!(ONLY_V1),
        other => anyhow!("connection to {addr} failed: {other}"),
    }
}

/// Explains a connection that ended before the result arrived.
fn connection_lost(reason: &Error, encrypted: bool, encryption: Option<&Encryption>) -> String {
    let v2 = encryption.is_some_and(|e| e.client_version() == EncryptionVersion::V2);
    match (reason, encrypted) {
        // A v2 server refuses a key by ending the stream before any record
        // (`EndedAfterHandshake`); its close record means it chose to close.
        (Error::Closed, true) if v2 => "the server closed the connection without answering: \
             it is shutting down, or it is a proxy that cannot reach its backend"
            .to_owned(),
        (Error::Closed, true) => format!(
            "the server closed the connection after the handshake: does it authorize this client's key {}?",
            encryption.map_or_else(String::new, |e| e.public_key().to_string())
        ),
        (Error::Io(_), true) => format!(
            "the server dropped the connection ({reason}): does it authorize this client's key {}?",
            encryption.map_or_else(String::new, |e| e.public_key().to_string())
        ),
        (Error::Closed, false) => {
            "the server closed the connection: is it encrypted? then drop --plain".to_owned()
        }
        (Error::Io(_), false) => format!(
            "the server dropped the connection ({reason}): is it encrypted? then drop --plain"
        ),
        (
            Error::Peer(PeerError::Message(_) | PeerError::Framing(_) | PeerError::Protocol(_)),
            false,
        ) => format!(
            "the server's answer is not an MTGNet response ({reason}); is it encrypted? then drop --plain"
        ),
        (Error::Peer(PeerError::Decrypt(_)), _) => {
            format!("cannot decrypt the server's answer ({reason}): the session keys do not match")
        }
        (Error::Auth(AuthError::EndedAfterHandshake), _) => format!(
            "the server closed the connection right after the handshake: does it authorize this client's key {}?",
            encryption.map_or_else(String::new, |e| e.public_key().to_string())
        ),
        _ => format!("the connection failed: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_are_not_json_become_strings() {
        let args = [
            "hello",
            "1",
            "-5",
            "{\"a\": [1, 2]}",
            "\"quoted\"",
            "two words",
        ]
        .map(String::from);
        let json = encode_args(&args).expect("encodes");
        assert_eq!(
            json.as_str(),
            r#"["hello",1,-5,{"a":[1,2]},"quoted","two words"]"#
        );
    }

    #[test]
    fn big_integers_keep_every_digit() {
        let json = encode_args(&["123456789012345678901234567890".to_owned()]).expect("encodes");
        assert_eq!(json.as_str(), "[123456789012345678901234567890]");
    }

    #[test]
    fn compact_keeps_whitespace_inside_strings() {
        assert_eq!(
            compact("{ \"a b\" : [ 1 , \"x\\\" y\" ] }\n"),
            r#"{"a b":[1,"x\" y"]}"#
        );
    }
}
