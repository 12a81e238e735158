//! The reference index of a [`BlobCache`]: which image manifest a reference resolved to
//! for a platform, so that a build finds a warmed base image without asking a registry.
//!
//! The index is `<cache>/index.json`, an OCI image index, next to an `oci-layout` file, so
//! the cache directory is also an OCI image layout. Each entry is the descriptor of an
//! image manifest stored in `blobs/sha256/`, with its `platform` and the
//! `org.opencontainers.image.ref.name` annotation set to the normalized reference:
//! `registry/repository:tag`, or `registry/repository@digest` when the reference has a
//! digest. A reference without a tag is recorded as `:latest`, and Docker Hub references
//! carry `docker.io/library/` as usual. There is at most one entry per reference and
//! platform, and a later pull replaces it. The file is rewritten atomically (a temporary
//! file renamed into place) under an exclusive lock on `index.json.lock`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hoist_image::{
    Descriptor, DescriptorPlatform, Image, Index, ManifestDocument, Platform, REF_NAME_ANNOTATION,
};

use crate::error::{Error, Result, io_error};
use crate::pull::{BlobCache, build_image, cache_temp_file};
use crate::reference::ImageReference;

/// The name of the reference index in the cache directory.
pub const CACHE_INDEX_FILE: &str = "index.json";

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

impl BlobCache {
    /// Records that `reference` resolved to the image manifest `manifest` for `platform`,
    /// replacing an earlier entry for the same reference and platform.
    pub fn record_reference(
        &self,
        reference: &ImageReference,
        platform: &Platform,
        manifest: &Descriptor,
    ) -> Result<()> {
        let _lock = self.lock_index()?;
        write_if_missing(&self.root().join(LAYOUT_FILE), LAYOUT_CONTENT)?;
        let mut index = self.read_index()?.unwrap_or_else(empty_index);
        let name = index_name(reference);
        index
            .manifests
            .retain(|entry| !entry_matches_exactly(entry, &name, platform));
        let mut entry = manifest.clone();
        entry.platform = Some(descriptor_platform(platform));
        entry.annotations = Some(BTreeMap::from([(REF_NAME_ANNOTATION.to_owned(), name)]));
        index.manifests.push(entry);
        self.write_index(&index)
    }

    /// Returns the image manifest descriptor recorded for `reference` and `platform`, or
    /// `None` when the cache has no index or no such entry.
    pub fn lookup_reference(
        &self,
        reference: &ImageReference,
        platform: &Platform,
    ) -> Result<Option<Descriptor>> {
        let Some(index) = self.read_index()? else {
            return Ok(None);
        };
        let name = index_name(reference);
        let named = |entry: &&Descriptor| entry_name(entry) == Some(name.as_str());
        let offered = |entry: &Descriptor| entry.platform.as_ref().map(|p| p.to_platform());
        let exact = index.manifests.iter().filter(named).find(|entry| {
            offered(entry).is_some_and(|candidate| platform.matches_exactly(&candidate))
        });
        let loose =
            || {
                index.manifests.iter().filter(named).find(|entry| {
                    offered(entry).is_some_and(|candidate| platform.matches(&candidate))
                })
            };
        Ok(exact.or_else(loose).cloned())
    }

    /// Loads the image whose manifest `manifest` names from the cache, or returns `None`
    /// when the manifest, its config or one of its layers is missing or has another size.
    pub fn load_image(
        &self,
        reference: &ImageReference,
        manifest: &Descriptor,
    ) -> Result<Option<Image>> {
        let digest = manifest.digest.to_string();
        let Some(bytes) = self.read_blob(&digest, manifest.size)? else {
            return Ok(None);
        };
        let unusable = |source: hoist_image::ManifestError| Error::Manifest {
            registry: reference.registry().to_owned(),
            reference: format!("{reference} (cached {digest})"),
            source: Box::new(source),
        };
        let document =
            ManifestDocument::parse(&bytes, Some(&manifest.media_type)).map_err(&unusable)?;
        let ManifestDocument::Image(image_manifest) = document else {
            return Ok(None);
        };
        let config = &image_manifest.config;
        let Some(config_json) = self.read_blob(config.digest.as_ref(), config.size)? else {
            return Ok(None);
        };
        let layers_present = image_manifest
            .layers
            .iter()
            .all(|layer| self.contains(layer.digest.as_ref(), layer.size));
        if !layers_present {
            return Ok(None);
        }
        let config = image_manifest.read_config(&config_json).map_err(unusable)?;
        build_image(reference, &image_manifest, config, self).map(Some)
    }

    /// Reads a small blob (a manifest or a config) when it is cached with `size` bytes.
    fn read_blob(&self, digest: &str, size: u64) -> Result<Option<Vec<u8>>> {
        if size > crate::pull::MAX_MANIFEST_SIZE || !self.contains(digest, size) {
            return Ok(None);
        }
        let Some(path) = self.path(digest) else {
            return Ok(None);
        };
        std::fs::read(&path)
            .map(Some)
            .map_err(io_error("read", path))
    }

    fn index_path(&self) -> PathBuf {
        self.root().join(CACHE_INDEX_FILE)
    }

    fn lock_index(&self) -> Result<File> {
        let path = self.root().join("index.json.lock");
        let file = File::create(&path).map_err(io_error("create", &path))?;
        fs4::FileExt::lock(&file).map_err(io_error("lock", &path))?;
        Ok(file)
    }

    fn read_index(&self) -> Result<Option<Index>> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("read", path)(source)),
        };
        Index::from_json(&bytes)
            .map(Some)
            .map_err(|source| Error::Io {
                action: "parse the cache index",
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, source),
            })
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let root = self.root();
        let mut file = cache_temp_file(root, ".index-")?;
        file.write_all(&index.to_json())
            .map_err(io_error("write", file.path().to_path_buf()))?;
        let target = self.index_path();
        file.persist(&target)
            .map_err(|error| io_error("rename into place", &target)(error.error))?;
        Ok(())
    }
}

impl crate::pull::PulledImage {
    /// Returns the descriptor of the pulled image manifest, the entry that
    /// [`BlobCache::record_reference`] stores.
    pub fn manifest_descriptor(&self) -> Descriptor {
        let media_type = match &self.manifest.document {
            ManifestDocument::Image(manifest) => manifest.media_type.clone(),
            ManifestDocument::Index(_) => None,
        };
        let media_type = media_type
            .or_else(|| self.manifest.content_type.clone())
            .unwrap_or_else(|| OCI_MANIFEST_MEDIA_TYPE.to_owned());
        Descriptor {
            media_type,
            digest: hoist_image::digest_bytes(&self.manifest.bytes),
            size: self.manifest.bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        }
    }
}

/// Returns the `ref.name` that `reference` is recorded under.
fn index_name(reference: &ImageReference) -> String {
    let name = format!("{}/{}", reference.registry(), reference.repository());
    match reference.digest() {
        Some(digest) => format!("{name}@{digest}"),
        None => format!("{name}:{}", reference.tag().unwrap_or("latest")),
    }
}

fn entry_name(entry: &Descriptor) -> Option<&str> {
    entry
        .annotations
        .as_ref()?
        .get(REF_NAME_ANNOTATION)
        .map(String::as_str)
}

fn entry_matches_exactly(entry: &Descriptor, name: &str, platform: &Platform) -> bool {
    entry_name(entry) == Some(name)
        && entry
            .platform
            .as_ref()
            .is_some_and(|offered| platform.matches_exactly(&offered.to_platform()))
}

fn descriptor_platform(platform: &Platform) -> DescriptorPlatform {
    DescriptorPlatform {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        os_version: None,
        os_features: None,
        variant: platform.variant.clone(),
    }
}

fn empty_index() -> Index {
    Index {
        schema_version: 2,
        media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
        manifests: Vec::new(),
        annotations: None,
    }
}

fn write_if_missing(path: &Path, content: &[u8]) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    std::fs::write(path, content).map_err(io_error("write", path))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    fn manifest_descriptor(byte: char) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            digest: hoist_image::Digest::from_str(&format!(
                "sha256:{}",
                byte.to_string().repeat(64)
            ))
            .unwrap(),
            size: 10,
            platform: None,
            annotations: None,
            urls: None,
        }
    }

    fn reference(text: &str) -> ImageReference {
        text.parse().unwrap()
    }

    #[test]
    fn recorded_reference_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let amd64 = Platform::linux_amd64();
        let descriptor = manifest_descriptor('a');
        cache
            .record_reference(&reference("r.example/base/busybox"), &amd64, &descriptor)
            .unwrap();

        let found = cache
            .lookup_reference(&reference("r.example/base/busybox:latest"), &amd64)
            .unwrap()
            .unwrap();
        assert_eq!(found.digest, descriptor.digest);
        assert!(dir.path().join(LAYOUT_FILE).is_file());
    }

    #[test]
    fn lookup_separates_platforms_and_tags() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let amd64 = Platform::linux_amd64();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let tagged = reference("r.example/base/debian:bookworm");
        cache
            .record_reference(&tagged, &arm64, &manifest_descriptor('b'))
            .unwrap();

        assert!(cache.lookup_reference(&tagged, &amd64).unwrap().is_none());
        let other_tag = reference("r.example/base/debian:trixie");
        assert!(
            cache
                .lookup_reference(&other_tag, &arm64)
                .unwrap()
                .is_none()
        );
        assert!(cache.lookup_reference(&tagged, &arm64).unwrap().is_some());
    }

    #[test]
    fn later_record_replaces_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let amd64 = Platform::linux_amd64();
        let tagged = reference("r.example/app:1");
        cache
            .record_reference(&tagged, &amd64, &manifest_descriptor('c'))
            .unwrap();
        cache
            .record_reference(&tagged, &amd64, &manifest_descriptor('d'))
            .unwrap();

        let index = cache.read_index().unwrap().unwrap();
        assert_eq!(index.manifests.len(), 1);
        let found = cache.lookup_reference(&tagged, &amd64).unwrap().unwrap();
        assert_eq!(found.digest, manifest_descriptor('d').digest);
    }

    #[test]
    fn missing_manifest_blob_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let loaded = cache
            .load_image(&reference("r.example/app:1"), &manifest_descriptor('e'))
            .unwrap();
        assert!(loaded.is_none());
    }
}
