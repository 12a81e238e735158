//! Filesystem layers for hoist.
//!
//! This crate extracts image layers into a root directory, records what a
//! build step changed there, and writes those changes as a compressed layer.
//! It does no network I/O.
#![deny(missing_docs)]
