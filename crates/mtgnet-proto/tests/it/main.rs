//! Integration tests of `mtgnet-proto`, built as one test binary.

mod framing;
mod messages;
mod pair;
