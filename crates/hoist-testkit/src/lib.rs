//! Real components for hoist's tests: local registries, offline base images
//! and peer tools for differential tests.
//!
//! Everything is synchronous (threads and child processes), so any test can
//! use it. Servers listen on 127.0.0.1 only, except a registry built with
//! [`RegistryBuilder::ipv6`], which listens on ::1. Files live in temporary
//! directories, except the base image cache in `/var/tmp/hoist-testbed/`.
//! The only outside access is debootstrap, which downloads the Debian base
//! image's packages from the machine's apt mirror once.
//!
//! ```no_run
//! use hoist_testkit::Registry;
//!
//! let registry = Registry::builder().tls().htpasswd("user", "secret").start()?;
//! let client = registry.client()?;
//! assert_eq!(client.get("/v2/", &[])?.status, 200);
//! # Ok::<(), hoist_testkit::Error>(())
//! ```
#![deny(missing_docs)]

pub mod buildah;
pub mod builder_image;
mod certs;
pub mod client;
pub mod compare;
mod dates;
mod error;
mod fault_proxy;
pub mod images;
mod process;
mod registry;
pub mod release_server;
pub mod testbed;
mod token_server;
pub mod tools;

pub use buildah::{Buildah, StorageDriver};
pub use client::{HttpResponse, RegistryClient};
pub use compare::{
    Aspect, Difference, DifferenceKind, Differences, Exception, FileKind, compare_rootfs,
    compare_rootfs_except,
};
pub use error::{Error, Result};
pub use fault_proxy::{Fault, FaultProxy};
pub use images::{
    BaseImage, BaseImageFiles, ManifestForm, PushedImage, base_image, push_base_image,
    push_base_images,
};
pub use registry::{AuthKind, Registry, RegistryBuilder};
pub use release_server::{ReleaseServer, ReleaseServerBuilder, Tool};
pub use testbed::{StateFiles, Testbed, TestbedBuilder};
pub use tools::{
    ImageSource, RegistryAccess, contained_command, skopeo_command, skopeo_inspect_config,
    skopeo_inspect_raw, skopeo_push, unpack_image,
};

/// Returns the SHA-256 digest of `bytes` as `sha256:<hex>`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
