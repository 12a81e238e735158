//! Pulls: resolving a reference to a manifest, choosing the platform from an index, and
//! streaming blobs into a content-addressed cache with their digest and size verified.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hoist_image::{Descriptor, Image, ImageConfig, Layer, Manifest, ManifestDocument, Platform};
use reqwest::header::{self, HeaderName};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::api::{ApiRequest, MANIFEST_ACCEPT, RegistryApi, header_text, read_stream_limited};
use crate::auth::repository_scope;
use crate::client::Client;
use crate::error::{Error, Result, io_error};
use crate::oci::{BlobStream, is_digest_failure};
use crate::progress::Direction;
use crate::reference::ImageReference;
use crate::retry::is_transient_status;

/// Largest manifest, index or config read into memory, in bytes.
pub const MAX_MANIFEST_SIZE: u64 = 16 * 1024 * 1024;

/// Returns the platform of this machine (`linux/amd64` on x86-64), the default platform
/// chosen from an index.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: std::env::consts::OS.to_owned(),
        architecture: architecture.to_owned(),
        variant: None,
    }
}

/// A directory of blobs named by digest: `blobs/sha256/<hex>`, the blob layout of an OCI
/// image layout. A file is only ever renamed into place after its digest and size were
/// verified, so every file present is complete.
#[derive(Clone, Debug)]
pub struct BlobCache {
    root: PathBuf,
}

impl BlobCache {
    /// Opens the cache at `root`, creating its directories.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(io_error("create directory", &blobs))?;
        Ok(Self { root })
    }

    /// Returns a handle on the cache at `root` without creating anything, for a cache that
    /// is only read. A missing directory is a cache without blobs.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Returns the cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the path of the blob `digest` (`sha256:<hex>`), present or not, or `None`
    /// for digests that are not SHA-256 with 64 lowercase hex digits.
    pub fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| self.root.join("blobs").join("sha256").join(hex))
    }

    /// Tells whether the blob is in the cache with the expected size.
    pub fn contains(&self, digest: &str, size: u64) -> bool {
        self.path(digest)
            .and_then(|path| std::fs::metadata(path).ok())
            .is_some_and(|metadata| metadata.is_file() && metadata.len() == size)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
}

/// The mode of cache files before the umask: readable by every user, because a cache that
/// `hoist-warmer` fills is read by executors that may run as other users.
const CACHE_FILE_MODE: u32 = 0o644;

/// Creates a temporary file in `dir` that is renamed into the cache once complete. It gets
/// its final mode at creation. The bytes it contains before the rename are the same ones
/// that every user can read after it, so there is nothing to keep private meanwhile.
pub(crate) fn cache_temp_file(dir: &Path, prefix: &str) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(CACHE_FILE_MODE))
        .tempfile_in(dir)
        .map_err(io_error("create temporary file in", dir))
}

/// A manifest as a registry served it.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The exact bytes, whose SHA-256 is the digest.
    pub bytes: Bytes,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// The `Content-Type` the registry sent, when it sent one.
    pub content_type: Option<String>,
    /// The parsed document.
    pub document: ManifestDocument,
}

/// A pulled image: its manifest and config, and its layers in the cache.
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The reference pulled, pinned to the image manifest's digest.
    pub reference: ImageReference,
    /// The digest of the index when the reference named one, else of the manifest.
    pub resolved_digest: String,
    /// The image manifest.
    pub manifest: FetchedManifest,
    /// The image config's exact bytes.
    pub config_json: Bytes,
    /// The image model, whose layers point into the cache.
    pub image: Image,
}

impl Client {
    /// Fetches the manifest or index `reference` names, sending every manifest media type
    /// hoist reads in `Accept`, and checks its digest.
    pub async fn fetch_manifest(&self, reference: &ImageReference) -> Result<FetchedManifest> {
        let api = self.api(reference.registry()).await?;
        fetch_manifest(&api, reference).await
    }

    /// Pulls `reference` for `platform`: the manifest (chosen from an index when the
    /// reference names one), the config, and every layer into `cache`.
    ///
    /// When [`ClientOptions::registry_mirrors`](crate::ClientOptions::registry_mirrors)
    /// lists mirrors for the reference's registry, they are tried first, in order, and the
    /// registry itself last unless `mirror_fallback` is off. The error of the last source
    /// tried is returned.
    pub async fn pull(
        &self,
        reference: &ImageReference,
        platform: &Platform,
        cache: &BlobCache,
    ) -> Result<PulledImage> {
        let sources = pull_sources(
            reference,
            &self.options.registry_mirrors,
            self.options.mirror_fallback,
        );
        let mut last_error = None;
        for source in &sources {
            match self.pull_from(source, platform, cache).await {
                Ok(pulled) => return Ok(pulled),
                Err(error) => {
                    tracing::warn!(reference = %reference, source = %source, %error, "pull from source failed");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::InvalidReference {
            reference: reference.to_string(),
            reason: "no registry to pull from: every mirror was skipped".to_owned(),
        }))
    }

    async fn pull_from(
        &self,
        reference: &ImageReference,
        platform: &Platform,
        cache: &BlobCache,
    ) -> Result<PulledImage> {
        let api = self.api(reference.registry()).await?;
        let top = fetch_manifest(&api, reference).await?;
        let resolved_digest = top.digest.clone();
        let manifest = match &top.document {
            ManifestDocument::Image(_) => top,
            ManifestDocument::Index(index) => {
                let entry = index.select(platform).map_err(|source| Error::Manifest {
                    registry: reference.registry().to_owned(),
                    reference: reference.to_string(),
                    source: Box::new(source),
                })?;
                let pinned = reference.with_digest(entry.digest.as_ref());
                fetch_manifest(&api, &pinned).await?
            }
        };
        let ManifestDocument::Image(image_manifest) = &manifest.document else {
            return Err(nested_index_error(reference));
        };
        let pinned = reference.with_digest(&manifest.digest);

        let config_json = self.fetch_config(&api, &pinned, image_manifest).await?;
        let config =
            image_manifest
                .read_config(&config_json)
                .map_err(|source| Error::Manifest {
                    registry: reference.registry().to_owned(),
                    reference: pinned.to_string(),
                    source: Box::new(source),
                })?;
        self.fetch_layers(&api, &pinned, &image_manifest.layers, cache)
            .await?;
        store_document(cache, &manifest.digest, &manifest.bytes)?;
        store_document(cache, image_manifest.config.digest.as_ref(), &config_json)?;

        let image = build_image(reference, image_manifest, config, cache)?;
        tracing::info!(reference = %reference, digest = %manifest.digest, layers = image_manifest.layers.len(), "pulled image");
        Ok(PulledImage {
            reference: pinned,
            resolved_digest,
            manifest,
            config_json,
            image,
        })
    }

    async fn fetch_config(
        &self,
        api: &RegistryApi,
        reference: &ImageReference,
        manifest: &Manifest,
    ) -> Result<Bytes> {
        let digest = manifest.config.digest.to_string();
        let (url, stream) = open_blob(api, reference, &digest, true).await?;
        read_stream_limited(api, &url, stream, "image config", MAX_MANIFEST_SIZE).await
    }

    /// Fetches the layers missing from the cache, at most `max_concurrency` at a time, once
    /// they fit in the free space of the cache.
    async fn fetch_layers(
        &self,
        api: &RegistryApi,
        reference: &ImageReference,
        layers: &[Descriptor],
        cache: &BlobCache,
    ) -> Result<()> {
        check_free_space(api, reference, layers, cache)?;
        let concurrency = self.options.max_concurrency.max(1);
        futures::stream::iter(layers)
            .map(|layer| fetch_blob_to_cache(api, reference, layer, cache))
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// Lists where to pull `reference` from: its registry's mirrors in order, then the
/// registry itself when `fallback` is on or it has no mirrors.
fn pull_sources(
    reference: &ImageReference,
    mirrors: &BTreeMap<String, Vec<String>>,
    fallback: bool,
) -> Vec<ImageReference> {
    let listed = mirrors
        .get(reference.registry())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut sources: Vec<ImageReference> = listed
        .iter()
        .map(|mirror| {
            ImageReference::new(
                mirror,
                reference.repository(),
                reference.tag(),
                reference.digest(),
            )
        })
        .collect();
    if fallback || sources.is_empty() {
        sources.push(reference.clone());
    }
    sources
}

fn pull_scopes(reference: &ImageReference) -> Vec<String> {
    vec![repository_scope(reference.repository(), "pull")]
}

fn nested_index_error(reference: &ImageReference) -> Error {
    Error::Manifest {
        registry: reference.registry().to_owned(),
        reference: reference.to_string(),
        source: Box::new(hoist_image::ManifestError::UnsupportedMediaType(
            "an index entry that is itself an index".to_owned(),
        )),
    }
}

async fn fetch_manifest(api: &RegistryApi, reference: &ImageReference) -> Result<FetchedManifest> {
    let url = api.url(&format!(
        "/v2/{}/manifests/{}",
        reference.repository(),
        reference.manifest_reference()
    ));
    let request = ApiRequest::new(Method::GET, url, pull_scopes(reference))
        .header(header::ACCEPT, MANIFEST_ACCEPT);
    let response = api.send_expecting(&request, &[StatusCode::OK]).await?;
    let content_type = header_text(response.headers(), header::CONTENT_TYPE);
    let announced = header_text(
        response.headers(),
        HeaderName::from_static("docker-content-digest"),
    );
    let bytes = api
        .read_limited(&request, response, "manifest", MAX_MANIFEST_SIZE)
        .await?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));

    let expected = reference.digest().map(ToOwned::to_owned).or(announced);
    if let Some(expected) = expected.filter(|value| value.starts_with("sha256:"))
        && expected != digest
    {
        return Err(Error::ManifestDigest {
            registry: reference.registry().to_owned(),
            reference: reference.to_string(),
            expected,
            actual: digest,
        });
    }
    let document = ManifestDocument::parse(&bytes, content_type.as_deref()).map_err(|source| {
        Error::Manifest {
            registry: reference.registry().to_owned(),
            reference: reference.to_string(),
            source: Box::new(source),
        }
    })?;
    Ok(FetchedManifest {
        bytes,
        digest,
        content_type,
        document,
    })
}

/// Checks that the layers missing from the cache declare at most the bytes free on the
/// cache's file system, in total. A manifest may declare any size, and the download stops
/// only past that size, so without this check a registry that keeps sending fills the disk.
// NOTE: the free space is that of unprivileged users, so root may be refused a few percent
// of the disk that it could use.
fn check_free_space(
    api: &RegistryApi,
    reference: &ImageReference,
    layers: &[Descriptor],
    cache: &BlobCache,
) -> Result<()> {
    let mut missing: Vec<&Descriptor> = layers
        .iter()
        .filter(|layer| !cache.contains(layer.digest.as_ref(), layer.size))
        .collect();
    missing.sort_by(|a, b| a.digest.as_ref().cmp(b.digest.as_ref()));
    missing.dedup_by(|a, b| a.digest == b.digest);
    let Some(largest) = missing.iter().max_by_key(|layer| layer.size) else {
        return Ok(());
    };
    let total = missing
        .iter()
        .fold(0u64, |total, layer| total.saturating_add(layer.size));
    let blobs = cache.blobs_dir();
    let available =
        fs4::available_space(&blobs).map_err(io_error("read the free space of", &blobs))?;
    if total > available {
        tracing::error!(registry = %api.registry, digest = %largest.digest, total, available, "layers are larger than the free space of the cache");
        return Err(Error::InsufficientSpace {
            registry: api.registry.clone(),
            repository: reference.repository().to_owned(),
            digest: largest.digest.to_string(),
            size: total,
            available,
            path: blobs,
        });
    }
    Ok(())
}

/// Fetches one blob into the cache unless it is there, retrying transient failures.
async fn fetch_blob_to_cache(
    api: &RegistryApi,
    reference: &ImageReference,
    descriptor: &Descriptor,
    cache: &BlobCache,
) -> Result<()> {
    let digest = descriptor.digest.to_string();
    if cache.contains(&digest, descriptor.size) {
        tracing::debug!(%digest, "blob already cached");
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(progress) = &api.progress {
            progress.start(&digest, descriptor.size, Direction::Pull);
        }
        let outcome = fetch_blob_once(api, reference, descriptor, cache).await;
        if let Some(progress) = &api.progress {
            progress.finish(&digest, outcome.is_ok());
        }
        match outcome {
            Err(error) if is_retryable(&error) && api.retry.allows_another(attempt) => {
                let wait = api.retry.backoff(attempt, None);
                tracing::warn!(registry = %api.registry, %digest, attempt, %error, "retrying blob download");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Tells whether a failed transfer may succeed when repeated. Digest mismatches are not
/// retried: a registry that stores a corrupt blob serves it again.
pub(crate) fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Request { .. } => true,
        Error::Status { status, .. } => is_transient_status(*status),
        _ => false,
    }
}

/// Streams one blob into a temporary file in the cache, hashing and counting as it goes,
/// and renames it into place only when digest and size match.
async fn fetch_blob_once(
    api: &RegistryApi,
    reference: &ImageReference,
    descriptor: &Descriptor,
    cache: &BlobCache,
) -> Result<()> {
    let digest = descriptor.digest.to_string();
    let target = cache.path(&digest).ok_or_else(|| Error::InvalidReference {
        reference: format!("{reference}@{digest}"),
        reason: "only sha256 blob digests are supported".to_owned(),
    })?;
    let (url, mut stream) = open_blob(api, reference, &digest, false).await?;

    let blobs = cache.blobs_dir();
    let mut file = cache_temp_file(&blobs, ".partial-")?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mismatch = |actual_digest: String, actual_size: u64| Error::BlobMismatch {
        registry: api.registry.clone(),
        repository: reference.repository().to_owned(),
        expected_digest: digest.clone(),
        actual_digest,
        expected_size: descriptor.size,
        actual_size,
    };
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // oci-client checks the digest at the end too; the check below names both.
            Err(error) if is_digest_failure(&error) => break,
            Err(error) => return Err(api.stream_error(&url, error)),
        };
        size += chunk.len() as u64;
        if let Some(progress) = &api.progress {
            progress.advance(&digest, chunk.len() as u64);
        }
        if size > descriptor.size {
            return Err(mismatch("(not computed: too many bytes)".to_owned(), size));
        }
        hasher.update(&chunk);
        // NOTE: a blocking write on the async runtime; the cache is a local disk and each
        // write is one network chunk, so it stays short.
        file.write_all(&chunk)
            .map_err(io_error("write", file.path().to_path_buf()))?;
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest || size != descriptor.size {
        tracing::error!(registry = %api.registry, %digest, %actual, size, "blob digest mismatch, discarded");
        return Err(mismatch(actual, size));
    }
    file.as_file()
        .sync_all()
        .map_err(io_error("sync", file.path().to_path_buf()))?;
    file.persist(&target)
        .map_err(|error| io_error("rename into place", &target)(error.error))?;
    tracing::info!(registry = %api.registry, %digest, size, "blob downloaded");
    Ok(())
}

/// Starts the download of the blob `digest`: through `oci-client`, or with hoist's own
/// request for a registry it cannot serve. Returns the blob's URL, for messages, and its
/// bytes. With `retry` off, transient failures are left to the caller.
async fn open_blob(
    api: &RegistryApi,
    reference: &ImageReference,
    digest: &str,
    retry: bool,
) -> Result<(String, BlobStream)> {
    let repository = reference.repository();
    let url = api.url(&format!("/v2/{repository}/blobs/{digest}"));
    let scopes = pull_scopes(reference);
    if let Some(oci) = api.oci_for(&scopes).await? {
        let stream = api
            .oci_open_blob(oci, repository, digest, &scopes, retry)
            .await?;
        return Ok((url, stream));
    }
    let mut request = ApiRequest::new(Method::GET, url.clone(), scopes);
    if !retry {
        request = request.without_retry();
    }
    let response = api.send_expecting(&request, &[StatusCode::OK]).await?;
    let stream = response
        .bytes_stream()
        .map_err(std::io::Error::other)
        .boxed();
    Ok((url, stream))
}

/// Writes a small document (manifest or config) into the cache by digest.
fn store_document(cache: &BlobCache, digest: &str, bytes: &[u8]) -> Result<()> {
    let Some(target) = cache.path(digest) else {
        return Ok(());
    };
    if cache.contains(digest, bytes.len() as u64) {
        return Ok(());
    }
    let blobs = cache.blobs_dir();
    let mut file = cache_temp_file(&blobs, ".partial-")?;
    file.write_all(bytes)
        .map_err(io_error("write", file.path().to_path_buf()))?;
    file.persist(&target)
        .map_err(|error| io_error("rename into place", &target)(error.error))?;
    Ok(())
}

pub(crate) fn build_image(
    reference: &ImageReference,
    manifest: &Manifest,
    config: ImageConfig,
    cache: &BlobCache,
) -> Result<Image> {
    let invalid = |reason: String| Error::Manifest {
        registry: reference.registry().to_owned(),
        reference: reference.to_string(),
        source: Box::new(hoist_image::ManifestError::UnsupportedMediaType(reason)),
    };
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (descriptor, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let path = cache
            .path(descriptor.digest.as_ref())
            .ok_or_else(|| invalid(format!("layer digest {}", descriptor.digest)))?;
        let layer = Layer::from_descriptor(descriptor, diff_id.clone(), path)
            .map_err(|error| invalid(error.to_string()))?;
        layers.push(layer);
    }
    Image::from_parts(config, layers).map_err(|error| invalid(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrors() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(
            "docker.io".to_owned(),
            vec![
                "mirror-a.example".to_owned(),
                "mirror-b.example:5000".to_owned(),
            ],
        )])
    }

    #[test]
    fn mirrors_come_before_registry() {
        let reference: ImageReference = "busybox:1.36".parse().unwrap();
        let sources = pull_sources(&reference, &mirrors(), true);
        let texts: Vec<String> = sources.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "mirror-a.example/library/busybox:1.36",
                "mirror-b.example:5000/library/busybox:1.36",
                "docker.io/library/busybox:1.36",
            ]
        );
    }

    #[test]
    fn fallback_off_skips_registry() {
        let reference: ImageReference = "busybox".parse().unwrap();
        let sources = pull_sources(&reference, &mirrors(), false);
        assert_eq!(sources.len(), 2);
        assert!(
            sources
                .iter()
                .all(|source| source.registry() != "docker.io")
        );
    }

    #[test]
    fn unmapped_registry_is_its_own_source() {
        let reference: ImageReference = "r.example/app:1".parse().unwrap();
        let sources = pull_sources(&reference, &mirrors(), false);
        assert_eq!(sources, [reference]);
    }

    #[test]
    fn cache_path_rejects_bad_digests() {
        let cache = BlobCache {
            root: PathBuf::from("/cache"),
        };
        assert!(cache.path(&format!("sha256:{}", "a".repeat(64))).is_some());
        assert!(cache.path("sha256:../../etc/passwd").is_none());
        assert!(cache.path(&format!("sha512:{}", "a".repeat(128))).is_none());
        assert!(cache.path(&format!("sha256:{}", "A".repeat(64))).is_none());
    }
}
