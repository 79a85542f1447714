use std::sync::Arc;

use mtgnet_encryption::PublicKey;
use tower_layer::Layer;

use super::Authorized;

/// Which peers may call which methods: a `tower` layer for
/// [`Registry::layer`](crate::Registry::layer).
///
/// A rule names a service and a method (`"*"`: every method of the
/// service), compared case-insensitively as the registry compares them. A
/// call runs when some rule for it admits the peer; other calls are
/// answered `not-authorized`.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet::authorize::Authorize;
/// use mtgnet::{demo, Client, ClientConfig, Encryption, IdentitySecret, Registry, Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let alice = Arc::new(IdentitySecret::generate());
/// let policy = Authorize::new()
///     .allow("Test", "add", [alice.public_key()])  // alice, and only alice, may add
///     .allow_anyone("Test", "echo")                 // anyone may echo
///     .allow_anyone("System", "*");                 // and look around
/// let registry = Registry::new().with(demo::test_service()).layer(policy);
/// let server = Server::new(registry, ServerConfig::encrypted(Encryption::new(Arc::new(IdentitySecret::generate()))))?;
/// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// tokio::spawn(async move { server.serve_connection(server_io, None, mtgnet::Shutdown::new()).await });
///
/// let config = ClientConfig::encrypted(Encryption::new(alice).dangerous_accept_any_key());
/// let (client, driver) = Client::new(client_io, config).await?;
/// tokio::spawn(driver);
/// assert_eq!(client.call::<_, i64>("Test", "add", (2, 3)).await?, 5);
/// let refused = client.call::<_, ()>("Test", "fail", ()).await.unwrap_err();
/// assert_eq!(refused.remote().map(|c| c.code_text()), Some("not-authorized".to_owned()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Authorize {
    pub(super) rules: Arc<Rules>,
}

impl Authorize {
    /// A policy that admits nothing yet.
    pub fn new() -> Authorize {
        Authorize::default()
    }

    /// Lets the peers with these identity keys call `service.method`
    /// (`method` `"*"`: every method of `service`).
    #[must_use]
    pub fn allow(
        self,
        service: impl Into<String>,
        method: impl Into<String>,
        keys: impl IntoIterator<Item = PublicKey>,
    ) -> Authorize {
        self.rule(Rule {
            service: service.into(),
            method: method.into(),
            who: Who::Keys(keys.into_iter().collect()),
        })
    }

    /// Lets any peer, even one with no identity (a plain connection), call
    /// `service.method` (`method` `"*"`: every method of `service`).
    #[must_use]
    pub fn allow_anyone(self, service: impl Into<String>, method: impl Into<String>) -> Authorize {
        self.rule(Rule {
            service: service.into(),
            method: method.into(),
            who: Who::Anyone,
        })
    }

    fn rule(mut self, rule: Rule) -> Authorize {
        Arc::make_mut(&mut self.rules).0.push(rule);
        self
    }
}

impl<S> Layer<S> for Authorize {
    type Service = Authorized<S>;

    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized::new(inner, self)
    }
}

/// The rules of a policy, shared by every clone of its service.
#[derive(Clone, Debug, Default)]
pub(super) struct Rules(Vec<Rule>);

#[derive(Clone, Debug)]
struct Rule {
    service: String,
    /// `"*"` for every method.
    method: String,
    who: Who,
}

#[derive(Clone, Debug)]
enum Who {
    Anyone,
    Keys(Vec<PublicKey>),
}

impl Rules {
    /// Whether a rule for `service.method` admits a peer with `identity`.
    pub(super) fn admits(&self, service: &str, method: &str, identity: Option<&PublicKey>) -> bool {
        self.0.iter().any(|rule| {
            rule.service.eq_ignore_ascii_case(service)
                && (rule.method == "*" || rule.method.eq_ignore_ascii_case(method))
                && match &rule.who {
                    Who::Anyone => true,
                    Who::Keys(keys) => identity.is_some_and(|id| keys.contains(id)),
                }
        })
    }
}
