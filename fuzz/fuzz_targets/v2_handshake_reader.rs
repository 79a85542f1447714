#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtgnet_encryption::fuzzing::v2_handshake_reader(data));
