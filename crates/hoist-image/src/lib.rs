//! The OCI image model of hoist.
//!
//! This crate holds image configs, manifests and indexes, and writes images
//! as OCI image layouts and docker-archive tarballs.
#![deny(missing_docs)]
