//! Nonces for sealing: random bytes from libsodium's `randombytes_buf`
//! (the OS CSPRNG, `getrandom(2)` on Linux), fetched in bulk.
//!
//! One `getrandom` call per 24-byte nonce costs more than sealing a small
//! frame does, so each thread draws [`BATCH`] nonces at once and hands them
//! out one by one. The nonces are exactly as random as before — same source,
//! same bytes, fewer system calls — and each slot is zeroed as it is taken,
//! so no slot can be handed out twice. (Nonces are not secret: they are sent
//! in the clear.) As with any in-memory state, a session must not be used
//! on both sides of a `fork()`.

use std::cell::RefCell;

use crate::NONCE_SIZE;
use crate::sodium;

/// Nonces drawn per system call: 3 KiB of randomness.
const BATCH: usize = 128;

struct Pool {
    bytes: [u8; NONCE_SIZE * BATCH],
    /// Index of the next unused nonce; `BATCH` when the pool is spent.
    next: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bytes: [0; NONCE_SIZE * BATCH],
            next: BATCH,
        })
    };
}

/// A fresh random nonce.
pub(crate) fn random_nonce() -> [u8; NONCE_SIZE] {
    POOL.with_borrow_mut(|pool| {
        if pool.next == BATCH {
            sodium::random_bytes(&mut pool.bytes);
            pool.next = 0;
        }
        let slot = &mut pool.bytes[pool.next * NONCE_SIZE..][..NONCE_SIZE];
        let mut nonce = [0u8; NONCE_SIZE];
        nonce.copy_from_slice(slot);
        slot.fill(0);
        pool.next += 1;
        nonce
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_do_not_repeat_across_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..BATCH * 3 + 1 {
            assert!(seen.insert(random_nonce()), "a nonce repeated");
        }
    }

    #[test]
    fn nonces_are_not_all_zero() {
        assert!(
            (0..BATCH)
                .map(|_| random_nonce())
                .all(|n| n != [0; NONCE_SIZE])
        );
    }
}
