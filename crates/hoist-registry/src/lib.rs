//! Registry client for hoist: pulls base images and pushes built images over the OCI
//! distribution API.
//!
//! Blob checks (`HEAD`), blob downloads, cross-repository mounts and manifest uploads go
//! through `oci-client` 0.18, one client per registry, each call inside hoist's retry loop.
//! hoist adds what that crate lacks. Its own token flow (`auth.rs`) requests every scope a
//! request needs, exchanges `identitytoken` refresh tokens and renews a token on a 401.
//! Before each call hoist puts that token in `oci-client`'s token cache, so `oci-client`
//! never fetches tokens itself. hoist takes a declined mount (202) as a cue to upload,
//! reads manifests with a size limit, streams uploads from files in bounded memory with a
//! configurable chunk size, and verifies every downloaded blob's digest and size. A
//! registry that needs a client certificate (which `oci-client` cannot send), or whose
//! tokens `oci-client`'s cache would drop, is served by hoist's own `reqwest` requests.
//! The crate's README lists the split. Reference parsing follows Docker's rules through
//! `oci-spec`.
//!
//! A [`BlobCache`] directory is an OCI image layout. Pulls verify each blob and store it as
//! `blobs/sha256/<hex>`, image manifests and configs included. `hoist-warmer` also records
//! each reference it pulled in `index.json` ([`CACHE_INDEX_FILE`]), an OCI image index
//! whose entries are the image manifests with their `platform` and an
//! `org.opencontainers.image.ref.name` annotation. That annotation is the normalized
//! reference: `registry/repository:tag` (`:latest` when the reference has no tag), or
//! `registry/repository@digest` when it has a digest. [`BlobCache::lookup_reference`] and
//! [`BlobCache::load_image`] read a whole image from there without a registry.
//!
//! ```no_run
//! use hoist_image::Platform;
//! use hoist_registry::{BlobCache, Client, ClientOptions, Credentials, ImageReference};
//!
//! # async fn example() -> Result<(), hoist_registry::Error> {
//! let client = Client::new(ClientOptions::default(), Credentials::Anonymous);
//! let reference: ImageReference = "registry.example/base/debian:bookworm".parse()?;
//! let cache = BlobCache::open("/var/tmp/hoist-cache")?;
//! let pulled = client.pull(&reference, &Platform::linux_amd64(), &cache).await?;
//! println!("{}", pulled.manifest.digest);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod api;
mod auth;
#[cfg(feature = "clap")]
pub mod cli;
mod client;
mod error;
mod oci;
mod progress;
mod pull;
mod push;
mod reference;
mod references;
mod retry;
mod transport;

#[doc(hidden)]
pub mod fuzzing;

pub use client::{
    Client, ClientOptions, Credentials, DEFAULT_MAX_CONCURRENCY, TransferStats, UploadMode,
};
pub use error::{Error, Result};
pub use progress::{Direction, Progress};
pub use pull::{BlobCache, FetchedManifest, MAX_MANIFEST_SIZE, PulledImage, host_platform};
pub use push::{PushOutcome, check_push_destinations};
pub use reference::{DEFAULT_REGISTRY, ImageReference, api_host};
pub use references::CACHE_INDEX_FILE;
pub use retry::RetryPolicy;
pub use transport::{TransportOptions, parse_client_certificate, parse_registry_certificate};
