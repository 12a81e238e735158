//! Feeds arbitrary bytes to the shell-word lexer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_dockerfile::fuzzing::expand_bytes(data));
