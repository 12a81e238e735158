//! The OCI image model of hoist and its outputs.
//!
//! An [`Image`] is an [`ImageConfig`] and the [`Layer`]s its `rootfs.diff_ids` lists, each
//! layer pointing at the file that contains its blob. [`Image::render`] serializes the config and
//! builds the manifest in one [`ManifestFormat`], which fixes every media type, so an image
//! never mixes OCI and Docker types. The same image always renders to the same bytes.
//!
//! Outputs are written atomically: [`write_oci_layout`] writes an OCI image layout directory,
//! [`write_docker_archive`] a tarball in the format of `docker save`. The tests check both with
//! skopeo 1.9.3 and umoci 0.4.7, the Debian 12 versions. [`read_oci_layout`] and
//! [`read_docker_archive`] read them back and check every blob, for pushing, and [`read_image`]
//! picks one of the two by the path. Base images come from a registry as a
//! [`ManifestDocument`]: an image manifest, or an index whose entry for a [`Platform`]
//! [`Index::select`] picks.
//!
//! ```no_run
//! use hoist_image::{History, Image, ManifestFormat, Platform, write_oci_layout};
//!
//! let mut image = Image::scratch(&Platform::linux_amd64());
//! image.config_mut().config.cmd = Some(vec!["/app".to_owned()]);
//! image.add_empty_history(History {
//!     created_by: Some("CMD [\"/app\"]".to_owned()),
//!     ..History::default()
//! });
//! let dir = std::path::Path::new("/var/tmp/hoist-example/layout");
//! write_oci_layout(&image, ManifestFormat::Oci, dir, &["latest"])?;
//! # Ok::<(), hoist_image::WriteError>(())
//! ```
#![deny(missing_docs)]

mod archive;
mod atomic;
mod config;
mod digest;
mod error;
mod image;
mod layout;
mod manifest;
pub mod media;
mod platform;
mod source;
mod verify;

#[doc(hidden)]
pub mod fuzzing;

pub use archive::{read_docker_archive, write_docker_archive};
pub use config::{Healthcheck, History, ImageConfig, RootFs, RuntimeConfig};
pub use digest::{DigestingReader, digest_bytes, digest_reader, sha256_hex};
pub use error::{ReadError, WriteError, printable};
pub use image::{BlobLocation, Image, ImageError, Layer, LoadedImage, RenderedImage};
pub use layout::{read_oci_layout, write_oci_layout};
pub use manifest::{
    Descriptor, DescriptorPlatform, Index, Manifest, ManifestDocument, ManifestError,
    REF_NAME_ANNOTATION,
};
pub use media::{Compression, ManifestFormat, MediaTypeError};
pub use oci_spec::image::Digest;
pub use platform::{Platform, PlatformError};
pub use source::read_image;
