//! The build engine of hoist.
//!
//! This crate runs the instructions of a parsed Dockerfile in a root
//! directory of its own and assembles the resulting layers into an image.
#![deny(missing_docs)]
