//! Base images from registries, through a read-only cache that `hoist-warmer` fills.
//!
//! [`RegistrySource`] resolves a `FROM` reference in two steps. It first looks the
//! reference and platform up in the cache directory (Kaniko's `--cache-dir`). That cache
//! is an OCI image layout, and its `index.json` maps each reference that `hoist-warmer`
//! pulled to the image manifest, keyed by the `org.opencontainers.image.ref.name`
//! annotation (`registry/repository:tag` or `registry/repository@digest`) and the
//! platform, as `hoist_registry::BlobCache::record_reference` documents. When the manifest,
//! its config and every layer are in `blobs/sha256/`, the image is used from there
//! without any network access. Otherwise the image is pulled through `hoist-registry`
//! (mirrors, registry map, transport options, platform chosen from an index) into a
//! temporary directory that lives as long as the source, because the built image's base
//! layers point into it until they are pushed. The source never writes into the cache
//! directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hoist_image::{Image, Platform};
use hoist_registry::{BlobCache, Client, ClientOptions, Credentials, ImageReference};

use crate::cleanup::WorkDirGuard;
use crate::stage::BaseImageSource;

/// A failure to set up a [`RegistrySource`] or to resolve a base image through it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The temporary pull directory or the async runtime could not be created.
    #[error("failed to prepare base image pulls in {path}")]
    Setup {
        /// The directory involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The reference in `FROM` is not a valid image reference.
    #[error("invalid base image reference {reference:?}")]
    Reference {
        /// The reference as written.
        reference: String,
        /// The cause.
        #[source]
        source: Box<hoist_registry::Error>,
    },
    /// The cache directory could not be read.
    #[error("failed to read the base image cache {path}")]
    Cache {
        /// The cache directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<hoist_registry::Error>,
    },
    /// Every attempt to pull the image failed.
    #[error("failed to pull {reference} after {attempts} attempt(s)")]
    Pull {
        /// The reference pulled.
        reference: String,
        /// The attempts made, the first included.
        attempts: u32,
        /// The error of the last attempt.
        #[source]
        source: Box<hoist_registry::Error>,
    },
}

/// The settings of a [`RegistrySource`].
#[derive(Debug, Clone)]
pub struct RegistrySourceOptions {
    /// Transport, mirrors and retries of each request, for pulls.
    pub client: ClientOptions,
    /// Credentials for the registries.
    pub credentials: Credentials,
    /// The cache directory that `hoist-warmer` filled, read only; `None` for no cache.
    pub cache_dir: Option<PathBuf>,
    /// Repeats of a whole pull after it failed (Kaniko's `--image-download-retry`), on top
    /// of the retries of single requests that `client` sets.
    pub download_retries: u32,
    /// The wait before the first repeated pull; each later wait doubles it.
    pub retry_backoff: Duration,
    /// The directory under which the temporary pull directory is created.
    pub work_parent: PathBuf,
}

/// Base images resolved through a cache directory, then registries.
#[derive(Debug)]
pub struct RegistrySource {
    client: Client,
    cache: Option<BlobCache>,
    pulls: BlobCache,
    pull_dir: tempfile::TempDir,
    _pull_dir_guard: WorkDirGuard,
    runtime: tokio::runtime::Runtime,
    download_retries: u32,
    retry_backoff: Duration,
    origins: Mutex<BTreeMap<String, ImageReference>>,
}

impl RegistrySource {
    /// Creates the source and its temporary pull directory under `options.work_parent`.
    /// Nothing is contacted until the first [`BaseImageSource::resolve`].
    pub fn new(options: RegistrySourceOptions) -> Result<Self, SourceError> {
        let setup_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SourceError::Setup { path, source }
        };
        let pull_dir = tempfile::Builder::new()
            .prefix("hoist-pull-")
            .tempdir_in(&options.work_parent)
            .map_err(setup_error(&options.work_parent))?;
        let pull_dir_guard = WorkDirGuard::register(pull_dir.path());
        let pulls = BlobCache::open(pull_dir.path()).map_err(|source| SourceError::Setup {
            path: pull_dir.path().to_path_buf(),
            source: std::io::Error::other(source.to_string()),
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(setup_error(pull_dir.path()))?;
        // The cache is only read, so nothing is created in it: a missing directory is empty.
        let cache = options.cache_dir.as_deref().map(BlobCache::at);
        Ok(Self {
            client: Client::new(options.client, options.credentials),
            cache,
            pulls,
            pull_dir,
            _pull_dir_guard: pull_dir_guard,
            runtime,
            download_retries: options.download_retries,
            retry_backoff: options.retry_backoff,
            origins: Mutex::new(BTreeMap::new()),
        })
    }

    /// Returns the directory that pulled blobs are written to.
    pub fn pull_dir(&self) -> &Path {
        self.pull_dir.path()
    }

    /// Returns, for each base layer resolved so far, the reference (pinned to its
    /// manifest digest) it came from, for cross-repository mounts on push.
    pub fn layer_origins(&self) -> BTreeMap<String, ImageReference> {
        self.lock_origins().clone()
    }

    /// Resolves `reference` for `platform`: from the cache when it has the whole image,
    /// else by pulling it.
    pub fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Image, SourceError> {
        let parsed: ImageReference =
            reference.parse().map_err(|source| SourceError::Reference {
                reference: reference.to_owned(),
                source: Box::new(source),
            })?;
        if let Some(image) = self.cached_image(&parsed, platform)? {
            tracing::info!(reference = %parsed, %platform, "base image found in the cache directory");
            return Ok(image);
        }
        let pulled = self.pull_with_retries(&parsed, platform)?;
        self.remember_origins(&pulled.image, &pulled.reference);
        Ok(pulled.image)
    }

    fn cached_image(
        &self,
        reference: &ImageReference,
        platform: &Platform,
    ) -> Result<Option<Image>, SourceError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let cache_error = |source| SourceError::Cache {
            path: cache.root().to_path_buf(),
            source: Box::new(source),
        };
        let Some(manifest) = cache
            .lookup_reference(reference, platform)
            .map_err(cache_error)?
        else {
            tracing::info!(reference = %reference, %platform, "base image not in the cache directory, pulling it");
            return Ok(None);
        };
        let image = cache
            .load_image(reference, &manifest)
            .map_err(cache_error)?;
        if image.is_none() {
            tracing::warn!(reference = %reference, digest = %manifest.digest, "cached base image is incomplete, pulling it");
        }
        if let Some(image) = &image {
            self.remember_origins(image, &reference.with_digest(manifest.digest.as_ref()));
        }
        Ok(image)
    }

    fn pull_with_retries(
        &self,
        reference: &ImageReference,
        platform: &Platform,
    ) -> Result<hoist_registry::PulledImage, SourceError> {
        let attempts = self.download_retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            let outcome = self
                .runtime
                .block_on(self.client.pull(reference, platform, &self.pulls));
            match outcome {
                Ok(pulled) => return Ok(pulled),
                Err(error) if attempt < attempts => {
                    let wait = self
                        .retry_backoff
                        .saturating_mul(1 << (attempt - 1).min(16));
                    tracing::warn!(reference = %reference, attempt, %error, wait_ms = wait.as_millis() as u64, "pull failed, retrying");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(source) => {
                    return Err(SourceError::Pull {
                        reference: reference.to_string(),
                        attempts: attempt,
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    fn remember_origins(&self, image: &Image, origin: &ImageReference) {
        let mut origins = self.lock_origins();
        for layer in image.layers() {
            origins
                .entry(layer.digest.to_string())
                .or_insert_with(|| origin.clone());
        }
    }

    fn lock_origins(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ImageReference>> {
        self.origins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl BaseImageSource for RegistrySource {
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.resolve_image(reference, platform)?)
    }
}
