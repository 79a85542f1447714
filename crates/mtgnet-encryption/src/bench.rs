//! Baselines for benchmarks; not part of the API.
//!
//! Thin safe wrappers over the raw libsodium calls behind a sealed frame,
//! so a benchmark can put the project's [`Session`] next to libsodium on
//! the same buffer (the ratio is the framing overhead), and
//! [`crypto_throughput`], which does that comparison without criterion for
//! `mtgnet bench --crypto`; and the same for encryption v2's records
//! ([`record_throughput`]) against raw ChaCha20-Poly1305-IETF.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::v2::record::TransportKey;
use crate::v2::{Opened, Opener, Sealer};
use crate::{MAC_SIZE, NONCE_SIZE, PublicKey, Session, sodium};

/// `crypto_box_easy_afternm`: writes MAC (16) || ciphertext of `message` into `out`.
///
/// # Panics
///
/// Panics unless `out.len() == message.len() + 16`.
pub fn raw_seal(out: &mut [u8], message: &[u8], nonce: &[u8; NONCE_SIZE], key: &[u8; 32]) {
    sodium::box_easy_afternm(out, message, nonce, key);
}

/// In-place `crypto_box_open_easy_afternm` of `buf` = MAC (16) || ciphertext;
/// on success the plaintext is `buf[..buf.len() - 16]`.
///
/// Returns `false` if `buf` is shorter than the MAC or does not authenticate.
#[must_use]
pub fn raw_open_in_place(buf: &mut [u8], nonce: &[u8; NONCE_SIZE], key: &[u8; 32]) -> bool {
    sodium::box_open_easy_afternm_in_place(buf, nonce, key)
}

/// A fresh random nonce (`randombytes_buf`), as every seal needs one.
pub fn random_nonce() -> [u8; NONCE_SIZE] {
    let mut nonce = [0u8; NONCE_SIZE];
    sodium::random_bytes(&mut nonce);
    nonce
}

/// Throughput of sealing and opening frames of one plaintext size, through
/// [`Session`] and through the raw libsodium calls, in MB/s (1 MB = 10^6
/// bytes of plaintext).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CryptoThroughput {
    /// Plaintext bytes per frame.
    pub size: usize,
    /// [`Session::seal_into`]: fresh nonce, `nonce || MAC || ciphertext`.
    pub seal_mb_s: f64,
    /// `randombytes_buf` (nonce) + `crypto_box_easy_afternm`.
    pub raw_seal_mb_s: f64,
    /// [`Session::open_in_place`] of `nonce || MAC || ciphertext`.
    pub open_mb_s: f64,
    /// In-place `crypto_box_open_easy_afternm` of the same bytes.
    pub raw_open_mb_s: f64,
}

impl CryptoThroughput {
    /// `seal_mb_s / raw_seal_mb_s`: 1.0 means no framing overhead.
    pub fn seal_ratio(&self) -> f64 {
        self.seal_mb_s / self.raw_seal_mb_s
    }

    /// `open_mb_s / raw_open_mb_s`.
    pub fn open_ratio(&self) -> f64 {
        self.open_mb_s / self.raw_open_mb_s
    }
}

/// Rounds of the four measurements, interleaved; the best round of each counts.
const ROUNDS: u32 = 9;
/// The fixed key of the measurement (ordinary memory for the raw calls,
/// protected memory inside the session).
const KEY: [u8; 32] = [0x42; 32];

/// Measures sealing and opening `size`-byte frames with [`Session`] and with
/// the raw libsodium calls in the same run, taking roughly `budget` in all.
///
/// After a warm-up, the four measurements (session seal, raw seal, session
/// open, raw open) run in `ROUNDS` (9) interleaved rounds, alternating which
/// of each pair goes first, each round long enough (many frames for small
/// sizes) for the clock to be precise; the best round of each is reported,
/// which is the least disturbed by other processes. Opening works on
/// pre-sealed copies refilled between timed batches, so copying is not
/// timed; session and raw open the very same sealed bytes.
///
/// # Panics
///
/// Panics if a frame fails to open (it cannot, barring a libsodium bug).
pub fn crypto_throughput(size: usize, budget: Duration) -> CryptoThroughput {
    let session = Session::with_key_bytes(&KEY, PublicKey::from_bytes(&[0; 32]));
    let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let sealed_len = Session::sealed_len(size);
    let mut out = vec![0u8; sealed_len];
    let template = session.seal(&message);
    // Enough copies to open that one timed batch is well above the clock's
    // resolution even for 64-byte frames (about 1 MiB of payloads).
    let copies = ((1 << 20) / sealed_len).clamp(1, 4096);
    let mut batch: Vec<Vec<u8>> = vec![template.clone(); copies];

    let mut seal_session = |iters: u64| {
        let start = Instant::now();
        for _ in 0..iters {
            session.seal_into(black_box(&message), black_box(&mut out));
        }
        start.elapsed()
    };
    let mut raw_out = vec![0u8; sealed_len];
    let mut seal_raw = |iters: u64| {
        let start = Instant::now();
        for _ in 0..iters {
            let nonce = random_nonce();
            raw_seal(
                &mut raw_out[NONCE_SIZE..],
                black_box(&message),
                &nonce,
                &KEY,
            );
            black_box(&mut raw_out);
        }
        start.elapsed()
    };
    // `iters` frames opened, in batches of `copies`; only the opening is timed.
    let mut open = |iters: u64, raw: bool| {
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = usize::try_from(left).map_or(copies, |l| l.min(copies));
            for buf in &mut batch[..n] {
                buf.copy_from_slice(&template);
            }
            let start = Instant::now();
            for buf in &mut batch[..n] {
                let ok = if raw {
                    let (nonce, boxed) = buf.split_at_mut(NONCE_SIZE);
                    let nonce: &[u8; NONCE_SIZE] = (&*nonce).try_into().expect("24 bytes");
                    raw_open_in_place(black_box(boxed), nonce, &KEY)
                } else {
                    session.open_in_place(black_box(buf)).is_ok()
                };
                assert!(ok, "a sealed frame failed to open");
            }
            elapsed += start.elapsed();
            left -= n as u64;
        }
        elapsed
    };

    let (best, iters) = interleaved(budget, &mut |which, n| match which {
        0 => seal_session(n),
        1 => seal_raw(n),
        2 => open(n, false),
        _ => open(n, true),
    });
    let mb_s = |took: Duration| size as f64 * iters as f64 / took.as_secs_f64().max(1e-9) / 1e6;
    debug_assert_eq!(template.len(), NONCE_SIZE + MAC_SIZE + size);
    CryptoThroughput {
        size,
        seal_mb_s: mb_s(best[0]),
        raw_seal_mb_s: mb_s(best[1]),
        open_mb_s: mb_s(best[2]),
        raw_open_mb_s: mb_s(best[3]),
    }
}

/// A v2 [`Sealer`] with a fixed key, for benchmarks.
pub fn v2_sealer(key: &[u8; 32]) -> Sealer {
    Sealer::new(TransportKey::take(&mut { *key }))
}

/// A v2 [`Opener`] with a fixed key, for benchmarks.
pub fn v2_opener(key: &[u8; 32]) -> Opener {
    Opener::new(TransportKey::take(&mut { *key }))
}

/// `crypto_aead_chacha20poly1305_ietf_encrypt` of `message` into `out`
/// (ciphertext || tag, exactly 16 bytes longer) with Noise's nonce for
/// `counter` and empty associated data: what sealing one record needs at
/// the least.
///
/// # Panics
///
/// Panics unless `out.len() == message.len() + 16`.
pub fn raw_aead_seal(out: &mut [u8], message: &[u8], counter: u64, key: &[u8; 32]) {
    sodium::aead_encrypt(out, message, &[], &sodium::noise_nonce(counter), key);
}

/// In-place `crypto_aead_chacha20poly1305_ietf_decrypt_detached` of `buf` =
/// ciphertext || tag (16) with Noise's nonce for `counter`; on success the
/// plaintext is `buf[..buf.len() - 16]`.
///
/// Returns `false` if `buf` is shorter than the tag or does not authenticate.
#[must_use]
pub fn raw_aead_open_in_place(buf: &mut [u8], counter: u64, key: &[u8; 32]) -> bool {
    let Some(len) = buf.len().checked_sub(16) else {
        return false;
    };
    let (data, tag) = buf.split_at_mut(len);
    let Ok(tag) = <&[u8; 16]>::try_from(&*tag) else {
        return false;
    };
    sodium::aead_open_in_place(data, tag, &sodium::noise_nonce(counter), key)
}

/// Throughput of sealing and opening `size`-byte messages as v2 records
/// (netstring+ frames included) and of the raw ChaCha20-Poly1305-IETF
/// calls on the same plaintext, in MB/s (1 MB = 10^6 bytes of message).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordThroughput {
    /// Message bytes.
    pub size: usize,
    /// [`Sealer::seal_framed_into`] into a reused buffer.
    pub seal_mb_s: f64,
    /// `crypto_aead_chacha20poly1305_ietf_encrypt` of the whole message
    /// into a reused buffer, one call.
    pub raw_seal_mb_s: f64,
    /// [`Opener::open_in_place`] of the records of one message.
    pub open_mb_s: f64,
    /// In-place `crypto_aead_chacha20poly1305_ietf_decrypt_detached` of the
    /// whole message, one call.
    pub raw_open_mb_s: f64,
}

impl RecordThroughput {
    /// `seal_mb_s / raw_seal_mb_s`: 1.0 means records cost nothing on top
    /// of the cipher.
    pub fn seal_ratio(&self) -> f64 {
        self.seal_mb_s / self.raw_seal_mb_s
    }

    /// `open_mb_s / raw_open_mb_s`.
    pub fn open_ratio(&self) -> f64 {
        self.open_mb_s / self.raw_open_mb_s
    }
}

/// Measures v2 record sealing and opening against the raw AEAD for
/// `size`-byte messages, taking roughly `budget`, with the method of
/// [`crypto_throughput`]: interleaved rounds, alternating order, best
/// round of each.
///
/// Sealing writes into one reused buffer. Opening uses one long-lived
/// opener, as a connection does: before each timed batch the next messages
/// are sealed (untimed) with the matching sealer, so every record carries
/// the counter the opener expects; the raw side decrypts the same number
/// of raw ciphertexts, each under its own counter.
///
/// # Panics
///
/// Panics if a record fails to open (it cannot, barring a libsodium bug).
pub fn record_throughput(size: usize, budget: Duration) -> RecordThroughput {
    let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut sealer = v2_sealer(&KEY);
    let mut out = vec![0u8; Sealer::framed_len(size)];
    let mut raw_out = vec![0u8; size + 16];
    let mut counter = 0u64;

    let framed_len = Sealer::framed_len(size);
    let copies = ((1 << 20) / framed_len).clamp(1, 4096);

    let mut seal_records = |iters: u64| {
        let start = Instant::now();
        for _ in 0..iters {
            sealer
                .seal_framed_into(black_box(&message), black_box(&mut out))
                .expect("counter far from exhausted");
        }
        start.elapsed()
    };
    let mut seal_raw = |iters: u64| {
        let start = Instant::now();
        for _ in 0..iters {
            raw_aead_seal(black_box(&mut raw_out), black_box(&message), counter, &KEY);
            counter += 1;
        }
        start.elapsed()
    };

    // Opening: frames of `copies` messages, refilled before each batch.
    let mut open_sealer = v2_sealer(&KEY);
    let mut opener = v2_opener(&KEY).with_max_message(size);
    let mut frames: Vec<Vec<u8>> = vec![vec![0u8; framed_len]; copies];
    let mut raw_batch: Vec<Vec<u8>> = vec![vec![0u8; size + 16]; copies];
    let mut raw_counter = 0u64;
    let mut open = |iters: u64, raw: bool| {
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = usize::try_from(left).map_or(copies, |l| l.min(copies));
            let first_counter = raw_counter;
            if raw {
                for (i, buf) in raw_batch[..n].iter_mut().enumerate() {
                    raw_aead_seal(buf, &message, first_counter + i as u64, &KEY);
                }
                raw_counter += n as u64;
            } else {
                for frame in &mut frames[..n] {
                    open_sealer
                        .seal_framed_into(&message, frame)
                        .expect("counter far from exhausted");
                }
            }
            let start = Instant::now();
            if raw {
                for (i, buf) in raw_batch[..n].iter_mut().enumerate() {
                    let ok = raw_aead_open_in_place(black_box(buf), first_counter + i as u64, &KEY);
                    assert!(ok, "a raw ciphertext failed to open");
                }
            } else {
                for frame in &mut frames[..n] {
                    let mut rest = &mut frame[..];
                    while let Some(colon) = rest.iter().position(|&b| b == b':') {
                        let len = header_len(&rest[..colon]);
                        let (record, after) = rest[colon + 1..].split_at_mut(len);
                        let opened = opener.open_in_place(black_box(record));
                        assert!(
                            matches!(
                                opened,
                                Ok(Opened::InPlace(_) | Opened::Message(_) | Opened::Partial)
                            ),
                            "a sealed record failed to open: {opened:?}"
                        );
                        rest = &mut after[1..];
                    }
                }
            }
            elapsed += start.elapsed();
            left -= n as u64;
        }
        elapsed
    };

    let (best, iters) = interleaved(budget, &mut |which, n| match which {
        0 => seal_records(n),
        1 => seal_raw(n),
        2 => open(n, false),
        _ => open(n, true),
    });
    let mb_s = |took: Duration| size as f64 * iters as f64 / took.as_secs_f64().max(1e-9) / 1e6;
    RecordThroughput {
        size,
        seal_mb_s: mb_s(best[0]),
        raw_seal_mb_s: mb_s(best[1]),
        open_mb_s: mb_s(best[2]),
        raw_open_mb_s: mb_s(best[3]),
    }
}

/// The length in a netstring+ header written by a [`Sealer`].
fn header_len(hex: &[u8]) -> usize {
    hex.iter().fold(0, |len, &digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'A'..=b'F' => digit - b'A' + 10,
            _ => unreachable!("a Sealer writes upper-case hex headers"),
        };
        len * 16 + usize::from(value)
    })
}

/// Times four measurements (`run(which, iterations)` for `which` in 0..4:
/// ours and raw sealing, ours and raw opening) within `budget`: a tenth
/// to warm up and find the iterations per timing from the slowest of the
/// four, then [`ROUNDS`] rounds in alternating order. Returns the best time
/// of each and the iterations each time covers.
fn interleaved(
    budget: Duration,
    run: &mut dyn FnMut(usize, u64) -> Duration,
) -> ([Duration; 4], u64) {
    let warm_up = budget / 10;
    let mut calibrate = |which: usize| {
        let mut iters = 1u64;
        loop {
            let took = run(which, iters);
            if took >= warm_up / 4 || iters >= 1 << 30 {
                return took.as_secs_f64() / iters as f64;
            }
            iters *= 2;
        }
    };
    let per_item = (0..4).map(&mut calibrate).fold(f64::MIN_POSITIVE, f64::max);
    let slice = budget.saturating_sub(warm_up).as_secs_f64() / f64::from(ROUNDS * 4);
    let iters = ((slice / per_item) as u64).max(1);
    let mut best = [Duration::MAX; 4];
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [1, 0, 3, 2]
        };
        for which in order {
            best[which] = best[which].min(run(which, iters));
        }
    }
    (best, iters)
}
