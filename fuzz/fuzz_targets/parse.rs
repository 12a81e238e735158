//! Feeds arbitrary bytes to the Dockerfile parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_dockerfile::fuzzing::parse_bytes(data));
