//! What sealer and opener share: the flag byte, the directional transport
//! key and its counter, and the netstring+ header of a record's frame.

use std::fmt;

use crate::sodium::{self, Protection, SecretBytes};

use super::RECORD_TAG_SIZE;

/// How much of a record's plaintext is sealed or opened through a stack
/// buffer: eight ChaCha20 blocks (see [`TransportKey::seal`]).
pub(crate) const HEAD: usize = 512;

/// The flag byte at the start of every record's plaintext.
///
/// ```
/// use mtgnet_encryption::v2::Flag;
///
/// assert_eq!(Flag::from_byte(1), Some(Flag::Last));
/// assert_eq!(Flag::Close as u8, 2);
/// assert_eq!(Flag::from_byte(3), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Flag {
    /// `0x00`: a chunk of a message; more chunks of it follow.
    More = 0,
    /// `0x01`: the last (or only) chunk of a message.
    Last = 1,
    /// `0x02`: close; no data; the sender sends nothing more.
    Close = 2,
}

impl Flag {
    /// The flag of a byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Flag> {
        match byte {
            0 => Some(Flag::More),
            1 => Some(Flag::Last),
            2 => Some(Flag::Close),
            _ => None,
        }
    }
}

/// One direction's ChaChaPoly key (an output of Noise's `Split()`), with
/// the record operations under an explicit counter.
///
/// The key lives in protected memory, read-only for the session's lifetime
/// like v1's [`SessionKey`](crate::SessionKey) and for the same reason: it
/// is used for every record, and toggling page protection per record would
/// cost more than the encryption. Since it is only ever read, it can be
/// shared: a [`Sealer`](super::Sealer) and its
/// [`Reservation`](super::Reservation)s seal through `&self`, on any
/// number of threads at once. Which counter each record gets is decided
/// elsewhere (the sealer's reservations, the opener's count); this type
/// only applies one.
pub(crate) struct RecordKey {
    key: SecretBytes<32>,
}

impl RecordKey {
    /// Takes a key from `bytes`, which it wipes.
    pub(crate) fn take(bytes: &mut [u8; 32]) -> RecordKey {
        let key =
            SecretBytes::with_protection(Protection::ReadOnly, |key| key.copy_from_slice(bytes));
        sodium::wipe(bytes);
        RecordKey { key }
    }

    /// A copy of the key, for test vectors.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn key_for_testing(&self) -> [u8; 32] {
        self.key.expose_secret(|key| *key)
    }

    /// Seals the plaintext `flag || data` under `counter` into `out`
    /// (ciphertext, then the 16-byte tag; exactly `data.len() + 17` bytes),
    /// reading `data` where it is. The caller makes sure no counter is used
    /// twice.
    ///
    /// The first [`HEAD`] bytes of plaintext (the flag and up to 511 data
    /// bytes) are encrypted through a stack buffer, the rest straight from
    /// `data` into `out`: one pass, no large copy. The head is eight
    /// ChaCha20 blocks so that both parts run libsodium's widest (eight-block
    /// AVX2) loop on whole batches.
    ///
    /// # Panics
    ///
    /// Panics unless `out.len() == data.len() + 17`.
    pub(crate) fn seal(&self, counter: u64, flag: u8, data: &[u8], out: &mut [u8]) {
        let plaintext_len = 1 + data.len();
        assert_eq!(
            out.len(),
            plaintext_len + RECORD_TAG_SIZE,
            "a record is exactly 17 bytes longer than its data"
        );
        let (ciphertext, tag) = out.split_at_mut(plaintext_len);
        let (head, head_len) = head(flag, data);
        let nonce = sodium::noise_nonce(counter);
        self.key.expose_secret(|key| {
            let (head_out, rest_out) = ciphertext.split_at_mut(head_len);
            sodium::chacha20_xor(head_out, &head[..head_len], 0, &nonce, key);
            sodium::chacha20_xor(rest_out, &data[head_len - 1..], HEAD, &nonce, key);
            tag.copy_from_slice(&sodium::aead_tag(ciphertext, &nonce, key));
        });
    }

    /// [`seal`](Self::seal), appending the record (`data.len() + 17` bytes)
    /// to `out` instead of overwriting a slice: the ciphertext is written
    /// straight into `out`'s spare capacity, which nothing zero-fills first.
    pub(crate) fn seal_append(&self, counter: u64, flag: u8, data: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let (mut head, head_len) = head(flag, data);
        let nonce = sodium::noise_nonce(counter);
        self.key.expose_secret(|key| {
            sodium::chacha20_xor_in_place(&mut head[..head_len], 0, &nonce, key);
            out.extend_from_slice(&head[..head_len]);
            sodium::chacha20_xor_append(out, &data[head_len - 1..], HEAD, &nonce, key);
            let tag = sodium::aead_tag(&out[start..], &nonce, key);
            out.extend_from_slice(&tag);
        });
    }

    /// Seals any plaintext (no flag byte added) under `counter` into `out`,
    /// exactly 16 bytes longer, with libsodium's one-call AEAD.
    pub(crate) fn seal_plaintext(&self, counter: u64, plaintext: &[u8], out: &mut [u8]) {
        let nonce = sodium::noise_nonce(counter);
        self.key
            .expose_secret(|key| sodium::aead_encrypt(out, plaintext, &[], &nonce, key));
    }

    /// Checks `tag` against `ciphertext` under `counter`. On success the
    /// record is [`Verified`], to be decrypted piecewise.
    pub(crate) fn verify<'a>(
        &'a self,
        counter: u64,
        ciphertext: &[u8],
        tag: &[u8; RECORD_TAG_SIZE],
    ) -> Option<Verified<'a>> {
        let nonce = sodium::noise_nonce(counter);
        let valid = self.key.expose_secret(|key| {
            sodium::tags_equal(&sodium::aead_tag(ciphertext, &nonce, key), tag)
        });
        valid.then_some(Verified { key: self, nonce })
    }
}

/// The plaintext's first [`HEAD`] bytes (`flag`, then the start of
/// `data`) in a stack buffer, and how many of them there are.
fn head(flag: u8, data: &[u8]) -> ([u8; HEAD], usize) {
    let head_len = (1 + data.len()).min(HEAD);
    // Message bytes, not key material: not wiped.
    let mut head = [0u8; HEAD];
    head[0] = flag;
    head[1..head_len].copy_from_slice(&data[..head_len - 1]);
    (head, head_len)
}

/// A [`RecordKey`] with the counter of the next record, Noise's `n`: the
/// state of one direction before it goes to a [`Sealer`](super::Sealer)
/// or an [`Opener`](super::Opener).
pub(crate) struct TransportKey {
    key: RecordKey,
    /// The next counter value; Noise reserves `u64::MAX`, so a key is
    /// exhausted when this reaches it.
    nonce: u64,
}

impl TransportKey {
    /// Takes a key from `bytes`, which it wipes.
    pub(crate) fn take(bytes: &mut [u8; 32]) -> TransportKey {
        TransportKey {
            key: RecordKey::take(bytes),
            nonce: 0,
        }
    }

    /// Moves the counter, for tests of its exhaustion.
    #[cfg(test)]
    pub(crate) fn set_nonce(&mut self, nonce: u64) {
        self.nonce = nonce;
    }

    /// The key and the counter of the next record.
    pub(crate) fn into_parts(self) -> (RecordKey, u64) {
        (self.key, self.nonce)
    }

    /// A copy of the key, for test vectors.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn key_for_testing(&self) -> [u8; 32] {
        self.key.key_for_testing()
    }

    /// How many more records this key may open.
    pub(crate) fn remaining(&self) -> u64 {
        u64::MAX - self.nonce
    }

    /// The counter of the next record.
    pub(crate) fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Checks `tag` against `ciphertext` under the current counter. On
    /// success the record is [`Verified`]: decrypt it piecewise, then
    /// [`advance`](Self::advance) the counter.
    pub(crate) fn verify<'a>(
        &'a self,
        ciphertext: &[u8],
        tag: &[u8; RECORD_TAG_SIZE],
    ) -> Option<Verified<'a>> {
        debug_assert!(self.remaining() > 0, "caller checks the counter");
        self.key.verify(self.nonce, ciphertext, tag)
    }

    /// Uses up the current counter value: a verified record was accepted.
    pub(crate) fn advance(&mut self) {
        self.nonce += 1;
    }
}

/// A record whose tag has been checked, to be decrypted by the opener.
pub(crate) struct Verified<'a> {
    key: &'a RecordKey,
    nonce: [u8; 12],
}

impl Verified<'_> {
    /// Decrypts ciphertext bytes that start at plaintext byte `offset` (a
    /// multiple of 64) from `input` into `output`.
    pub(crate) fn decrypt(&self, output: &mut [u8], input: &[u8], offset: usize) {
        self.key
            .key
            .expose_secret(|key| sodium::chacha20_xor(output, input, offset, &self.nonce, key));
    }

    /// [`decrypt`](Self::decrypt), appending the plaintext to `output`
    /// (written straight into its spare capacity, not zero-filled first).
    pub(crate) fn decrypt_append(&self, output: &mut Vec<u8>, input: &[u8], offset: usize) {
        self.key.key.expose_secret(|key| {
            sodium::chacha20_xor_append(output, input, offset, &self.nonce, key);
        });
    }

    /// [`decrypt`](Self::decrypt) in place.
    pub(crate) fn decrypt_in_place(&self, buf: &mut [u8], offset: usize) {
        self.key
            .key
            .expose_secret(|key| sodium::chacha20_xor_in_place(buf, offset, &self.nonce, key));
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordKey")
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportKey")
            .field("key", &"[REDACTED]")
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// The netstring+ header of a record of `len` bytes (at most 65,535):
/// upper-case hex digits without leading zeros, then `:`. Returns the
/// buffer and how many of its bytes are used.
pub(crate) fn frame_header(len: usize) -> ([u8; 5], usize) {
    debug_assert!(len <= super::MAX_RECORD);
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digits = header_digits(len);
    let mut header = [0u8; 5];
    for (i, slot) in header[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[(len >> shift) & 0xF];
    }
    header[digits] = b':';
    (header, digits + 1)
}

/// Hex digits of `len` in shortest form (`0` has one digit).
fn header_digits(len: usize) -> usize {
    let bits = usize::BITS - len.leading_zeros();
    (bits as usize).div_ceil(4).max(1)
}

/// Length of the netstring+ frame around a record of `len` bytes.
pub(crate) fn frame_len(len: usize) -> usize {
    header_digits(len) + 1 + len + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_are_shortest_upper_case_hex() {
        for (len, text) in [
            (0, "0:"),
            (17, "11:"),
            (0xAB, "AB:"),
            (0x100, "100:"),
            (65_535, "FFFF:"),
        ] {
            let (header, used) = frame_header(len);
            assert_eq!(&header[..used], text.as_bytes(), "len {len}");
            assert_eq!(frame_len(len), used + len + 1);
        }
    }

    #[test]
    fn sealing_flag_and_data_apart_equals_the_aead_of_both() {
        let data: Vec<u8> = (0..super::super::MAX_CHUNK)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        for len in [
            0,
            1,
            15,
            16,
            62,
            63,
            64,
            65,
            127,
            128,
            510,
            511,
            512,
            513,
            1000,
            4096,
            data.len(),
        ] {
            for flag in [0u8, 1, 2, 0xff] {
                const COUNTER: u64 = 0x0102_0304_0506;
                let (a, b) = (RecordKey::take(&mut [3; 32]), RecordKey::take(&mut [3; 32]));
                let mut split = vec![0u8; len + 17];
                a.seal(COUNTER, flag, &data[..len], &mut split);
                let plaintext = [&[flag][..], &data[..len]].concat();
                let mut whole = vec![0u8; len + 17];
                b.seal_plaintext(COUNTER, &plaintext, &mut whole);
                assert!(split == whole, "len {len}, flag {flag}");
                // Appending to a vector (here one that already holds a
                // frame header) writes the same record after what is there.
                let mut appended = b"FFFF:".to_vec();
                a.seal_append(COUNTER, flag, &data[..len], &mut appended);
                assert!(appended[5..] == whole[..], "append: len {len}, flag {flag}");
                assert_eq!(&appended[..5], b"FFFF:");
                // And it opens: the tag verifies, and decrypting in two
                // pieces gives the plaintext back.
                let mut c = TransportKey::take(&mut [3; 32]);
                c.set_nonce(COUNTER);
                let (ciphertext, tag) = split.split_at_mut(len + 1);
                let tag: &[u8; 16] = (&*tag).try_into().expect("16");
                let head = ciphertext.len().min(HEAD);
                let verified = c.verify(ciphertext, tag).expect("tag verifies");
                let mut opened = vec![0u8; head];
                verified.decrypt(&mut opened, &ciphertext[..head], 0);
                verified.decrypt_in_place(&mut ciphertext[head..], HEAD);
                c.advance();
                assert_eq!(c.nonce(), COUNTER + 1);
                ciphertext[..head].copy_from_slice(&opened);
                assert_eq!(ciphertext, &plaintext[..]);
                // Under another counter the tag does not verify.
                let (ciphertext, tag) = whole.split_at(len + 1);
                let tag: &[u8; 16] = tag.try_into().expect("16");
                assert!(a.verify(COUNTER + 1, ciphertext, tag).is_none());
                // libsodium's own decryption agrees.
                let mut d = TransportKey::take(&mut [3; 32]);
                d.set_nonce(COUNTER);
                let mut tampered = whole.clone();
                tampered[len / 2] ^= 1;
                let (ciphertext, tag) = tampered.split_at(len + 1);
                let tag: &[u8; 16] = tag.try_into().expect("16");
                assert!(d.verify(ciphertext, tag).is_none(), "len {len}: tampered");
                assert_eq!(d.nonce(), COUNTER);
                let mut out = vec![0u8; len + 1];
                assert!(sodium::aead_decrypt(
                    &mut out,
                    &whole,
                    &[],
                    &sodium::noise_nonce(COUNTER),
                    &[3; 32]
                ));
                assert_eq!(out, plaintext);
            }
        }
    }

    #[test]
    fn flags_round_trip_through_bytes() {
        for flag in [Flag::More, Flag::Last, Flag::Close] {
            assert_eq!(Flag::from_byte(flag as u8), Some(flag));
        }
        assert!((3..=255).all(|b| Flag::from_byte(b).is_none()));
    }
}
