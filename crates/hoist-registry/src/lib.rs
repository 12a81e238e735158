//! Registry client for hoist.
//!
//! This crate pulls images from OCI registries and pushes images to them.
#![deny(missing_docs)]
