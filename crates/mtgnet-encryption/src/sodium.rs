//! The only place in the crate that touches libsodium directly.
//!
//! Every `unsafe` block of the crate lives here, each with a `// SAFETY:`
//! comment, behind safe functions whose signatures make the lengths
//! libsodium expects impossible to get wrong (fixed-size arrays, or slices
//! whose lengths are checked before the call). Every function that reaches
//! libsodium first calls [`init`], so users never initialise anything.

use std::ffi::c_void;
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use libsodium_sys as ffi;

/// Initialises libsodium once per process; cheap (one atomic load) after the first call.
///
/// # Panics
///
/// Panics if `sodium_init` reports failure. libsodium cannot pick its
/// implementations or seed its CSPRNG then, and no operation of this crate
/// can be done safely, so there is nothing sensible to fall back to.
pub(crate) fn init() {
    static INIT: OnceLock<i32> = OnceLock::new();
    // SAFETY: `sodium_init` takes no arguments, is thread-safe and may be
    // called any number of times; `OnceLock` makes us call it once anyway.
    let status = *INIT.get_or_init(|| unsafe { ffi::sodium_init() });
    assert!(
        status >= 0,
        "libsodium failed to initialise (sodium_init returned {status}); \
         no cryptographic operation is possible"
    );
}

/// Fills `buf` from libsodium's CSPRNG (`randombytes_buf`).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    init();
    // SAFETY: `buf` is a valid, writable region of exactly `buf.len()` bytes.
    unsafe { ffi::randombytes_buf(buf.as_mut_ptr().cast::<c_void>(), buf.len()) }
}

/// Constant-time equality (`sodium_memcmp`); slices of different lengths are unequal.
///
/// Only the contents are compared in constant time; the lengths are public.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    init();
    if a.len() != b.len() {
        return false;
    }
    // SAFETY: both pointers are valid for reads of `a.len()` bytes (the
    // lengths are equal, checked above).
    unsafe { ffi::sodium_memcmp(a.as_ptr().cast(), b.as_ptr().cast(), a.len()) == 0 }
}

/// Overwrites `buf` with zeros in a way the compiler may not elide (`sodium_memzero`).
pub(crate) fn wipe(buf: &mut [u8]) {
    init();
    // SAFETY: `buf` is a valid, writable region of exactly `buf.len()` bytes.
    unsafe { ffi::sodium_memzero(buf.as_mut_ptr().cast(), buf.len()) }
}

/// Ed25519 key pair from a 32-byte seed (`crypto_sign_seed_keypair`).
pub(crate) fn sign_seed_keypair(seed: &[u8; 32], public: &mut [u8; 32], secret: &mut [u8; 64]) {
    init();
    // SAFETY: the array types give exactly crypto_sign_PUBLICKEYBYTES (32),
    // crypto_sign_SECRETKEYBYTES (64) and crypto_sign_SEEDBYTES (32) bytes.
    let rc = unsafe {
        ffi::crypto_sign_seed_keypair(public.as_mut_ptr(), secret.as_mut_ptr(), seed.as_ptr())
    };
    assert_eq!(rc, 0, "crypto_sign_seed_keypair cannot fail");
}

/// Fresh random Ed25519 key pair (`crypto_sign_keypair`).
pub(crate) fn sign_keypair(public: &mut [u8; 32], secret: &mut [u8; 64]) {
    init();
    // SAFETY: the array types give exactly the 32 and 64 bytes libsodium writes.
    let rc = unsafe { ffi::crypto_sign_keypair(public.as_mut_ptr(), secret.as_mut_ptr()) };
    assert_eq!(rc, 0, "crypto_sign_keypair cannot fail");
}

/// Combined-mode signature: 64-byte signature followed by `message` (`crypto_sign`).
pub(crate) fn sign(message: &[u8], secret: &[u8; 64]) -> Vec<u8> {
    init();
    let mut signed = vec![0u8; message.len() + 64];
    let mut signed_len: u64 = 0;
    // SAFETY: `signed` has room for crypto_sign_BYTES + message.len() bytes,
    // as libsodium requires; `message` is valid for `message.len()` reads;
    // `secret` is the 64-byte secret key; `signed_len` is a valid out-pointer.
    let rc = unsafe {
        ffi::crypto_sign(
            signed.as_mut_ptr(),
            &mut signed_len,
            message.as_ptr(),
            message.len() as u64,
            secret.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_sign cannot fail for an in-memory message");
    debug_assert_eq!(signed_len, signed.len() as u64);
    signed
}

/// Verifies a combined-mode signature and returns the signed message (`crypto_sign_open`).
///
/// Returns `None` when verification fails, including every input shorter
/// than a signature. libsodium's checks are the strict ones (S < L,
/// canonical and non-small-order A and R).
pub(crate) fn sign_open(signed: &[u8], public: &[u8; 32]) -> Option<Vec<u8>> {
    init();
    let message_len = signed.len().checked_sub(64)?;
    let mut message = vec![0u8; message_len];
    // libsodium accepts a NULL output when there is nothing to copy, which
    // keeps a dangling (empty-Vec) pointer from ever reaching C.
    let out = if message_len == 0 {
        ptr::null_mut()
    } else {
        message.as_mut_ptr()
    };
    // SAFETY: `out` is NULL or valid for `signed.len() - 64` writes, which is
    // the most libsodium writes; `signed` is valid for `signed.len()` reads;
    // `public` is 32 bytes; a NULL length out-pointer is allowed.
    let rc = unsafe {
        ffi::crypto_sign_open(
            out,
            ptr::null_mut(),
            signed.as_ptr(),
            signed.len() as u64,
            public.as_ptr(),
        )
    };
    (rc == 0).then_some(message)
}

/// Fresh random X25519 key pair (`crypto_box_keypair`).
pub(crate) fn box_keypair(public: &mut [u8; 32], secret: &mut [u8; 32]) {
    init();
    // SAFETY: the array types give exactly crypto_box_PUBLICKEYBYTES and
    // crypto_box_SECRETKEYBYTES (32 each).
    let rc = unsafe { ffi::crypto_box_keypair(public.as_mut_ptr(), secret.as_mut_ptr()) };
    assert_eq!(rc, 0, "crypto_box_keypair cannot fail");
}

/// The X25519 public key of a secret scalar (`crypto_scalarmult_base`).
pub(crate) fn scalarmult_base(secret: &[u8; 32]) -> [u8; 32] {
    init();
    let mut public = [0u8; 32];
    // SAFETY: both arrays are crypto_scalarmult_BYTES / SCALARBYTES (32) long.
    let rc = unsafe { ffi::crypto_scalarmult_base(public.as_mut_ptr(), secret.as_ptr()) };
    // It fails only for the all-zero output, which a clamped scalar times the
    // base point cannot produce.
    assert_eq!(rc, 0, "crypto_scalarmult_base failed");
    public
}

/// Precomputes the shared key (`crypto_box_beforenm`): HSalsa20 of the X25519 result.
///
/// Returns `false`, leaving `key` zeroed, when the X25519 result is all zero
/// (the peer's public key has small order).
#[must_use]
pub(crate) fn box_beforenm(key: &mut [u8; 32], peer_public: &[u8; 32], secret: &[u8; 32]) -> bool {
    init();
    // SAFETY: all three arrays are the 32 bytes libsodium reads or writes
    // (crypto_box_BEFORENMBYTES, PUBLICKEYBYTES, SECRETKEYBYTES).
    let rc = unsafe {
        ffi::crypto_box_beforenm(key.as_mut_ptr(), peer_public.as_ptr(), secret.as_ptr())
    };
    if rc != 0 {
        wipe(key);
    }
    rc == 0
}

/// `crypto_box_easy_afternm`: writes MAC (16) || ciphertext into `out`.
///
/// # Panics
///
/// Panics if `out.len() != message.len() + 16`.
pub(crate) fn box_easy_afternm(out: &mut [u8], message: &[u8], nonce: &[u8; 24], key: &[u8; 32]) {
    init();
    assert_eq!(
        out.len(),
        message.len() + 16,
        "output must be exactly 16 bytes longer than the message"
    );
    // SAFETY: `out` is valid for message.len() + crypto_box_MACBYTES writes
    // (checked above); `message` for its length in reads; nonce and key have
    // the 24 and 32 bytes libsodium reads. `out` and `message` cannot overlap
    // because one is borrowed mutably and the other shared.
    let rc = unsafe {
        ffi::crypto_box_easy_afternm(
            out.as_mut_ptr(),
            message.as_ptr(),
            message.len() as u64,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "message longer than crypto_box_MESSAGEBYTES_MAX");
}

/// In-place `crypto_box_open_easy_afternm`: `buf` holds MAC (16) || ciphertext
/// on entry and, on success, the plaintext in `buf[..buf.len() - 16]`.
///
/// Returns `false` if `buf` is shorter than the MAC or authentication fails.
#[must_use]
pub(crate) fn box_open_easy_afternm_in_place(
    buf: &mut [u8],
    nonce: &[u8; 24],
    key: &[u8; 32],
) -> bool {
    init();
    if buf.len() < 16 {
        return false;
    }
    let ptr = buf.as_mut_ptr();
    // SAFETY: `ptr` is valid for `buf.len()` reads and for the
    // `buf.len() - 16` writes of the plaintext. libsodium documents that the
    // message and ciphertext may overlap (it memmoves overlapping input
    // first), so passing the same buffer as both is allowed; both raw
    // pointers come from the one exclusive borrow `buf`.
    let rc = unsafe {
        ffi::crypto_box_open_easy_afternm(
            ptr,
            ptr.cast_const(),
            buf.len() as u64,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    rc == 0
}

// ---------------------------------------------------------------------------
// Encryption v2 (Noise XX): X25519, Ed25519 detached signatures,
// ChaCha20-Poly1305-IETF and BLAKE2b.
// ---------------------------------------------------------------------------

/// X25519 (`crypto_scalarmult`): writes `secret * public` into `shared`.
///
/// Returns `false`, leaving `shared` zeroed, when the result is all zero
/// (the public key has small order); libsodium checks this itself.
#[must_use]
pub(crate) fn scalarmult(shared: &mut [u8; 32], secret: &[u8; 32], public: &[u8; 32]) -> bool {
    init();
    // SAFETY: the three arrays are the crypto_scalarmult_BYTES and
    // crypto_scalarmult_SCALARBYTES (32 each) libsodium writes and reads.
    let rc =
        unsafe { ffi::crypto_scalarmult(shared.as_mut_ptr(), secret.as_ptr(), public.as_ptr()) };
    if rc != 0 {
        wipe(shared);
    }
    rc == 0
}

/// Detached Ed25519 signature of `message` (`crypto_sign_detached`).
pub(crate) fn sign_detached(message: &[u8], secret: &[u8; 64]) -> [u8; 64] {
    init();
    let mut signature = [0u8; 64];
    // SAFETY: `signature` has the crypto_sign_BYTES (64) libsodium writes; a
    // NULL length out-pointer is allowed; `message` is valid for
    // `message.len()` reads; `secret` is the 64-byte secret key.
    let rc = unsafe {
        ffi::crypto_sign_detached(
            signature.as_mut_ptr(),
            ptr::null_mut(),
            message.as_ptr(),
            message.len() as u64,
            secret.as_ptr(),
        )
    };
    assert_eq!(
        rc, 0,
        "crypto_sign_detached cannot fail for an in-memory message"
    );
    signature
}

/// Verifies a detached Ed25519 signature (`crypto_sign_verify_detached`),
/// with libsodium's strict checks (S < L, canonical and non-small-order A
/// and R).
#[must_use]
pub(crate) fn sign_verify_detached(
    signature: &[u8; 64],
    message: &[u8],
    public: &[u8; 32],
) -> bool {
    init();
    // SAFETY: `signature` and `public` are the 64 and 32 bytes libsodium
    // reads; `message` is valid for `message.len()` reads.
    let rc = unsafe {
        ffi::crypto_sign_verify_detached(
            signature.as_ptr(),
            message.as_ptr(),
            message.len() as u64,
            public.as_ptr(),
        )
    };
    rc == 0
}

/// Size of the Poly1305 tag of ChaCha20-Poly1305-IETF.
pub(crate) const AEAD_TAG_SIZE: usize = 16;

/// The 96-bit ChaCha20-Poly1305-IETF nonce of Noise's ChaChaPoly cipher:
/// 4 zero bytes, then the 64-bit counter in little-endian order.
#[inline]
pub(crate) fn noise_nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// `crypto_aead_chacha20poly1305_ietf_encrypt`: writes ciphertext || tag (16)
/// of `plaintext` into `out`.
///
/// # Panics
///
/// Panics unless `out.len() == plaintext.len() + 16`.
pub(crate) fn aead_encrypt(
    out: &mut [u8],
    plaintext: &[u8],
    ad: &[u8],
    nonce: &[u8; 12],
    key: &[u8; 32],
) {
    init();
    assert_eq!(
        out.len(),
        plaintext.len() + AEAD_TAG_SIZE,
        "output must be exactly 16 bytes longer than the plaintext"
    );
    // SAFETY: `out` is valid for plaintext.len() + crypto_aead_..._ABYTES
    // writes (checked above); `plaintext` and `ad` for their lengths in
    // reads; nonce and key are the 12 and 32 bytes libsodium reads; a NULL
    // length out-pointer and a NULL nsec are allowed. `out` cannot overlap
    // the inputs: it is borrowed mutably, they are borrowed shared.
    let rc = unsafe {
        ffi::crypto_aead_chacha20poly1305_ietf_encrypt(
            out.as_mut_ptr(),
            ptr::null_mut(),
            plaintext.as_ptr(),
            plaintext.len() as u64,
            ad.as_ptr(),
            ad.len() as u64,
            ptr::null(),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(
        rc, 0,
        "plaintext longer than crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX"
    );
}

/// `crypto_aead_chacha20poly1305_ietf_decrypt` of `ciphertext` = ciphertext
/// || tag (16) into `out`.
///
/// Returns `false` if `ciphertext` is shorter than the tag, `out` is not
/// exactly 16 bytes shorter than it, or authentication fails (libsodium
/// checks the tag before it decrypts, so `out` is then left as it was).
#[must_use]
pub(crate) fn aead_decrypt(
    out: &mut [u8],
    ciphertext: &[u8],
    ad: &[u8],
    nonce: &[u8; 12],
    key: &[u8; 32],
) -> bool {
    init();
    if ciphertext.len() < AEAD_TAG_SIZE || out.len() != ciphertext.len() - AEAD_TAG_SIZE {
        return false;
    }
    // libsodium accepts a NULL output when there is nothing to write, which
    // keeps a dangling (empty-slice) pointer from ever reaching C.
    let m = if out.is_empty() {
        ptr::null_mut()
    } else {
        out.as_mut_ptr()
    };
    // SAFETY: `m` is NULL or valid for ciphertext.len() - 16 writes (checked
    // above), which is all libsodium writes; `ciphertext` and `ad` are valid
    // for their lengths in reads; nonce and key are 12 and 32 bytes; NULL
    // nsec and length out-pointers are allowed. `out` cannot overlap the
    // inputs (mutable vs shared borrows).
    let rc = unsafe {
        ffi::crypto_aead_chacha20poly1305_ietf_decrypt(
            m,
            ptr::null_mut(),
            ptr::null_mut(),
            ciphertext.as_ptr(),
            ciphertext.len() as u64,
            ad.as_ptr(),
            ad.len() as u64,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    rc == 0
}

/// The two halves of ChaCha20-Poly1305-IETF (RFC 8439) with empty
/// associated data, for records that are encrypted or decrypted piecewise:
/// [`chacha20_xor`] applies the key stream from any block boundary, and
/// [`aead_tag`] computes the tag of a whole ciphertext.
///
/// Together they are libsodium's
/// `crypto_aead_chacha20poly1305_ietf_{encrypt,decrypt}_detached` step for
/// step (block 0 of the key stream keys Poly1305; the plaintext is XORed
/// with the stream from block 1; the MAC covers the ciphertext, its padding
/// to 16 bytes and the two little-endian 64-bit lengths), so the bytes are
/// the same; tests check that against those functions. Splitting them lets
/// the record layer seal from the caller's message straight into the frame
/// and open straight into the reassembled message, without the large
/// `memcpy` that gluing a flag byte to the data would take (slow on some
/// CPUs when source and destination are differently aligned, as a frame
/// header of variable length makes them).
///
/// XORs `input` with the ChaCha20-IETF key stream for `nonce` and `key`,
/// starting at plaintext byte `offset` (key stream block `1 + offset / 64`),
/// into `output`.
///
/// # Panics
///
/// Panics unless `output.len() == input.len()` and `offset` is a multiple
/// of 64, or if the 32-bit block counter would wrap (about 256 GiB).
pub(crate) fn chacha20_xor(
    output: &mut [u8],
    input: &[u8],
    offset: usize,
    nonce: &[u8; 12],
    key: &[u8; 32],
) {
    init();
    assert_eq!(output.len(), input.len(), "XOR needs equal lengths");
    let counter = stream_counter(offset, input.len());
    if input.is_empty() {
        return;
    }
    // SAFETY: `output` is valid for `input.len()` writes and `input` for as
    // many reads; they cannot overlap (mutable vs shared borrow). Nonce and
    // key are the 12 and 32 bytes libsodium reads.
    let rc = unsafe {
        ffi::crypto_stream_chacha20_ietf_xor_ic(
            output.as_mut_ptr(),
            input.as_ptr(),
            input.len() as u64,
            nonce.as_ptr(),
            counter,
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_stream_chacha20_ietf_xor_ic failed");
}

/// [`chacha20_xor`] in place.
///
/// # Panics
///
/// As [`chacha20_xor`].
pub(crate) fn chacha20_xor_in_place(
    buf: &mut [u8],
    offset: usize,
    nonce: &[u8; 12],
    key: &[u8; 32],
) {
    init();
    let counter = stream_counter(offset, buf.len());
    if buf.is_empty() {
        return;
    }
    let ptr = buf.as_mut_ptr();
    // SAFETY: `ptr` is valid for `buf.len()` reads and writes; libsodium's
    // ChaCha20 XORs block by block and supports c == m exactly (in place),
    // and both raw pointers come from the one exclusive borrow `buf`. Nonce
    // and key are 12 and 32 bytes.
    let rc = unsafe {
        ffi::crypto_stream_chacha20_ietf_xor_ic(
            ptr,
            ptr.cast_const(),
            buf.len() as u64,
            nonce.as_ptr(),
            counter,
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_stream_chacha20_ietf_xor_ic failed");
}

/// [`chacha20_xor`] appending its output to `out` (which grows by
/// `input.len()` bytes) instead of overwriting a slice: the key stream XOR
/// is written straight into `out`'s spare capacity, so a caller building a
/// frame never zero-fills the bytes the cipher is about to overwrite.
///
/// # Panics
///
/// As [`chacha20_xor`].
pub(crate) fn chacha20_xor_append(
    out: &mut Vec<u8>,
    input: &[u8],
    offset: usize,
    nonce: &[u8; 12],
    key: &[u8; 32],
) {
    init();
    let counter = stream_counter(offset, input.len());
    if input.is_empty() {
        return;
    }
    out.reserve(input.len());
    let start = out.len();
    let spare = out.spare_capacity_mut();
    debug_assert!(spare.len() >= input.len());
    // SAFETY: `spare` is `out`'s unused capacity, at least `input.len()`
    // bytes after the `reserve` above, so libsodium's `input.len()` writes
    // stay inside the allocation; it only writes there (for distinct input
    // and output it never reads the output). `input` is valid for as many
    // reads and cannot overlap `spare`: it is a shared borrow while `out`
    // is borrowed mutably, and no safe reference into uninitialised spare
    // capacity exists. Nonce and key are the 12 and 32 bytes libsodium reads.
    let rc = unsafe {
        ffi::crypto_stream_chacha20_ietf_xor_ic(
            spare.as_mut_ptr().cast::<u8>(),
            input.as_ptr(),
            input.len() as u64,
            nonce.as_ptr(),
            counter,
            key.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "crypto_stream_chacha20_ietf_xor_ic failed");
    // SAFETY: libsodium succeeded, so it initialised the `input.len()`
    // bytes after `start`, which are within the capacity (reserved above).
    unsafe { out.set_len(start + input.len()) };
}

/// The initial block counter for plaintext byte `offset`: block 0 keys
/// Poly1305, so plaintext starts at block 1.
fn stream_counter(offset: usize, len: usize) -> u32 {
    assert_eq!(
        offset % 64,
        0,
        "the key stream is applied from block boundaries"
    );
    let last_block = (offset as u64 + len as u64).div_ceil(64);
    assert!(
        last_block < u64::from(u32::MAX),
        "data longer than the ChaCha20-IETF stream"
    );
    1 + (offset / 64) as u32
}

/// The Poly1305 tag ChaCha20-Poly1305-IETF gives `ciphertext` with empty
/// associated data, under `nonce` and `key` (see [`chacha20_xor`]).
pub(crate) fn aead_tag(ciphertext: &[u8], nonce: &[u8; 12], key: &[u8; 32]) -> [u8; AEAD_TAG_SIZE] {
    init();
    let mut block0 = [0u8; 64];
    let mut state = ffi::crypto_onetimeauth_poly1305_state { opaque: [0; 256] };
    let mut tag = [0u8; AEAD_TAG_SIZE];
    let padding = [0u8; 16];
    let mut lengths = [0u8; 16];
    // Associated data: empty, so its length (0) is already in place.
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    // SAFETY: `block0` is 64 writable bytes; nonce and key are the 12 and
    // 32 bytes crypto_stream_chacha20_ietf reads.
    let rc = unsafe {
        ffi::crypto_stream_chacha20_ietf(block0.as_mut_ptr(), 64, nonce.as_ptr(), key.as_ptr())
    };
    assert_eq!(
        rc, 0,
        "crypto_stream_chacha20_ietf cannot fail for 64 bytes"
    );
    // SAFETY: `state` is an aligned poly1305 state owned here, keyed with
    // the first 32 of `block0`'s 64 bytes; every input pointer is valid for
    // the length given with it (the ciphertext, 0 to 15 bytes of `padding`,
    // the 16 bytes of `lengths`); `tag` is the 16 bytes final writes. A
    // dangling pointer of an empty ciphertext is passed with length 0 and
    // never read.
    unsafe {
        ffi::crypto_onetimeauth_poly1305_init(&mut state, block0.as_ptr());
        ffi::crypto_onetimeauth_poly1305_update(
            &mut state,
            ciphertext.as_ptr(),
            ciphertext.len() as u64,
        );
        ffi::crypto_onetimeauth_poly1305_update(
            &mut state,
            padding.as_ptr(),
            ((16 - ciphertext.len() % 16) % 16) as u64,
        );
        ffi::crypto_onetimeauth_poly1305_update(&mut state, lengths.as_ptr(), 16);
        ffi::crypto_onetimeauth_poly1305_final(&mut state, tag.as_mut_ptr());
    }
    wipe(&mut block0);
    wipe(&mut state.opaque);
    tag
}

/// Constant-time comparison of two tags (`crypto_verify_16`).
#[must_use]
pub(crate) fn tags_equal(a: &[u8; AEAD_TAG_SIZE], b: &[u8; AEAD_TAG_SIZE]) -> bool {
    init();
    // SAFETY: both arrays are the 16 bytes crypto_verify_16 reads.
    unsafe { ffi::crypto_verify_16(a.as_ptr(), b.as_ptr()) == 0 }
}

/// In-place `crypto_aead_chacha20poly1305_ietf_decrypt_detached` with empty
/// associated data: on success `data` holds the plaintext.
///
/// Returns `false` if authentication fails; `data` is then unchanged
/// (libsodium verifies the tag before decrypting). Used by the benchmark
/// harness as the raw baseline of record opening.
#[cfg(feature = "bench")]
#[must_use]
pub(crate) fn aead_open_in_place(
    data: &mut [u8],
    tag: &[u8; AEAD_TAG_SIZE],
    nonce: &[u8; 12],
    key: &[u8; 32],
) -> bool {
    init();
    let ptr = data.as_mut_ptr();
    // SAFETY: `ptr` is valid for `data.len()` reads and writes; libsodium's
    // ChaCha20 XORs block by block and supports c == m exactly (in place),
    // and both raw pointers come from the one exclusive borrow `data`; `tag` is the 16 bytes read; NULL ad
    // (length 0) and NULL nsec are allowed; nonce and key are 12 and 32 bytes.
    let rc = unsafe {
        ffi::crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            ptr,
            ptr::null_mut(),
            ptr.cast_const(),
            data.len() as u64,
            tag.as_ptr(),
            ptr::null(),
            0,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    rc == 0
}

/// Output size of [`Blake2b`]: BLAKE2b-512, as Noise's `BLAKE2b` hash.
pub(crate) const BLAKE2B_SIZE: usize = 64;

/// A streaming BLAKE2b-512 hash (`crypto_generichash_*`, unkeyed, 64-byte
/// output). Its state holds keyed material while Noise computes HMACs, so
/// dropping it wipes the state.
pub(crate) struct Blake2b {
    state: ffi::crypto_generichash_state,
}

impl Blake2b {
    /// A fresh hash.
    pub(crate) fn new() -> Blake2b {
        let mut hash = Blake2b {
            state: ffi::crypto_generichash_state { opaque: [0; 384] },
        };
        hash.reset();
        hash
    }

    /// Starts over, forgetting everything hashed so far.
    pub(crate) fn reset(&mut self) {
        init();
        // SAFETY: `state` is a properly aligned crypto_generichash_state
        // owned by `self`; a NULL key of length 0 means unkeyed; 64 is
        // crypto_generichash_BYTES_MAX, a valid output length.
        let rc =
            unsafe { ffi::crypto_generichash_init(&mut self.state, ptr::null(), 0, BLAKE2B_SIZE) };
        assert_eq!(
            rc, 0,
            "crypto_generichash_init cannot fail for valid lengths"
        );
    }

    /// Hashes `data`.
    pub(crate) fn update(&mut self, data: &[u8]) {
        // SAFETY: `state` was initialised by `reset` (every constructor and
        // `finalize` call it), and `data` is valid for `data.len()` reads.
        let rc = unsafe {
            ffi::crypto_generichash_update(&mut self.state, data.as_ptr(), data.len() as u64)
        };
        assert_eq!(
            rc, 0,
            "crypto_generichash_update failed on an initialised state"
        );
    }

    /// Writes the digest into `out` and starts over.
    pub(crate) fn finalize(&mut self, out: &mut [u8; BLAKE2B_SIZE]) {
        // SAFETY: `state` is initialised (see `update`), and `out` has the
        // 64 bytes requested at init.
        let rc = unsafe {
            ffi::crypto_generichash_final(&mut self.state, out.as_mut_ptr(), BLAKE2B_SIZE)
        };
        assert_eq!(
            rc, 0,
            "crypto_generichash_final failed on an initialised state"
        );
        // A finalised state refuses further input: make it usable again.
        self.reset();
    }
}

impl Drop for Blake2b {
    fn drop(&mut self) {
        wipe(&mut self.state.opaque);
    }
}

/// How a [`SecretBytes`] region is protected while no `expose_secret` call runs.
///
/// Both modes keep the region in `sodium_malloc` memory between guard
/// pages, locked against swapping, wiped and freed on drop, and writable
/// only while it is filled or wiped. They differ in what an out-of-bounds
/// or stray *read* of the region sees between uses, and in what a use costs.
///
/// ```
/// use mtgnet_encryption::{Protection, SecretBytes};
///
/// let identity = SecretBytes::<32>::new_with(|b| b.fill(1));
/// assert_eq!(identity.protection(), Protection::NoAccess);
/// let session_key = SecretBytes::<32>::with_protection(Protection::ReadOnly, |b| b.fill(2));
/// assert_eq!(session_key.expose_secret(|b| b[0]), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// `PROT_NONE` except while [`SecretBytes::expose_secret`] runs: a read
    /// of the region at any other time faults. Each use costs two
    /// `mprotect` syscalls (each with a TLB shootdown in a multi-threaded
    /// process) and a mutex, a few microseconds: right for long-lived,
    /// rarely used secrets such as an identity or an ephemeral key, which
    /// are exposed a handful of times per connection.
    NoAccess,
    /// `PROT_READ` for the whole lifetime: `expose_secret` is a plain borrow
    /// with no syscall, and writes still fault. Right for a secret used on
    /// every message, such as the session key: toggling the protection per
    /// frame would cost several times the encryption of a small frame.
    /// The price is that a stray read elsewhere in the process (say, a
    /// use-after-free or wild pointer that lands on this page) can see the
    /// secret while it lives; the guard pages still stop linear over-reads
    /// from neighbouring allocations, and the region is still locked
    /// against swapping, left out of core dumps where the OS allows, never
    /// cloned, and wiped on drop.
    ReadOnly,
}

/// `N` bytes of secret memory from `sodium_malloc`.
///
/// The region sits between guard pages, is locked against swapping
/// (`mlock`) where the OS allows, and is read-only or inaccessible outside
/// [`expose_secret`](Self::expose_secret) according to its [`Protection`]
/// ([`NoAccess`](Protection::NoAccess) unless constructed with
/// [`with_protection`](Self::with_protection)); it is never writable except
/// while being filled or wiped. Dropping it wipes the bytes; the zeroed
/// region then goes back to a small pool for reuse (still guarded and
/// locked, holding nothing) or is freed (`sodium_free`). It cannot be
/// cloned, and its `Debug` output is `SecretBytes([REDACTED])`.
///
/// ```
/// use mtgnet_encryption::SecretBytes;
///
/// let secret = SecretBytes::<4>::new_with(|bytes| bytes.copy_from_slice(b"key!"));
/// assert_eq!(secret.expose_secret(|bytes| bytes[0]), b'k');
/// assert_eq!(format!("{secret:?}"), "SecretBytes([REDACTED])");
/// ```
pub struct SecretBytes<const N: usize> {
    ptr: NonNull<u8>,
    /// The protection between uses, fixed at construction.
    protection: Protection,
    /// For [`Protection::NoAccess`]: how many `expose_secret` calls are
    /// running, on any thread. The region is readable while this is
    /// non-zero and `PROT_NONE` otherwise; the count and the protection
    /// change together under this lock, so one caller finishing never
    /// revokes access from another still reading (concurrent use through
    /// `Arc<Session>`, or a nested call). Unused for `ReadOnly`.
    readers: Mutex<usize>,
}

// SAFETY: the region is owned by this value alone (no other pointer to it
// escapes), so moving it to another thread is like moving a `Box<[u8; N]>`.
unsafe impl<const N: usize> Send for SecretBytes<N> {}
// SAFETY: through `&self` the bytes are only ever read (`expose_secret`
// hands out `&[u8; N]`), and the only shared mutable state, the protection
// of a `NoAccess` region, changes under the `readers` mutex. A `ReadOnly`
// region's protection never changes through `&self`. Writing requires
// `&mut self`.
unsafe impl<const N: usize> Sync for SecretBytes<N> {}

impl<const N: usize> SecretBytes<N> {
    /// Allocates a [`NoAccess`](Protection::NoAccess) region and lets `fill`
    /// write the secret straight into it, so it never passes through an
    /// ordinary (unlocked, unwiped) buffer.
    ///
    /// # Panics
    ///
    /// Panics if `sodium_malloc` fails (out of memory or address space), like
    /// an ordinary allocation failure, or if `fill` panics (the region is
    /// then wiped and freed).
    pub fn new_with(fill: impl FnOnce(&mut [u8; N])) -> Self {
        Self::with_protection(Protection::NoAccess, fill)
    }

    /// Like [`new_with`](Self::new_with), for a `fill` that can fail; on
    /// failure the region is wiped and freed and the error returned.
    ///
    /// # Errors
    ///
    /// Whatever `fill` returns.
    ///
    /// # Panics
    ///
    /// Panics if `sodium_malloc` fails.
    pub fn try_new_with<E>(fill: impl FnOnce(&mut [u8; N]) -> Result<(), E>) -> Result<Self, E> {
        Self::try_with_protection(Protection::NoAccess, fill)
    }

    /// Like [`new_with`](Self::new_with), with the given protection between uses.
    ///
    /// # Panics
    ///
    /// As [`new_with`](Self::new_with), and if the OS refuses the protection
    /// change (`mprotect`).
    pub fn with_protection(protection: Protection, fill: impl FnOnce(&mut [u8; N])) -> Self {
        match Self::try_with_protection(protection, |bytes| {
            fill(bytes);
            Ok::<(), std::convert::Infallible>(())
        }) {
            Ok(secret) => secret,
            Err(never) => match never {},
        }
    }

    /// Like [`try_new_with`](Self::try_new_with), with the given protection
    /// between uses.
    ///
    /// # Errors
    ///
    /// Whatever `fill` returns.
    ///
    /// # Panics
    ///
    /// As [`with_protection`](Self::with_protection).
    pub fn try_with_protection<E>(
        protection: Protection,
        fill: impl FnOnce(&mut [u8; N]) -> Result<(), E>,
    ) -> Result<Self, E> {
        init();
        let ptr = match pool::take(N) {
            Some(ptr) => ptr,
            None => {
                // SAFETY: `sodium_malloc` may be called with any size; the
                // result is checked for NULL below.
                let raw = unsafe { ffi::sodium_malloc(N.max(1)) }.cast::<u8>();
                let Some(ptr) = NonNull::new(raw) else {
                    panic!("sodium_malloc({N}) failed: out of memory or address space");
                };
                ptr
            }
        };
        // From here on `Drop` frees the region, including on early return.
        let secret = SecretBytes {
            ptr,
            protection,
            readers: Mutex::new(0),
        };
        // SAFETY: a fresh sodium_malloc region, like a pooled one, is
        // readable and writable, at least N bytes long, and alignment 1
        // suits `[u8; N]`; `secret` has
        // not been shared yet, so this is the only reference to the bytes,
        // and it ends before `secret` is used again.
        let bytes = unsafe { &mut *secret.ptr.as_ptr().cast::<[u8; N]>() };
        // sodium_malloc fills new memory with 0xdb (pooled regions are
        // already zero); start from zero either way.
        wipe(bytes);
        fill(bytes)?;
        secret.protect_idle();
        Ok(secret)
    }

    /// The protection of the region between uses.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// Runs `f` with read access to the bytes.
    ///
    /// For a [`NoAccess`](Protection::NoAccess) region, access is granted
    /// for the call and revoked afterwards; the region is readable only
    /// while at least one `expose_secret` call is running (calls may nest
    /// and run on several threads at once). For a
    /// [`ReadOnly`](Protection::ReadOnly) region this is a plain borrow.
    /// Don't copy the bytes out of the closure into ordinary memory.
    ///
    /// # Panics
    ///
    /// Panics if the OS refuses to change the page protection (`mprotect`),
    /// since reading the region would then crash the process.
    #[inline]
    pub fn expose_secret<R>(&self, f: impl FnOnce(&[u8; N]) -> R) -> R {
        let _guard = match self.protection {
            Protection::ReadOnly => None,
            Protection::NoAccess => Some(ReadGuard::new(self)),
        };
        // SAFETY: the region is readable: a `ReadOnly` region is `PROT_READ`
        // from construction to drop (only `&mut self` methods change that,
        // and they restore it before returning), and a `NoAccess` one is
        // readable while `_guard` lives (mprotect succeeded or we panicked).
        // It is N bytes with alignment 1, and nothing writes it, since
        // writes need `&mut self`.
        let bytes = unsafe { &*self.ptr.as_ptr().cast::<[u8; N]>() };
        f(bytes)
    }

    /// Overwrites the bytes with zeros (`sodium_memzero`), leaving the region
    /// with its protection again. `Drop` does this before `sodium_free`,
    /// whose own wipe makes the region's final contents unobservable:
    /// calling this directly lets a test see that the wipe really zeroes the
    /// memory.
    #[doc(hidden)]
    pub fn wipe(&mut self) {
        self.zero();
        self.protect_idle();
    }

    /// The address of the region, for tests that check the guard really
    /// faults: reading a `NoAccess` region outside `expose_secret`, or
    /// writing any region, kills the process.
    #[doc(hidden)]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr().cast_const()
    }

    /// Makes the region writable and zeroes it.
    fn zero(&mut self) {
        self.protect_readwrite();
        // SAFETY: the region is now readable and writable, N bytes long, and
        // `&mut self` makes this the only reference to it.
        wipe(unsafe { &mut *self.ptr.as_ptr().cast::<[u8; N]>() });
    }

    fn lock_readers(&self) -> MutexGuard<'_, usize> {
        // The lock is never held while user code runs, so poisoning can only
        // come from a failed mprotect assertion; the count is still right.
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies the protection between uses.
    fn protect_idle(&self) {
        match self.protection {
            Protection::NoAccess => self.protect_noaccess(),
            Protection::ReadOnly => self.protect_readonly(),
        }
    }

    fn protect_readonly(&self) {
        // SAFETY: `ptr` is a live sodium_malloc region (freed only in Drop).
        let rc = unsafe { ffi::sodium_mprotect_readonly(self.ptr.as_ptr().cast()) };
        assert_eq!(rc, 0, "mprotect(PROT_READ) on secret memory failed");
    }

    fn protect_readwrite(&mut self) {
        // SAFETY: `ptr` is a live sodium_malloc region (freed only in Drop).
        let rc = unsafe { ffi::sodium_mprotect_readwrite(self.ptr.as_ptr().cast()) };
        assert_eq!(
            rc, 0,
            "mprotect(PROT_READ|PROT_WRITE) on secret memory failed"
        );
    }

    fn protect_noaccess(&self) {
        // SAFETY: `ptr` is a live sodium_malloc region (freed only in Drop).
        let rc = unsafe { ffi::sodium_mprotect_noaccess(self.ptr.as_ptr().cast()) };
        // Failing to revoke access leaves the bytes readable but is not unsafe;
        // panicking here (possibly inside a guard's drop) would be worse.
        debug_assert_eq!(rc, 0, "mprotect(PROT_NONE) on secret memory failed");
    }
}

impl<const N: usize> Drop for SecretBytes<N> {
    fn drop(&mut self) {
        self.zero();
        if let Err(ptr) = pool::give(N, self.ptr) {
            // SAFETY: `ptr` came from sodium_malloc (directly or through the
            // pool, which only holds such regions) and is released exactly
            // once, here: either kept by the pool or freed. sodium_free
            // makes the region writable, wipes it, unlocks and unmaps it.
            unsafe { ffi::sodium_free(ptr.as_ptr().cast()) }
        }
    }
}

/// Wiped regions kept for reuse instead of being unmapped.
///
/// A fresh `sodium_malloc` costs `mmap`, `mprotect` twice (guard pages),
/// `mlock` and `madvise`, and `sodium_free` as many again; in a
/// multi-threaded process every `mprotect`/`munmap` also takes the address
/// space lock and flushes the other cores' TLBs. Every encrypted connection
/// allocates and frees two secrets (ephemeral and session key), so reusing
/// regions roughly halves what a handshake costs besides the cryptography.
/// A pooled region is all zeros, readable and writable, still between its
/// guard pages and still locked; it holds no secret until it is reused.
mod pool {
    use std::ptr::NonNull;
    use std::sync::{Mutex, PoisonError};

    /// Regions kept per size; more than this are freed. Bounds the locked
    /// memory the pool holds: 64 pages per size in use (a few sizes).
    const PER_SIZE: usize = 64;

    /// A region owned by the pool.
    struct Region {
        size: usize,
        ptr: NonNull<u8>,
    }

    // SAFETY: a pooled region is owned by the pool alone (its `SecretBytes`
    // was dropped, and `take` hands it to exactly one new owner), so it may
    // be handed from one thread to another like a `Box`.
    unsafe impl Send for Region {}

    static FREE: Mutex<Vec<Region>> = Mutex::new(Vec::new());

    /// A zeroed, writable region of `size` bytes, if one is pooled.
    pub(super) fn take(size: usize) -> Option<NonNull<u8>> {
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        let index = free.iter().rposition(|r| r.size == size)?;
        Some(free.swap_remove(index).ptr)
    }

    /// Keeps a zeroed, writable region of `size` bytes for reuse; gives it
    /// back when the pool is full for that size.
    pub(super) fn give(size: usize, ptr: NonNull<u8>) -> Result<(), NonNull<u8>> {
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        if free.iter().filter(|r| r.size == size).count() >= PER_SIZE {
            return Err(ptr);
        }
        free.push(Region { size, ptr });
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for SecretBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes([REDACTED])")
    }
}

/// Keeps a region readable for its lifetime; see `SecretBytes::readers`.
struct ReadGuard<'a, const N: usize> {
    secret: &'a SecretBytes<N>,
}

impl<'a, const N: usize> ReadGuard<'a, N> {
    fn new(secret: &'a SecretBytes<N>) -> Self {
        let mut readers = secret.lock_readers();
        if *readers == 0 {
            secret.protect_readonly();
        }
        *readers += 1;
        ReadGuard { secret }
    }
}

impl<const N: usize> Drop for ReadGuard<'_, N> {
    fn drop(&mut self) {
        let mut readers = self.secret.lock_readers();
        *readers -= 1;
        if *readers == 0 {
            self.secret.protect_noaccess();
        }
    }
}
