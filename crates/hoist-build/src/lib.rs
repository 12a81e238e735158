//! The build engine of hoist.
//!
//! This crate runs the instructions of a parsed Dockerfile in a root
//! directory of its own and assembles the resulting layers into an image.
//! [`run`] turns a RUN instruction into a command, which [`sandbox`] runs
//! with a stage root as `/`, and [`user`]
//! resolves `USER` values against the image's own user database.
//! [`stage::build`] runs the stages of a build plan into an image.
#![deny(missing_docs)]

pub mod copy;
mod metadata;
pub mod run;
pub mod sandbox;
pub mod stage;
pub mod user;
