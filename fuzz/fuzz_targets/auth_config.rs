//! Parses arbitrary bytes as a Docker `config.json` and a credential helper's output, and
//! stores a login in them as `hoist-login` does.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_auth::fuzzing::config_bytes(data));
