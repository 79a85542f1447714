//! Request/response parsing and writing, and the client core's matching.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mtgnet_proto::client::{Batch, ClientCore};
use mtgnet_proto::wire::{self, CallResult};
use mtgnet_proto::{Id, Peer, RawJson, Registry, Service};

fn request(calls: usize, payload: usize) -> Vec<u8> {
    let text = "x".repeat(payload);
    let mut batch = Batch::new();
    for _ in 0..calls {
        batch.call(
            "Test",
            "echo",
            RawJson::from_serialize(&(&text,)).expect("json"),
        );
    }
    let mut out = Vec::new();
    ClientCore::new()
        .encode_request(&batch, &mut out, ())
        .expect("encodes");
    out
}

fn response(calls: usize, payload: usize) -> Vec<u8> {
    let data = RawJson::from_serialize(&"x".repeat(payload)).expect("json");
    let results: Vec<CallResult> = (0..calls)
        .map(|i| CallResult {
            id: Id::from(i as i64 + 1),
            outcome: Ok(data.clone()),
            warnings: Vec::new(),
        })
        .collect();
    let mut out = Vec::new();
    wire::write_response(&results, &mut out).expect("writes");
    out
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for calls in [1usize, 64] {
        let req = request(calls, 100);
        group.throughput(Throughput::Elements(calls as u64));
        group.bench_with_input(BenchmarkId::new("request", calls), &req, |b, req| {
            b.iter(|| wire::parse_request(black_box(req)).expect("valid"))
        });
        let resp = response(calls, 100);
        group.bench_with_input(BenchmarkId::new("response", calls), &resp, |b, resp| {
            b.iter(|| wire::parse_response(black_box(resp)).expect("valid"))
        });
    }
    group.finish();
}

fn write(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(1));
    let args = RawJson::from_serialize(&("x".repeat(100),)).expect("json");
    group.bench_function("request", |b| {
        let mut core = ClientCore::new();
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            let mut batch = Batch::new();
            batch.call("Test", "echo", args.clone());
            out.clear();
            let key = core.encode_request(&batch, &mut out, ()).expect("encodes");
            core.abandon(key.expect("a call"));
            black_box(&out);
        })
    });
    let results = wire::parse_response(&response(1, 100)).expect("valid");
    group.bench_function("response", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            wire::write_response(black_box(&results), &mut out).expect("writes");
        })
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let registry = Registry::new().with(Service::new("Test").method(
        "echo",
        "",
        |(x,): (RawJson,)| async move { Ok(x) },
    ));
    let peer = Arc::new(Peer::default());
    let args = RawJson::from_serialize(&("x".repeat(100),)).expect("json");
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(1));
    group.bench_function("client_server_call_in_memory", |b| {
        let mut core = ClientCore::new();
        let mut request = Vec::with_capacity(256);
        b.iter(|| {
            let mut batch = Batch::new();
            batch.call("Test", "echo", args.clone());
            request.clear();
            core.encode_request(&batch, &mut request, ())
                .expect("encodes");
            let calls = wire::parse_request(&request).expect("valid");
            let response = futures::executor::block_on(registry.respond(calls, Arc::clone(&peer)))
                .expect("answered");
            core.handle_response(&response).expect("matches");
            black_box(core.poll_completion().expect("complete"));
        })
    });
    group.finish();
}

criterion_group!(benches, parse, write, round_trip);
criterion_main!(benches);
