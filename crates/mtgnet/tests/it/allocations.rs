//! What a call costs in allocations, counted on the calling thread: the
//! macro-generated `Test.echo` against the same method built from a
//! closure, and what a layer adds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use mtgnet::metrics::CallMetrics;
use mtgnet::proto::server::ServerCore;
use mtgnet::{Peer, RawJson, Registry, Service, demo, proto::wire};

/// The system allocator, counting allocations per thread.
pub(crate) struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; the counter is a
// thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made on this thread by one `Test.echo` request through `registry`.
fn allocations_per_echo(registry: &Registry) -> u64 {
    let request = br#"[{"service":"Test","method":"echo","args":["0123456789"],"id":1}]"#;
    let peer = Arc::new(Peer::default());
    let mut counts = Vec::new();
    for _ in 0..5 {
        let calls = wire::parse_request(request).expect("valid");
        let peer = Arc::clone(&peer);
        let before = ALLOCATIONS.with(Cell::get);
        let response = futures::executor::block_on(registry.respond(calls, peer));
        counts.push(ALLOCATIONS.with(Cell::get) - before);
        assert_eq!(
            response.expect("answered"),
            br#"[{"id":1,"data":"0123456789"}]"#
        );
    }
    counts.into_iter().min().unwrap_or(u64::MAX)
}

#[test]
fn the_macro_built_echo_allocates_no_more_than_the_closure_built_one() {
    let closure = Registry::new().with(Service::new("Test").method(
        "echo",
        "echo(x) -> x: returns its argument unchanged.",
        |(x,): (RawJson,)| async move { Ok(x) },
    ));
    let by_closure = allocations_per_echo(&closure);
    let by_macro = allocations_per_echo(&Registry::new().with(demo::test_service()));
    assert!(
        by_macro <= by_closure,
        "macro {by_macro}, closure {by_closure}"
    );

    // A layer costs the two names copied into the request (the boxed
    // future of the stack replaces the one of the direct path).
    let layered = Registry::new()
        .with(demo::test_service())
        .layer(tower::layer::util::Identity::new());
    let by_layered = allocations_per_echo(&layered);
    eprintln!(
        "allocations per echo: closure {by_closure}, macro {by_macro}, one layer {by_layered}"
    );
    assert_eq!(by_layered, by_macro + 2);
}

/// Allocations made on this thread by one `Test.echo` request through `core`.
fn allocations_per_echo_through(core: &ServerCore) -> u64 {
    let request = br#"[{"service":"Test","method":"echo","args":["0123456789"],"id":1}]"#;
    let peer = Arc::new(Peer::default());
    let mut counts = Vec::new();
    for _ in 0..5 {
        let parsed = core.handle_request(request).expect("valid");
        let peer = Arc::clone(&peer);
        let before = ALLOCATIONS.with(Cell::get);
        let response = futures::executor::block_on(parsed.respond(peer));
        counts.push(ALLOCATIONS.with(Cell::get) - before);
        assert_eq!(
            response.expect("answered"),
            br#"[{"id":1,"data":"0123456789"}]"#
        );
    }
    counts.into_iter().min().unwrap_or(u64::MAX)
}

/// A recorder that counts what it is given and never allocates: every
/// series shares one tally.
#[derive(Default)]
struct Tallies {
    counted: Arc<Tally>,
    timed: Arc<Tally>,
}

#[derive(Default)]
struct Tally(std::sync::atomic::AtomicU64);

impl Tally {
    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl metrics::CounterFn for Tally {
    fn increment(&self, value: u64) {
        self.0
            .fetch_add(value, std::sync::atomic::Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, std::sync::atomic::Ordering::Relaxed);
    }
}

impl metrics::HistogramFn for Tally {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl metrics::Recorder for Tallies {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::clone(&self.counted))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::clone(&self.timed))
    }
}

#[test]
fn call_metrics_cost_no_allocation_per_call_with_or_without_a_recorder() {
    let registry = Arc::new(Registry::new().with(demo::test_service()));
    let bare = ServerCore::new(Arc::clone(&registry), 1024);
    let observed =
        ServerCore::new(Arc::clone(&registry), 1024).observe(Arc::new(CallMetrics::new(&registry)));
    let without_metrics = allocations_per_echo_through(&bare);
    let no_recorder = allocations_per_echo_through(&observed);
    let recorder = Tallies::default();
    let recording =
        metrics::with_local_recorder(&recorder, || allocations_per_echo_through(&observed));
    assert_eq!(
        (no_recorder, recording),
        (without_metrics, without_metrics),
        "allocations per call: no metrics, metrics without a recorder, metrics with one"
    );
    // The recorder did hear of every call: counted and timed, five times.
    assert_eq!((recorder.counted.get(), recorder.timed.get()), (5, 5));
}
