#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtgnet_proto::fuzzing::request_parser(data));
