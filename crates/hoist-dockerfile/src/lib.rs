//! Dockerfile parsing for hoist.
//!
//! This crate reads Dockerfiles the way BuildKit does. It works on text
//! only, so it can check untrusted input. The one exception is [`read`],
//! which reads a Dockerfile from a path with a size limit.
//!
//! The steps follow the modules: [`parser`] builds the raw parse tree,
//! [`instructions`] types it, [`stages`] scopes ARG and ENV values, expands
//! them and builds the stage graph, and [`shell`] does the word expansion.
//! [`dockerignore`] decides which context paths a build leaves out.
//!
//! ```
//! let dockerfile = hoist_dockerfile::parser::parse("FROM alpine\nRUN echo hi\n", "Dockerfile")?;
//! assert_eq!(dockerfile.dump(), "(from \"alpine\")\n(run \"echo hi\")\n");
//! # Ok::<(), hoist_dockerfile::parser::ParseError>(())
//! ```
#![deny(missing_docs)]

pub mod dockerignore;
pub mod error_value;
pub mod instructions;
pub mod parser;
pub mod read;
pub mod shell;
pub mod stages;

#[doc(hidden)]
pub mod fuzzing;
