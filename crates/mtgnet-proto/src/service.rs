//! [`Service`]s and their methods: what a server hosts.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::condition::{Condition, codes};
use crate::json::RawJson;

/// What a handler's future yields: the result data, or the condition the call failed with.
pub type Outcome = Result<RawJson, Condition>;

/// A type-erased handler: context and raw argument array in, outcome out.
pub(crate) type HandlerFn =
    Arc<dyn Fn(Context, RawJson) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// Who is on the other end of a connection, as far as the server knows.
///
/// The transport fills in what it knows (a TCP peer's address, a Unix
/// peer's [credentials](PeerCredentials)); on an encrypted connection the
/// handshake adds the identity it proved. New fields may be added, so build
/// one from [`Peer::default`] (or from an address) and set the fields:
///
/// ```
/// use mtgnet_proto::{Peer, PeerCredentials};
///
/// let from_tcp = Peer::from("192.0.2.7:40000".parse::<std::net::SocketAddr>().unwrap());
/// assert_eq!(from_tcp.address.map(|a| a.port()), Some(40000));
///
/// let mut from_unix = Peer::default();
/// from_unix.credentials = Some(PeerCredentials::new(1000, 1000, Some(4242)));
/// assert_eq!(from_unix.credentials.map(|c| c.uid), Some(1000));
/// ```
///
/// A handler sees it through [`Context::peer`]:
///
/// ```
/// use std::sync::Arc;
/// use mtgnet_proto::{wire, Context, Peer, Registry, Service};
///
/// let registry = Registry::new().with(Service::new("Who").method_with_context(
///     "caller",
///     "The caller's address.",
///     |ctx: Context, (): ()| async move { Ok(ctx.peer().address.map(|a| a.to_string())) },
/// ));
/// let peer = Peer::from("192.0.2.7:40000".parse::<std::net::SocketAddr>().unwrap());
/// let calls = wire::parse_request(br#"[{"service":"Who","method":"caller","id":1}]"#).unwrap();
/// let response = futures::executor::block_on(registry.respond(calls, Arc::new(peer))).unwrap();
/// assert_eq!(response, br#"[{"id":1,"data":"192.0.2.7:40000"}]"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// The peer's Ed25519 identity public key, on an encrypted connection:
    /// the key the handshake proved, compared in constant time.
    pub identity: Option<mtgnet_encryption::PublicKey>,
    /// The peer's network address, when the transport has one.
    pub address: Option<std::net::SocketAddr>,
    /// The peer process's user, group and process ids, on a Unix-domain
    /// socket (`SO_PEERCRED`).
    pub credentials: Option<PeerCredentials>,
}

impl From<std::net::SocketAddr> for Peer {
    /// A peer known by its network address only.
    fn from(address: std::net::SocketAddr) -> Peer {
        Peer {
            address: Some(address),
            ..Peer::default()
        }
    }
}

impl From<Option<std::net::SocketAddr>> for Peer {
    /// A peer known by its network address, when there is one.
    fn from(address: Option<std::net::SocketAddr>) -> Peer {
        Peer {
            address,
            ..Peer::default()
        }
    }
}

/// The process on the other end of a Unix-domain socket, as the kernel
/// reports it (`SO_PEERCRED` on Linux: the credentials the peer had when it
/// connected, which it cannot forge).
///
/// ```
/// use mtgnet_proto::PeerCredentials;
///
/// let credentials = PeerCredentials::new(0, 0, Some(1));
/// assert_eq!((credentials.uid, credentials.gid, credentials.pid), (0, 0, Some(1)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PeerCredentials {
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
    /// The peer's process id, where the platform reports it (Linux does).
    pub pid: Option<i32>,
}

impl PeerCredentials {
    /// Credentials of user `uid`, group `gid`, process `pid`.
    pub fn new(uid: u32, gid: u32, pid: Option<i32>) -> PeerCredentials {
        PeerCredentials { uid, gid, pid }
    }
}

/// What a handler knows about the call it runs: the peer, and a place to put warnings.
///
/// ```
/// use mtgnet_proto::{Condition, Context, Service};
///
/// let service = Service::new("Vault").method_with_context(
///     "open",
///     "Opens the vault for an authorized peer.",
///     |ctx: Context, (): ()| async move {
///         match ctx.peer().identity {
///             Some(_) => {
///                 ctx.warn(Condition::new("audit", "this call was logged"));
///                 Ok("opened")
///             }
///             None => Err(Condition::new("forbidden", "encrypted connections only")),
///         }
///     },
/// );
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    peer: Arc<Peer>,
    warnings: Arc<Mutex<Vec<Condition>>>,
}

impl Context {
    /// A context for a call from `peer`.
    pub fn new(peer: Arc<Peer>) -> Context {
        Context {
            peer,
            warnings: Arc::default(),
        }
    }

    /// The peer that made the call.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Adds a warning to the call's result.
    pub fn warn(&self, condition: Condition) {
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(condition);
    }

    /// Takes the warnings added so far.
    pub fn take_warnings(&self) -> Vec<Condition> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Types a method's positional argument array can be read into.
///
/// Implemented for tuples of up to eight [`DeserializeOwned`] values (the
/// array must have exactly that many elements; `()` takes none), for
/// `Vec<T>` (any number of `T`), and for [`RawJson`] (the array untouched).
///
/// A handler's argument type picks the implementation; a mismatch becomes
/// an `invalid-arguments` error result without the handler running.
///
/// ```
/// use mtgnet_proto::{FromArgs, RawJson};
///
/// let args = RawJson::from_serialize(&(2, "two")).unwrap();
/// let (n, name) = <(i64, String)>::from_args(&args).unwrap();
/// assert_eq!((n, name.as_str()), (2, "two"));
/// assert_eq!(Vec::<serde_json::Value>::from_args(&args).unwrap().len(), 2);
/// assert_eq!(RawJson::from_args(&args).unwrap().as_str(), r#"[2,"two"]"#);
///
/// // A tuple needs exactly its arity, `()` an empty array.
/// assert!(<(i64,)>::from_args(&args).is_err());
/// assert!(<()>::from_args(&args).is_err());
/// assert!(<()>::from_args(&RawJson::empty_array()).is_ok());
/// ```
pub trait FromArgs: Sized + Send + 'static {
    /// Reads the argument array.
    ///
    /// # Errors
    ///
    /// When the arguments do not fit: wrong count or wrong types.
    fn from_args(args: &RawJson) -> Result<Self, serde_json::Error>;
}

impl FromArgs for () {
    fn from_args(args: &RawJson) -> Result<(), serde_json::Error> {
        let values: Vec<IgnoredAny> = args.deserialize()?;
        if values.is_empty() {
            Ok(())
        } else {
            Err(serde::de::Error::invalid_length(
                values.len(),
                &"no arguments",
            ))
        }
    }
}

impl FromArgs for RawJson {
    fn from_args(args: &RawJson) -> Result<RawJson, serde_json::Error> {
        Ok(args.clone())
    }
}

impl<T: DeserializeOwned + Send + 'static> FromArgs for Vec<T> {
    fn from_args(args: &RawJson) -> Result<Vec<T>, serde_json::Error> {
        args.deserialize()
    }
}

macro_rules! tuple_from_args {
    ($($name:ident),+) => {
        impl<$($name: DeserializeOwned + Send + 'static),+> FromArgs for ($($name,)+) {
            fn from_args(args: &RawJson) -> Result<Self, serde_json::Error> {
                args.deserialize()
            }
        }
    };
}

tuple_from_args!(A);
tuple_from_args!(A, B);
tuple_from_args!(A, B, C);
tuple_from_args!(A, B, C, D);
tuple_from_args!(A, B, C, D, E);
tuple_from_args!(A, B, C, D, E, F);
tuple_from_args!(A, B, C, D, E, F, G);
tuple_from_args!(A, B, C, D, E, F, G, H);

/// One method of a service.
#[derive(Clone)]
pub(crate) struct Method {
    pub(crate) name: String,
    pub(crate) doc: String,
    pub(crate) handler: HandlerFn,
}

/// The `describeService` text of a service.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Description {
    pub(crate) product: String,
    pub(crate) authors: Vec<String>,
    pub(crate) description: String,
}

/// Names every service answers by itself; a handler cannot take them.
pub(crate) const BUILTIN_METHODS: [&str; 3] = ["methods", "describeMethod", "version"];

/// A named group of methods, with a version and a description.
///
/// Every service also answers `methods()`, `describeMethod(name)` and
/// `version()` by itself (PROTOCOL.md section 5); those names cannot be
/// registered.
///
/// ```
/// use mtgnet_proto::{Condition, Service};
///
/// let math = Service::new("Math")
///     .version(2, "2.1")
///     .description("Arithmetic.")
///     .method("add", "Adds two integers.", |(a, b): (i64, i64)| async move {
///         a.checked_add(b).ok_or_else(|| Condition::new("overflow", "the sum overflows"))
///     });
/// assert_eq!(math.name(), "Math");
/// ```
#[derive(Clone)]
pub struct Service {
    pub(crate) name: String,
    pub(crate) version: (i64, String),
    pub(crate) description: Description,
    pub(crate) methods: Vec<Method>,
}

impl Service {
    /// A service with no methods, version `1` / `"1.0"`.
    pub fn new(name: impl Into<String>) -> Service {
        let name = name.into();
        Service {
            description: Description {
                product: name.clone(),
                authors: Vec::new(),
                description: String::new(),
            },
            name,
            version: (1, "1.0".to_owned()),
            methods: Vec::new(),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the service's own version (`version()` answers `{"code": code, "name": name}`).
    #[must_use]
    pub fn version(mut self, code: i64, name: impl Into<String>) -> Service {
        self.version = (code, name.into());
        self
    }

    /// Sets the product name `describeService` reports (default: the service name).
    #[must_use]
    pub fn product(mut self, product: impl Into<String>) -> Service {
        self.description.product = product.into();
        self
    }

    /// Adds an author to what `describeService` reports.
    #[must_use]
    pub fn author(mut self, author: impl Into<String>) -> Service {
        self.description.authors.push(author.into());
        self
    }

    /// Sets the description `describeService` reports.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Service {
        self.description.description = description.into();
        self
    }

    /// Adds a method whose handler takes its arguments (any [`FromArgs`]).
    ///
    /// # Panics
    ///
    /// When the service already has a method of that name (compared
    /// case-insensitively) or the name is one of the built-in ones: a
    /// service's method table is fixed by the program, not by input.
    #[must_use]
    pub fn method<A, F, Fut, T>(
        self,
        name: impl Into<String>,
        doc: impl Into<String>,
        handler: F,
    ) -> Service
    where
        A: FromArgs,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Condition>> + Send + 'static,
        T: Serialize,
    {
        self.method_with_context(name, doc, move |_: Context, args: A| handler(args))
    }

    /// Adds a method whose handler also gets the call's [`Context`].
    ///
    /// # Panics
    ///
    /// As [`Service::method`].
    #[must_use]
    pub fn method_with_context<A, F, Fut, T>(
        mut self,
        name: impl Into<String>,
        doc: impl Into<String>,
        handler: F,
    ) -> Service
    where
        A: FromArgs,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Condition>> + Send + 'static,
        T: Serialize,
    {
        let name = name.into();
        assert!(
            !BUILTIN_METHODS
                .iter()
                .any(|b| b.eq_ignore_ascii_case(&name)),
            "method name {name:?} is built into every service"
        );
        assert!(
            self.find(&name).is_none(),
            "service {:?} already has a method named {name:?}",
            self.name
        );
        let handler = Arc::new(handler);
        let erased: HandlerFn = Arc::new(
            move |ctx: Context, raw: RawJson| -> BoxFuture<'static, Outcome> {
                let args = match A::from_args(&raw) {
                    Ok(args) => args,
                    Err(e) => {
                        let condition = Condition::new(
                            codes::INVALID_ARGUMENTS,
                            format!("invalid arguments: {e}"),
                        );
                        return Box::pin(std::future::ready(Err(condition)));
                    }
                };
                let future = handler(ctx, args);
                Box::pin(async move {
                    let value = future.await?;
                    RawJson::from_serialize(&value).map_err(|e| {
                        Condition::new(
                            codes::INTERNAL_ERROR,
                            format!("the result cannot be serialized: {e}"),
                        )
                    })
                })
            },
        );
        self.methods.push(Method {
            name,
            doc: doc.into(),
            handler: erased,
        });
        self
    }

    /// The method of that name, compared case-insensitively.
    pub(crate) fn find(&self, name: &str) -> Option<&Method> {
        self.methods
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }

    /// Every method name the service answers, built-in ones last.
    pub(crate) fn method_names(&self) -> Vec<&str> {
        self.methods
            .iter()
            .map(|m| m.name.as_str())
            .chain(BUILTIN_METHODS)
            .collect()
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("methods", &self.method_names())
            .finish()
    }
}
