//! Registry credentials for hoist.
//!
//! This crate reads and writes Docker's `config.json` and podman's
//! `auth.json`, and finds the credentials that apply to a registry.
#![deny(missing_docs)]
