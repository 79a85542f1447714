//! Integration tests of mtgnet-encryption: vectors byte for byte, secrets, properties.

mod bench;
mod frames;
mod handshake;
mod keys;
mod props;
mod secrets;
mod transcript;
mod util;
mod v2_handshake;
mod v2_independent;
mod v2_props;
mod v2_records;
mod v2_vectors;
