//! The [`Registry`] of hosted services, the mandatory `System` service, and
//! the dispatch of a request's calls to their handlers.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::join_all;
use serde::Serialize;
use serde_json::json;

use crate::condition::{Condition, codes};
use crate::dispatch::{BoxError, CallRequest, Dispatch, Stack, Target};
use crate::json::RawJson;
use crate::observe::{CallObserver, CallOutcome, Route};
use crate::service::{BUILTIN_METHODS, Context, Method, Outcome, Peer, Service};
use crate::wire::{self, Call, CallResult, InvalidCall};

/// The name of the service every server hosts.
pub const SYSTEM: &str = "System";

/// What `System.rpcVersion()` answers: MTGNet v1.0.0-draft.1.
pub const RPC_VERSION: RpcVersion = RpcVersion {
    major: 1,
    minor: 0,
    kind: "draft",
    revision: 1,
};

/// The protocol version a server speaks.
///
/// It serializes as the `System.rpcVersion()` answer, `kind` under the
/// name `type`:
///
/// ```
/// use mtgnet_proto::RPC_VERSION;
///
/// assert_eq!(
///     serde_json::to_string(&RPC_VERSION).unwrap(),
///     r#"{"major":1,"minor":0,"type":"draft","revision":1}"#,
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RpcVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Release type (`"draft"`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Revision of the draft.
    pub revision: u32,
}

/// What `describeMethod` answers; the typespecs are always null (the draft
/// defines no typespec language), written explicitly as the spec shows them.
#[derive(Serialize)]
struct MethodDescription {
    #[serde(rename = "Doc")]
    doc: String,
    #[serde(rename = "returnTypespec")]
    return_typespec: Option<()>,
    #[serde(rename = "argTypespec")]
    arg_typespec: Option<()>,
    #[serde(rename = "conditionCodes")]
    condition_codes: Option<()>,
}

const SYSTEM_METHODS: [&str; 3] = ["services", "describeService", "rpcVersion"];

/// Why a service cannot be added to a registry.
///
/// ```
/// use mtgnet_proto::{Registry, RegistryError, Service};
///
/// let mut registry = Registry::new();
/// registry.add(Service::new("Test")).unwrap();
/// // Names compare case-insensitively, and `System` is always taken.
/// assert_eq!(
///     registry.add(Service::new("TEST")),
///     Err(RegistryError::DuplicateService("TEST".to_owned())),
/// );
/// assert!(registry.add(Service::new("system")).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A service of that name (compared case-insensitively) is already hosted.
    #[error("a service named {0:?} is already registered")]
    DuplicateService(String),
}

/// The services a server hosts, `System` always among them.
///
/// ```
/// use std::sync::Arc;
/// use mtgnet_proto::{wire, Peer, Registry, Service};
///
/// let registry = Registry::new().with(
///     Service::new("Test").method("echo", "Returns its argument.", |(x,): (serde_json::Value,)| async move { Ok(x) }),
/// );
/// let calls = wire::parse_request(br#"[{"service":"test","method":"ECHO","args":[7],"id":1},
///                                      {"service":"System","method":"services","args":[],"id":2}]"#).unwrap();
/// let response = futures::executor::block_on(registry.respond(calls, Arc::new(Peer::default())));
/// assert_eq!(response.unwrap(), br#"[{"id":1,"data":7},{"id":2,"data":["System","Test"]}]"#);
/// ```
#[derive(Clone)]
pub struct Registry {
    system: Service,
    services: Vec<Service>,
    /// The layers around every call, when any are installed.
    layers: Option<Stack>,
    /// The first [`Route`] of each service, `System` first: a service's
    /// methods, then the methods it answers by itself.
    route_bases: Vec<usize>,
}

/// What a call's service and method names resolve to.
enum Resolved<'a> {
    /// A registered handler.
    Handler(&'a Method, Route),
    /// A method the service answers by itself.
    Builtin(&'a Service, &'static str, Route),
    /// No hosted service has that name.
    UnknownService,
    /// The service has no method of that name.
    UnknownMethod(&'a Service),
}

impl Resolved<'_> {
    fn route(&self) -> Option<Route> {
        match self {
            Resolved::Handler(_, route) | Resolved::Builtin(_, _, route) => Some(*route),
            Resolved::UnknownService | Resolved::UnknownMethod(_) => None,
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("system", &self.system)
            .field("services", &self.services)
            .field("layered", &self.layers.is_some())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    /// A registry hosting only `System`.
    pub fn new() -> Registry {
        Registry {
            system: Service::new(SYSTEM)
                .product("mtgnet")
                .author("the mtgnet developers")
                .version(1, env!("CARGO_PKG_VERSION"))
                .description("Introspection: the services hosted here, their methods, and the protocol version."),
            services: Vec::new(),
            layers: None,
            route_bases: vec![0],
        }
    }

    /// Adds a service.
    ///
    /// # Errors
    ///
    /// When a service of the same name (case-insensitively, `System` included) is already hosted.
    pub fn add(&mut self, service: impl Into<Service>) -> Result<(), RegistryError> {
        let service = service.into();
        if self.service(&service.name).is_some() {
            return Err(RegistryError::DuplicateService(service.name));
        }
        let last = self.route_bases.last().copied().unwrap_or(0);
        let last_service = self.services.last().unwrap_or(&self.system);
        self.route_bases
            .push(last + self.builtin_names(last_service).count() + last_service.methods.len());
        self.services.push(service);
        Ok(())
    }

    /// Adds a service, builder style.
    ///
    /// # Panics
    ///
    /// When [`Registry::add`] fails: the set of services is fixed by the program.
    #[must_use]
    pub fn with(mut self, service: impl Into<Service>) -> Registry {
        if let Err(e) = self.add(service) {
            panic!("{e}");
        }
        self
    }

    /// Wraps every call (built-in ones and those to unknown methods
    /// included) in a `tower` layer.
    ///
    /// The layer wraps [`Dispatch`], which runs the handler; its service
    /// gets a [`CallRequest`] (names, id, raw arguments, [`Context`]) and
    /// answers with the result data or an error. An error that is a
    /// [`Condition`] becomes the call's error result as it is; any other
    /// (a `tower::timeout` `Elapsed`, say) becomes `internal-error` with the
    /// error's text. Layers added later wrap those added before: the last
    /// one sees each call first. The connection is never affected.
    ///
    /// Without layers, a call runs its handler directly: no request value,
    /// no clone, no extra allocation.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use mtgnet_proto::dispatch::CallRequest;
    /// use mtgnet_proto::{wire, Peer, Registry};
    ///
    /// // `tower::service_fn`-style: count every call, then hand it on.
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let counter = {
    ///     let seen = Arc::clone(&seen);
    ///     tower_layer::layer_fn(move |inner| Counted { inner, seen: Arc::clone(&seen) })
    /// };
    /// # #[derive(Clone)]
    /// # struct Counted<S> { inner: S, seen: Arc<AtomicUsize> }
    /// # impl<S: tower_service::Service<CallRequest>> tower_service::Service<CallRequest> for Counted<S> {
    /// #     type Response = S::Response;
    /// #     type Error = S::Error;
    /// #     type Future = S::Future;
    /// #     fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> { self.inner.poll_ready(cx) }
    /// #     fn call(&mut self, request: CallRequest) -> S::Future {
    /// #         self.seen.fetch_add(1, Ordering::Relaxed);
    /// #         self.inner.call(request)
    /// #     }
    /// # }
    /// let registry = Registry::new().layer(counter);
    /// let calls = wire::parse_request(br#"[{"service":"System","method":"rpcVersion","id":1},
    ///     {"service":"Nope","method":"x","id":2}]"#).unwrap();
    /// futures::executor::block_on(registry.respond(calls, Arc::new(Peer::default())));
    /// assert_eq!(seen.load(Ordering::Relaxed), 2);
    /// ```
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Registry
    where
        L: tower_layer::Layer<Dispatch>,
        L::Service:
            tower_service::Service<CallRequest, Response = RawJson> + Clone + Send + Sync + 'static,
        <L::Service as tower_service::Service<CallRequest>>::Error: Into<BoxError>,
        <L::Service as tower_service::Service<CallRequest>>::Future: Send + 'static,
    {
        let inner = Dispatch::new(self.layers.take());
        self.layers = Some(Stack::new(layer.layer(inner)));
        self
    }

    /// The hosted service of that name, compared case-insensitively.
    pub fn service(&self, name: &str) -> Option<&Service> {
        std::iter::once(&self.system)
            .chain(&self.services)
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// Names of every hosted service, `System` first.
    pub fn service_names(&self) -> Vec<&str> {
        self.all_services().map(|s| s.name.as_str()).collect()
    }

    /// Every method this registry answers, as `(service, method)` names,
    /// the built-in ones included: a [`Route`] is a position in this list.
    /// Its length bounds the routes a peer can make an
    /// [observer](crate::observe) see, whatever names it sends.
    ///
    /// ```
    /// use mtgnet_proto::{Registry, Service};
    ///
    /// let registry = Registry::new().with(Service::new("Test").method("add", "", |(a, b): (i64, i64)| async move { Ok(a + b) }));
    /// let routes = registry.routes();
    /// assert!(routes.contains(&("System", "rpcVersion")));
    /// assert!(routes.contains(&("Test", "add")) && routes.contains(&("Test", "version")));
    /// assert_eq!(routes.len(), 6 + 1 + 3);
    /// ```
    pub fn routes(&self) -> Vec<(&str, &str)> {
        self.all_services()
            .flat_map(|svc| {
                let builtins = self.builtin_names(svc).map(|name| -> &str { name });
                svc.methods
                    .iter()
                    .map(|m| m.name.as_str())
                    .chain(builtins)
                    .map(move |method| (svc.name.as_str(), method))
            })
            .collect()
    }

    fn all_services(&self) -> impl Iterator<Item = &Service> {
        std::iter::once(&self.system).chain(&self.services)
    }

    /// The methods `svc` answers by itself: every service's, and `System`'s own.
    fn builtin_names(&self, svc: &Service) -> impl Iterator<Item = &'static str> + use<> {
        let is_system = std::ptr::eq(svc, &self.system);
        BUILTIN_METHODS
            .into_iter()
            .chain(if is_system { SYSTEM_METHODS } else { [""; 3] })
            .filter(|name| !name.is_empty())
    }

    /// Finds what a call to `service.method` runs.
    fn resolve(&self, service: &str, method: &str) -> Resolved<'_> {
        let Some((index, svc)) = self
            .all_services()
            .enumerate()
            .find(|(_, s)| s.name.eq_ignore_ascii_case(service))
        else {
            return Resolved::UnknownService;
        };
        let base = self.route_bases.get(index).copied().unwrap_or(0);
        if let Some(position) = svc
            .methods
            .iter()
            .position(|m| m.name.eq_ignore_ascii_case(method))
        {
            return Resolved::Handler(&svc.methods[position], Route(base + position));
        }
        match self
            .builtin_names(svc)
            .enumerate()
            .find(|(_, b)| b.eq_ignore_ascii_case(method))
        {
            Some((position, name)) => {
                Resolved::Builtin(svc, name, Route(base + svc.methods.len() + position))
            }
            None => Resolved::UnknownMethod(svc),
        }
    }

    /// Runs the calls of one request and writes its response.
    ///
    /// Calls run concurrently; invalid calls get an `invalid-call` error
    /// result; notifications run but get no result. The future yields the
    /// response payload, or `None` when the request held no call that needs
    /// an answer. A handler that panics yields an `internal-error` result.
    pub fn respond(
        &self,
        calls: Vec<Result<Call, InvalidCall>>,
        peer: Arc<Peer>,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send + 'static + use<> {
        self.respond_observed(calls, peer, None)
    }

    /// [`Registry::respond`], telling `observer` of every call.
    pub(crate) fn respond_observed(
        &self,
        calls: Vec<Result<Call, InvalidCall>>,
        peer: Arc<Peer>,
        observer: Option<&Arc<dyn CallObserver>>,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send + 'static + use<> {
        let runs: Vec<_> = calls
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(call) => Some(
                    self.dispatch_observed(call, Arc::clone(&peer), observer)
                        .left_future(),
                ),
                Err(invalid) if observer.is_some() => {
                    if let Some(observer) = observer {
                        let started = observer.call_started(None);
                        observer.call_finished(None, started, CallOutcome::Invalid);
                    }
                    invalid_result(invalid).map(FutureExt::right_future)
                }
                Err(invalid) => invalid_result(invalid).map(FutureExt::right_future),
            })
            .collect();
        async move {
            let results: Vec<CallResult> = join_all(runs).await.into_iter().flatten().collect();
            wire::response_payload(&results)
        }
    }

    /// Runs one call; the future yields its result (`None` for a notification).
    pub fn dispatch(
        &self,
        call: Call,
        peer: Arc<Peer>,
    ) -> impl Future<Output = Option<CallResult>> + Send + 'static + use<> {
        self.dispatch_observed(call, peer, None)
    }

    fn dispatch_observed(
        &self,
        call: Call,
        peer: Arc<Peer>,
        observer: Option<&Arc<dyn CallObserver>>,
    ) -> impl Future<Output = Option<CallResult>> + Send + 'static + use<> {
        let Call {
            service,
            method,
            id,
            args,
        } = call;
        let ctx = Context::new(peer);
        let resolved = self.resolve(&service, &method);
        let route = resolved.route();
        let run = match &self.layers {
            None => self.route(resolved, &service, &method, ctx.clone(), args),
            Some(layers) => {
                let target = self.target(resolved, &service, &method, &args);
                layers.run(CallRequest {
                    service: service.clone(),
                    method: method.clone(),
                    id: id.clone(),
                    args,
                    context: ctx.clone(),
                    target,
                })
            }
        };
        let observer = observer.map(Arc::clone);
        async move {
            let started = observer.as_ref().map(|o| o.call_started(route));
            let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!(%service, %method, "a handler panicked");
                    Err(Condition::new(
                        codes::INTERNAL_ERROR,
                        "the method failed unexpectedly",
                    ))
                }
            };
            if let (Some(observer), Some(started)) = (observer, started) {
                observer.call_finished(route, started, CallOutcome::of(&outcome));
            }
            let id = id?;
            Some(CallResult {
                id,
                outcome,
                warnings: ctx.take_warnings(),
            })
        }
    }

    /// Runs what a call resolved to: its handler, or the registry's answer.
    fn route(
        &self,
        resolved: Resolved<'_>,
        service: &str,
        method: &str,
        ctx: Context,
        args: RawJson,
    ) -> futures::future::BoxFuture<'static, Outcome> {
        let ready = |outcome: Outcome| std::future::ready(outcome).boxed();
        match resolved {
            Resolved::Handler(m, _) => {
                // Called inside the future so that a handler panicking before
                // it returns its future is caught like one panicking inside it.
                let handler = Arc::clone(&m.handler);
                async move { handler(ctx, args).await }.boxed()
            }
            Resolved::Builtin(svc, name, _) => ready(self.builtin(svc, name, &args)),
            Resolved::UnknownService => ready(Err(unknown_service(service))),
            Resolved::UnknownMethod(svc) => ready(Err(unknown_method(svc, method))),
        }
    }

    /// What a call resolved to, for the layers: its handler, or its answer
    /// when the registry answers it by itself.
    fn target(
        &self,
        resolved: Resolved<'_>,
        service: &str,
        method: &str,
        args: &RawJson,
    ) -> Target {
        match resolved {
            Resolved::Handler(m, _) => Target::Handler(Arc::clone(&m.handler)),
            Resolved::Builtin(svc, name, _) => Target::Ready(self.builtin(svc, name, args)),
            Resolved::UnknownService => Target::Ready(Err(unknown_service(service))),
            Resolved::UnknownMethod(svc) => Target::Ready(Err(unknown_method(svc, method))),
        }
    }

    /// Answers the methods every service (and `System`) provides by itself.
    fn builtin(&self, svc: &Service, name: &str, args: &RawJson) -> Outcome {
        let arg = |expected: usize| -> Result<Vec<String>, Condition> {
            let values: Vec<String> = args.deserialize().map_err(|e| {
                Condition::new(codes::INVALID_ARGUMENTS, format!("invalid arguments: {e}"))
            })?;
            if values.len() != expected {
                return Err(Condition::new(
                    codes::INVALID_ARGUMENTS,
                    format!("{name} takes {expected} argument(s), got {}", values.len()),
                ));
            }
            Ok(values)
        };
        let value = match name {
            "services" => {
                arg(0)?;
                json!(self.service_names())
            }
            "describeService" => {
                let wanted = &arg(1)?[0];
                let target = self.service(wanted).ok_or_else(|| {
                    Condition::new(
                        codes::UNKNOWN_SERVICE,
                        format!("no service named {wanted:?}"),
                    )
                })?;
                json!(target.description)
            }
            "rpcVersion" => {
                arg(0)?;
                // Serialized from the struct, in the field order the deployed peers write.
                return RawJson::from_serialize(&RPC_VERSION)
                    .map_err(|e| Condition::new(codes::INTERNAL_ERROR, e.to_string()));
            }
            "methods" => {
                arg(0)?;
                let mut names = svc.method_names();
                if std::ptr::eq(svc, &self.system) {
                    names.extend(SYSTEM_METHODS);
                }
                json!(names)
            }
            "describeMethod" => {
                let wanted = &arg(1)?[0];
                let doc = match svc.find(wanted) {
                    Some(m) => m.doc.clone(),
                    None => {
                        builtin_doc(wanted, std::ptr::eq(svc, &self.system)).ok_or_else(|| {
                            Condition::new(
                                codes::UNKNOWN_METHOD,
                                format!("service {:?} has no method named {wanted:?}", svc.name),
                            )
                        })?
                    }
                };
                let description = MethodDescription {
                    doc,
                    return_typespec: None,
                    arg_typespec: None,
                    condition_codes: None,
                };
                return RawJson::from_serialize(&description)
                    .map_err(|e| Condition::new(codes::INTERNAL_ERROR, e.to_string()));
            }
            "version" => {
                arg(0)?;
                json!({"code": svc.version.0, "name": svc.version.1})
            }
            _ => unreachable!("route only passes built-in names"),
        };
        RawJson::from_serialize(&value)
            .map_err(|e| Condition::new(codes::INTERNAL_ERROR, e.to_string()))
    }
}

/// The result of an invalid call: an `invalid-call` error, or nothing
/// for an invalid notification.
fn invalid_result(invalid: InvalidCall) -> Option<std::future::Ready<Option<CallResult>>> {
    let InvalidCall { id, reason } = invalid;
    let result = CallResult {
        id: id?,
        outcome: Err(Condition::new(codes::INVALID_CALL, reason)),
        warnings: Vec::new(),
    };
    Some(std::future::ready(Some(result)))
}

fn unknown_service(service: &str) -> Condition {
    Condition::new(
        codes::UNKNOWN_SERVICE,
        format!("no service named {service:?}"),
    )
}

fn unknown_method(svc: &Service, method: &str) -> Condition {
    Condition::new(
        codes::UNKNOWN_METHOD,
        format!("service {:?} has no method named {method:?}", svc.name),
    )
}

/// The doc string of a built-in method, if `name` is one.
fn builtin_doc(name: &str, system: bool) -> Option<String> {
    let docs = [
        ("methods", "Returns the names of this service's methods."),
        (
            "describeMethod",
            "Describes the named method of this service.",
        ),
        (
            "version",
            "Returns this service's version: {\"code\": integer, \"name\": string}.",
        ),
    ];
    let system_docs = [
        (
            "services",
            "Returns the names of the services hosted by this server.",
        ),
        (
            "describeService",
            "Describes the named service: {\"product\", \"authors\", \"description\"}.",
        ),
        (
            "rpcVersion",
            "Returns the MTGNet protocol version this server speaks.",
        ),
    ];
    docs.iter()
        .chain(if system { &system_docs[..] } else { &[] })
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, d)| (*d).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(registry: &Registry, request: &str) -> Vec<CallResult> {
        let calls = wire::parse_request(request.as_bytes()).expect("valid request");
        let response =
            futures::executor::block_on(registry.respond(calls, Arc::new(Peer::default())));
        wire::parse_response(&response.expect("a response")).expect("valid response")
    }

    fn panicky() -> Registry {
        Registry::new().with(
            Service::new("P")
                .method("inside", "", |(): ()| async move {
                    if true {
                        panic!("inside the future");
                    }
                    Ok(())
                })
                .method(
                    "before",
                    "",
                    |(): ()| -> std::future::Ready<Result<(), Condition>> {
                        panic!("before returning a future")
                    },
                ),
        )
    }

    #[test]
    fn panicking_handlers_yield_internal_errors_and_siblings_still_answer() {
        let results = run(
            &panicky(),
            r#"[{"service":"P","method":"inside","id":1},{"service":"P","method":"before","id":2},
                {"service":"System","method":"rpcVersion","id":3}]"#,
        );
        assert_eq!(
            results[0].outcome.as_ref().expect_err("panicked").code,
            codes::INTERNAL_ERROR
        );
        assert_eq!(
            results[1].outcome.as_ref().expect_err("panicked").code,
            codes::INTERNAL_ERROR
        );
        assert!(results[2].outcome.is_ok());
    }

    /// A layer that refuses calls whose method is `secret`, passes the rest on.
    #[derive(Clone)]
    struct NoSecrets<S>(S);

    impl<S> tower_service::Service<CallRequest> for NoSecrets<S>
    where
        S: tower_service::Service<CallRequest, Response = RawJson, Error = Condition>,
        S::Future: Send + 'static,
    {
        type Response = RawJson;
        type Error = Condition;
        type Future = futures::future::BoxFuture<'static, Outcome>;

        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Condition>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, request: CallRequest) -> Self::Future {
            if request.method().eq_ignore_ascii_case("secret") {
                return std::future::ready(Err(Condition::new("no", "secret"))).boxed();
            }
            self.0.call(request).boxed()
        }
    }

    #[test]
    fn layered_calls_reach_handlers_and_builtins_and_panics_are_still_caught() {
        let registry = panicky()
            .with(Service::new("S").method("secret", "", |(): ()| async move { Ok(1) }))
            .layer(tower_layer::layer_fn(NoSecrets))
            .layer(tower_layer::layer_fn(NoSecrets));
        let results = run(
            &registry,
            r#"[{"service":"P","method":"inside","id":1},{"service":"P","method":"before","id":2},
                {"service":"System","method":"rpcVersion","id":3},{"service":"s","method":"SECRET","id":4},
                {"service":"Nope","method":"x","id":5},{"service":"P","method":"version","id":6}]"#,
        );
        let codes: Vec<String> = results
            .iter()
            .map(|r| match &r.outcome {
                Ok(data) => data.as_str().to_owned(),
                Err(c) => c.code_text(),
            })
            .collect();
        assert_eq!(
            codes,
            [
                codes::INTERNAL_ERROR,
                codes::INTERNAL_ERROR,
                r#"{"major":1,"minor":0,"type":"draft","revision":1}"#,
                "no",
                codes::UNKNOWN_SERVICE,
                r#"{"code":1,"name":"1.0"}"#,
            ]
        );
    }

    #[test]
    fn every_route_resolves_to_its_own_position_and_unknown_names_to_none() {
        let registry = Registry::new()
            .with(
                Service::new("A")
                    .method("one", "", |(): ()| async move { Ok(1) })
                    .method("two", "", |(): ()| async move { Ok(2) }),
            )
            .with(Service::new("B").method("three", "", |(): ()| async move { Ok(3) }));
        let routes = registry.routes();
        assert_eq!(routes.len(), 6 + (2 + 3) + (1 + 3));
        for (index, (service, method)) in routes.iter().enumerate() {
            let shouted = (service.to_uppercase(), method.to_uppercase());
            assert_eq!(
                registry.resolve(&shouted.0, &shouted.1).route(),
                Some(Route(index)),
                "{service}.{method}"
            );
        }
        assert_eq!(registry.resolve("A", "three").route(), None);
        assert_eq!(registry.resolve("C", "one").route(), None);
        assert_eq!(registry.resolve("System", "one").route(), None);
    }

    #[test]
    fn duplicate_service_names_are_refused_case_insensitively() {
        let mut registry = Registry::new();
        registry.add(Service::new("Test")).expect("first");
        assert!(registry.add(Service::new("TEST")).is_err());
        assert!(registry.add(Service::new("system")).is_err());
    }

    #[test]
    #[should_panic(expected = "built into every service")]
    fn builtin_method_names_cannot_be_registered() {
        let _ = Service::new("S").method("Version", "", |(): ()| async move { Ok(()) });
    }

    #[test]
    fn builtins_check_their_arguments() {
        let results = run(
            &Registry::new(),
            r#"[{"service":"System","method":"services","args":[1],"id":1},
                {"service":"System","method":"describeService","args":[],"id":2},
                {"service":"System","method":"describeService","args":["system"],"id":3}]"#,
        );
        assert_eq!(
            results[0].outcome.as_ref().expect_err("too many").code,
            codes::INVALID_ARGUMENTS
        );
        assert_eq!(
            results[1].outcome.as_ref().expect_err("too few").code,
            codes::INVALID_ARGUMENTS
        );
        let described: serde_json::Value = results[2]
            .outcome
            .as_ref()
            .expect("described")
            .deserialize()
            .expect("json");
        assert_eq!(described["product"], "mtgnet");
    }

    #[test]
    fn per_service_builtins_do_not_offer_system_methods() {
        let registry = Registry::new().with(Service::new("S"));
        let results = run(
            &registry,
            r#"[{"service":"S","method":"rpcVersion","id":1}]"#,
        );
        assert_eq!(
            results[0].outcome.as_ref().expect_err("not on S").code,
            codes::UNKNOWN_METHOD
        );
    }
}
