//! Dockerfile parsing for hoist.
//!
//! This crate reads Dockerfiles the way BuildKit does. It works on text only
//! and never touches the filesystem, so it can check untrusted input.
//!
//! ```
//! let dockerfile = hoist_dockerfile::parser::parse("FROM alpine\nRUN echo hi\n", "Dockerfile")?;
//! assert_eq!(dockerfile.dump(), "(from \"alpine\")\n(run \"echo hi\")\n");
//! # Ok::<(), hoist_dockerfile::parser::ParseError>(())
//! ```
#![deny(missing_docs)]

pub mod dockerignore;
pub mod instructions;
pub mod parser;
pub mod shell;
pub mod stages;

#[doc(hidden)]
pub mod fuzzing;
