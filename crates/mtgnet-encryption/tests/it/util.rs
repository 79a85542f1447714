//! Shared helpers: reading vectors and comparing bytes with a readable diff.

use serde::de::DeserializeOwned;

/// Reads `tests/vectors/<name>` at the workspace root into `T`.
pub(crate) fn vectors<T: DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/../../tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// Decodes lower-case hex from a vector file.
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex in vectors ({e}): {s}"))
}

/// Decodes hex of exactly `N` bytes.
pub(crate) fn unhex_array<const N: usize>(s: &str) -> [u8; N] {
    let bytes = unhex(s);
    bytes
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("expected {N} bytes, got {}: {s}", bytes.len()))
}

/// Asserts two byte strings are equal, printing both in hex otherwise.
#[track_caller]
pub(crate) fn assert_bytes_eq(what: &str, expected: &[u8], actual: &[u8]) {
    if expected != actual {
        panic!(
            "{what}: bytes differ\n  expected ({} bytes): {}\n  actual   ({} bytes): {}",
            expected.len(),
            hex::encode(expected),
            actual.len(),
            hex::encode(actual)
        );
    }
}

/// A netstring+ frame, written here because the framing crate is separate:
/// upper-case hex length, ':', payload, '\n'.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}
