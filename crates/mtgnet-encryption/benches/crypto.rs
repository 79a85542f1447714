//! Cost of each layer of the encryption extension: sealed frames next to the
//! raw libsodium calls on the same buffer (the ratio is the framing
//! overhead), the handshake, and identity keys.
//!
//! `raw` seal is what any correct use of `crypto_box` needs per message:
//! `randombytes_buf` for a fresh nonce, then `crypto_box_easy_afternm`.
//! `raw` open is `crypto_box_open_easy_afternm` in place. The session
//! versions write and read `nonce || MAC || ciphertext`.
//!
//! `v2_seal` / `v2_open`: encryption v2 records (netstring+ frames of Noise
//! transport messages, flag byte, chunks of at most 65,518 bytes) next to
//! one raw `crypto_aead_chacha20poly1305_ietf_*` call on the same message
//! in the same run. The target is record sealing at ≥ 0.95× raw at 64 KiB.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mtgnet_encryption::bench::{
    random_nonce, raw_aead_open_in_place, raw_aead_seal, raw_open_in_place, raw_seal, v2_opener,
    v2_sealer,
};
use mtgnet_encryption::v2::{Initiator, NoiseIdentity, Opened, Responder, Sealer};
use mtgnet_encryption::{
    AuthorizedKeys, Handshake, IdentitySecret, NONCE_SIZE, PublicKey, Session,
};

const SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 32] = [0x42; 32];

fn session() -> Session {
    Session::from_key_bytes(&KEY, PublicKey::from_bytes(&[0; 32]))
}

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn batch_size(len: usize) -> BatchSize {
    if len >= 64 * 1024 {
        BatchSize::LargeInput
    } else {
        BatchSize::SmallInput
    }
}

fn seal(c: &mut Criterion) {
    let session = session();
    let mut group = c.benchmark_group("seal");
    for size in SIZES {
        let message = message(size);
        // One buffer for both: the session writes nonce || MAC || ciphertext,
        // the raw call MAC || ciphertext after the nonce's place.
        let mut out = vec![0u8; Session::sealed_len(size)];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("session", size), |b| {
            b.iter(|| session.seal_into(black_box(&message), black_box(&mut out)));
        });
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter(|| {
                let nonce = random_nonce();
                raw_seal(&mut out[NONCE_SIZE..], black_box(&message), &nonce, &KEY);
                black_box(&mut out);
            });
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let session = session();
    let mut group = c.benchmark_group("open");
    for size in SIZES {
        // Both open copies of the same sealed bytes; copying is not timed.
        let sealed = session.seal(&message(size));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("session", size), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| session.open_in_place(black_box(buf)).expect("opens").len(),
                batch_size(size),
            );
        });
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| {
                    let (nonce, boxed) = buf.split_at_mut(NONCE_SIZE);
                    let nonce: &[u8; NONCE_SIZE] = (&*nonce).try_into().expect("24 bytes");
                    assert!(raw_open_in_place(black_box(boxed), nonce, &KEY));
                },
                batch_size(size),
            );
        });
    }
    group.finish();
}

fn v2_seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("v2_seal");
    for size in SIZES {
        let message = message(size);
        let mut sealer = v2_sealer(&KEY);
        let mut out = vec![0u8; Sealer::framed_len(size)];
        let mut raw_out = vec![0u8; size + 16];
        let mut counter = 0u64;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("records", size), |b| {
            b.iter(|| {
                sealer
                    .seal_framed_into(black_box(&message), black_box(&mut out))
                    .expect("counter far from exhausted");
            });
        });
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter(|| {
                raw_aead_seal(black_box(&mut raw_out), black_box(&message), counter, &KEY);
                counter += 1;
            });
        });
    }
    group.finish();
}

fn v2_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("v2_open");
    for size in SIZES {
        let message = message(size);
        // One long-lived opener, as a connection has; the setup seals the
        // next message (untimed) so each record has the expected counter.
        let mut sealer = v2_sealer(&KEY);
        let mut opener = v2_opener(&KEY);
        let mut counter = 0u64;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("records", size), |b| {
            b.iter_batched_ref(
                || frame_payloads(&sealer.seal_framed(&message).expect("seal")),
                |records| {
                    for record in records.iter_mut() {
                        let opened = opener.open_in_place(black_box(record)).expect("opens");
                        black_box(matches!(opened, Opened::Partial));
                    }
                },
                batch_size(size),
            );
        });
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter_batched_ref(
                || {
                    let mut raw = vec![0u8; size + 16];
                    raw_aead_seal(&mut raw, &message, counter, &KEY);
                    counter += 1;
                    (raw, counter - 1)
                },
                |(buf, n)| assert!(raw_aead_open_in_place(black_box(buf), *n, &KEY)),
                batch_size(size),
            );
        });
    }
    group.finish();
}

/// The payloads of consecutive netstring+ frames.
fn frame_payloads(mut frames: &[u8]) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    while let Some(colon) = frames.iter().position(|&b| b == b':') {
        let len = usize::from_str_radix(std::str::from_utf8(&frames[..colon]).expect("hex"), 16)
            .expect("hex");
        payloads.push(frames[colon + 1..colon + 1 + len].to_vec());
        frames = &frames[colon + 2 + len..];
    }
    payloads
}

fn handshake(c: &mut Criterion) {
    let alice = IdentitySecret::generate();
    let bob = IdentitySecret::generate();
    let mut group = c.benchmark_group("handshake");
    group.bench_function("both_ends", |b| {
        b.iter(|| {
            let a = Handshake::new(&alice, AuthorizedKeys::only([bob.public_key()]));
            let b = Handshake::new(&bob, AuthorizedKeys::only([alice.public_key()]));
            let (a_payload, b_payload) = (*a.payload(), *b.payload());
            let a = a.finish(&b_payload).expect("bob is authorized");
            let b = b.finish(&a_payload).expect("alice is authorized");
            (a, b)
        });
    });
    group.bench_function("new", |b| {
        b.iter(|| Handshake::new(&alice, AuthorizedKeys::any()));
    });
    let peer_payload = *Handshake::new(&bob, AuthorizedKeys::any()).payload();
    group.bench_function("finish", |b| {
        b.iter_batched(
            || Handshake::new(&alice, AuthorizedKeys::any()),
            |h| h.finish(&peer_payload).expect("valid payload"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn v2_handshake(c: &mut Criterion) {
    let alice = IdentitySecret::generate();
    let bob = IdentitySecret::generate();
    let (alice_noise, bob_noise) = (NoiseIdentity::new(&alice), NoiseIdentity::new(&bob));
    let mut group = c.benchmark_group("v2_handshake");
    group.bench_function("both_ends", |b| {
        b.iter(|| {
            let initiator = Initiator::new(&alice_noise, AuthorizedKeys::only([bob.public_key()]));
            let responder = Responder::new(
                &bob_noise,
                AuthorizedKeys::only([alice.public_key()]),
                initiator.hello(),
            )
            .expect("hello");
            let (message3, a) = initiator
                .finish(responder.response())
                .expect("bob is pinned");
            let b = responder.finish(&message3).expect("alice is authorized");
            (a, b)
        });
    });
    group.bench_function("noise_identity", |b| b.iter(|| NoiseIdentity::new(&alice)));
    group.finish();
}

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    group.bench_function("generate", |b| b.iter(IdentitySecret::generate));
    let encoded = IdentitySecret::generate().to_base64();
    group.bench_function("from_base64", |b| {
        b.iter(|| IdentitySecret::from_base64(black_box(encoded.expose_secret())).expect("valid"));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = seal, open, v2_seal, v2_open, handshake, v2_handshake, keys
}
criterion_main!(benches);
