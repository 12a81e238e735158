//! Feeds arbitrary bytes to the parsers of image references, push destinations,
//! `WWW-Authenticate` challenges and `Retry-After` values.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_registry::fuzzing::registry_bytes(data));
