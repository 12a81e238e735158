//! The build engine of hoist.
//!
//! This crate runs the instructions of a parsed Dockerfile in a root
//! directory of its own and assembles the resulting layers into an image.
//! [`bases::plan_build`] resolves the stages with the ENV and `ONBUILD`
//! triggers of their base images. [`stage::build`] runs the stages of a build plan. It extracts each base
//! into a root under a temporary work directory and records one layer per
//! instruction that changed files. RUN steps go through [`sandbox`], after
//! [`run`] builds their command line and environment and [`user`] resolves
//! `USER` in the image. COPY and ADD go through [`copy`]. Base images come
//! from a [`stage::BaseImageSource`]: OCI layouts ([`stage::LayoutSource`])
//! or registries through a cache directory ([`source::RegistrySource`]).
//! [`context`] turns a directory or tarball into the build context, and
//! [`output`] finishes the built image and writes the output files.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use hoist_build::sandbox::Sandbox;
//! use hoist_build::bases::plan_build;
//! use hoist_build::stage::{BuildSettings, LayoutSource, build};
//! use hoist_dockerfile::stages::{BuildOptions, Platform as PlanPlatform};
//! use hoist_image::{ManifestFormat, Platform, write_oci_layout};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let parsed = hoist_dockerfile::parser::parse("FROM base\nRUN echo hi > /hi\n", "Dockerfile")?;
//! let typed = hoist_dockerfile::instructions::instructions(&parsed)?;
//! let platform = PlanPlatform { os: "linux".into(), architecture: "amd64".into(), variant: String::new() };
//! let options = BuildOptions {
//!     build_args: BTreeMap::new(),
//!     target: None,
//!     target_platform: platform.clone(),
//!     build_platform: platform,
//! };
//! let mut source = LayoutSource::default();
//! source.insert("base", "/var/tmp/base-layout".into(), Some("latest"));
//! let planned = plan_build(
//!     "Dockerfile",
//!     parsed.escape,
//!     &typed,
//!     &options,
//!     &Platform::linux_amd64(),
//!     &source,
//! )?;
//!
//! let settings = BuildSettings {
//!     file: "Dockerfile".into(),
//!     work_parent: "/var/tmp".into(),
//!     platform: Platform::linux_amd64(),
//!     build_args: BTreeMap::new(),
//!     compression: hoist_snapshot::Compression::Gzip { level: 6 },
//!     context: Some("/path/to/context".into()),
//!     snapshot: Default::default(),
//!     run_mounts: Default::default(),
//!     layer_mtime_epoch: None,
//! };
//! let output = build(&planned.plan, &settings, &Sandbox::locate()?, &planned.bases)?;
//! let layout = std::path::Path::new("/var/tmp/out");
//! write_oci_layout(&output.image, ManifestFormat::Oci, layout, &["latest"])?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod bases;
pub mod cleanup;
pub mod context;
pub mod copy;
mod metadata;
pub mod output;
pub mod run;
pub mod run_mounts;
pub mod sandbox;
pub mod snapshot;
pub mod source;
pub mod stage;
pub mod user;
