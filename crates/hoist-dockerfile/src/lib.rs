//! Dockerfile parsing for hoist.
//!
//! This crate reads Dockerfiles the way BuildKit does. It works on text only
//! and never touches the filesystem, so it can check untrusted input.
#![deny(missing_docs)]
