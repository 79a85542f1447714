//! Throughput of netstring+ encoding and decoding.

#![allow(missing_docs)]

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use mtgnet_proto::framing::{FrameDecoder, encode_frame, frame_len};

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing/encode");
    for (len, name) in SIZES {
        let payload = payload(len);
        group.throughput(Throughput::Bytes(frame_len(len) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &payload, |b, payload| {
            let mut dst = BytesMut::with_capacity(frame_len(payload.len()));
            b.iter(|| {
                dst.clear();
                encode_frame(black_box(payload), &mut dst);
                black_box(dst.len())
            });
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing/decode");
    for (len, name) in SIZES {
        let mut frame = BytesMut::new();
        encode_frame(&payload(len), &mut frame);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &frame, |b, frame| {
            let mut decoder = FrameDecoder::default();
            let mut buf = BytesMut::with_capacity(frame.len());
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                let payload = decoder
                    .decode(&mut buf)
                    .expect("valid frame")
                    .expect("complete frame");
                black_box(payload.len())
            });
        });
    }
    group.finish();
}

/// Many small frames arriving in one read, as a busy connection sees them.
fn decode_many_small(c: &mut Criterion) {
    const FRAMES: usize = 1000;
    let mut group = c.benchmark_group("framing/decode_many_small");
    for len in [0, 16, 64] {
        let payload = payload(len);
        let mut stream = BytesMut::new();
        for _ in 0..FRAMES {
            encode_frame(&payload, &mut stream);
        }
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("1000 frames of", format!("{len}B")),
            &stream,
            |b, stream| {
                let mut decoder = FrameDecoder::default();
                let mut buf = BytesMut::with_capacity(stream.len());
                b.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(stream);
                    let mut count = 0;
                    while let Some(payload) = decoder.decode(&mut buf).expect("valid stream") {
                        black_box(payload);
                        count += 1;
                    }
                    assert_eq!(count, FRAMES);
                });
            },
        );
    }
    group.finish();
}

/// The same stream delivered in 1-byte and 7-byte reads: the cost of
/// resuming the header and payload state.
fn decode_fragmented(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing/decode_fragmented");
    let mut frame = BytesMut::new();
    encode_frame(&payload(1024), &mut frame);
    group.throughput(Throughput::Bytes(frame.len() as u64));
    for read in [1usize, 7, 512] {
        group.bench_with_input(
            BenchmarkId::new("1KiB frame, read size", read),
            &frame,
            |b, frame| {
                let mut decoder = FrameDecoder::default();
                let mut buf = BytesMut::with_capacity(frame.len());
                b.iter(|| {
                    buf.clear();
                    let mut decoded = None;
                    for chunk in frame.chunks(read) {
                        buf.extend_from_slice(chunk);
                        if let Some(payload) = decoder.decode(&mut buf).expect("valid frame") {
                            decoded = Some(payload);
                        }
                    }
                    black_box(decoded.expect("complete frame").len())
                });
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    encode,
    decode,
    decode_many_small,
    decode_fragmented
);
criterion_main!(benches);
