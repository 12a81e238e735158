//! Manifests, indexes and descriptors, in the OCI and Docker formats.
//!
//! These are hoist's own serde types rather than `oci-spec`'s, because `oci-spec` stores
//! annotations in hash maps, whose order changes from run to run, and hoist needs the same
//! image to serialize to the same bytes. Maps here are sorted by key.

use std::collections::BTreeMap;

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

use crate::config::ImageConfig;
use crate::digest::digest_bytes;
use crate::error::printable;
use crate::media::{
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ManifestFormat, MediaTypeError,
    OCI_INDEX, OCI_MANIFEST,
};
use crate::platform::Platform;

/// Annotation that names an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = oci_spec::image::ANNOTATION_REF_NAME;

/// A content descriptor: what a blob is, its digest and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the blob.
    pub media_type: String,
    /// Digest of the blob's bytes.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Platform of the image a manifest descriptor points to, in indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    /// Annotations, sorted by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Locations the blob may be fetched from, used by foreign layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// The `platform` object of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// Operating system version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest: a config descriptor and layer descriptors, base layer first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type of the manifest. OCI makes it optional, Docker schema 2 requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Descriptor of the image config.
    pub config: Descriptor,
    /// Layer descriptors, base layer first.
    pub layers: Vec<Descriptor>,
    /// Annotations, sorted by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image index or a Docker manifest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// Media type of the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Descriptors of the manifests the index lists.
    pub manifests: Vec<Descriptor>,
    /// Annotations, sorted by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest document of either kind, as a registry or a layout returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestDocument {
    /// A single image manifest, boxed because it is much larger than an index.
    Image(Box<Manifest>),
    /// An index or manifest list that points to per-platform manifests.
    Index(Index),
}

/// A manifest document that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is not valid JSON of the expected shape.
    #[error("invalid {kind} JSON")]
    Json {
        /// The kind of document: manifest or index.
        kind: &'static str,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// The media type is not one of the manifest or index types hoist reads.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// The document has a `schemaVersion` other than 2.
    #[error("unsupported manifest schemaVersion {0}; only schema 2 is supported")]
    UnsupportedSchemaVersion(u32),
    /// No manifest of an index matches the requested platform.
    #[error("no manifest for platform {platform} in the index; it lists: {available}")]
    NoMatchingPlatform {
        /// The requested platform.
        platform: Platform,
        /// The platforms the index lists, comma-separated, each passed through
        /// [`crate::printable`].
        available: String,
    },
    /// The config blob does not match the manifest's config descriptor.
    #[error(
        "config blob has digest {actual} and size {actual_size}, the manifest names {expected} and size {expected_size}"
    )]
    ConfigMismatch {
        /// The digest in the manifest.
        expected: String,
        /// The digest of the bytes.
        actual: String,
        /// The size in the manifest.
        expected_size: u64,
        /// The size of the bytes.
        actual_size: usize,
    },
    /// The config blob is not a valid image config.
    #[error("invalid image config JSON: {0}")]
    ConfigJson(serde_json::Error),
    /// The config lists a different number of diff IDs than the manifest has layers.
    #[error("the image config lists {diff_ids} diff IDs but the manifest has {layers} layers")]
    LayerCount {
        /// Number of `rootfs.diff_ids`.
        diff_ids: usize,
        /// Number of layer descriptors.
        layers: usize,
    },
    /// A media type in the manifest that hoist cannot use.
    #[error(transparent)]
    MediaType(#[from] MediaTypeError),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

impl ManifestDocument {
    /// Parses a manifest or an index.
    ///
    /// The kind comes from `content_type` (a registry's `Content-Type` header) when given,
    /// else from the document's `mediaType`, else from whether it has a `manifests` array,
    /// because OCI allows both documents without a `mediaType`.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            kind: "manifest",
            source,
        })?;
        if let Some(version) = probe.schema_version
            && version != 2
        {
            return Err(ManifestError::UnsupportedSchemaVersion(version));
        }

        let media_type = content_type
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .filter(|value| !value.is_empty() && value != "application/json")
            .or(probe.media_type);
        let is_index = match media_type.as_deref() {
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
            Some(other) => return Err(ManifestError::UnsupportedMediaType(other.to_owned())),
            None => probe.manifests.is_some(),
        };

        if is_index {
            let index = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                kind: "index",
                source,
            })?;
            Ok(Self::Index(index))
        } else {
            let manifest = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                kind: "manifest",
                source,
            })?;
            Ok(Self::Image(Box::new(manifest)))
        }
    }
}

impl Manifest {
    /// Parses an image manifest, whatever its `mediaType`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            kind: "manifest",
            source,
        })
    }

    /// Serializes the manifest to compact JSON, the same bytes for the same manifest.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }

    /// Returns the manifest's format, from its `mediaType` or, when OCI leaves that out, from
    /// its config's media type.
    pub fn format(&self) -> Result<ManifestFormat, MediaTypeError> {
        match self.media_type.as_deref() {
            Some(media_type) => ManifestFormat::from_manifest_media_type(media_type),
            None if self.config.media_type == DOCKER_CONFIG => Ok(ManifestFormat::Docker),
            None => Ok(ManifestFormat::Oci),
        }
    }

    /// Checks `bytes` against the config descriptor and parses them as this image's config.
    ///
    /// Fails when the digest or size differ, when the JSON is invalid, or when the config's
    /// `rootfs.diff_ids` and the manifest's layers differ in number.
    pub fn read_config(&self, bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
        let actual = digest_bytes(bytes);
        if actual != self.config.digest || bytes.len() as u64 != self.config.size {
            return Err(ManifestError::ConfigMismatch {
                expected: self.config.digest.to_string(),
                actual: actual.to_string(),
                expected_size: self.config.size,
                actual_size: bytes.len(),
            });
        }
        let config = ImageConfig::from_json(bytes).map_err(ManifestError::ConfigJson)?;
        let diff_ids = config.rootfs.diff_ids.len();
        if diff_ids != self.layers.len() {
            return Err(ManifestError::LayerCount {
                diff_ids,
                layers: self.layers.len(),
            });
        }
        Ok(config)
    }
}

impl Index {
    /// Parses an index or a manifest list, whatever its `mediaType`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            kind: "index",
            source,
        })
    }

    /// Serializes the index to compact JSON, the same bytes for the same index.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }

    /// Selects the manifest for `platform`.
    ///
    /// An entry whose normalized platform equals the request wins over one that only
    /// matches (see [`Platform::matches`]), and among equals the first listed wins. Entries
    /// without a platform, such as attestation manifests, never match.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor, ManifestError> {
        let with_platform = || {
            self.manifests.iter().filter_map(|descriptor| {
                let offered = descriptor.platform.as_ref()?.to_platform();
                Some((descriptor, offered))
            })
        };
        let exact = with_platform().find(|(_, offered)| platform.matches_exactly(offered));
        let loose = || with_platform().find(|(_, offered)| platform.matches(offered));
        if let Some((descriptor, _)) = exact.or_else(loose) {
            return Ok(descriptor);
        }

        let available: Vec<String> = with_platform()
            .map(|(_, offered)| printable(&offered.to_string()))
            .collect();
        Err(ManifestError::NoMatchingPlatform {
            platform: platform.clone(),
            available: available.join(", "),
        })
    }
}

impl DescriptorPlatform {
    /// Returns the `os/architecture/variant` part of this platform.
    pub fn to_platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        // Descriptors hold only strings, numbers, sequences and string-keyed maps.
        Err(error) => unreachable!("a manifest serializes to JSON: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD64: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const ARM64: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const ARMV7: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const ATTESTATION: &str =
        "sha256:4444444444444444444444444444444444444444444444444444444444444444";

    fn manifest_list() -> String {
        format!(
            r#"{{
            "schemaVersion": 2,
            "mediaType": "{DOCKER_MANIFEST_LIST}",
            "manifests": [
                {{"mediaType": "{DOCKER_MANIFEST}", "digest": "{AMD64}", "size": 1,
                  "platform": {{"architecture": "amd64", "os": "linux"}}}},
                {{"mediaType": "{DOCKER_MANIFEST}", "digest": "{ARM64}", "size": 2,
                  "platform": {{"architecture": "arm64", "os": "linux", "variant": "v8"}}}},
                {{"mediaType": "{DOCKER_MANIFEST}", "digest": "{ARMV7}", "size": 3,
                  "platform": {{"architecture": "arm", "os": "linux", "variant": "v7"}}}},
                {{"mediaType": "{OCI_MANIFEST}", "digest": "{ATTESTATION}", "size": 4,
                  "platform": {{"architecture": "unknown", "os": "unknown"}}}}
            ]}}"#
        )
    }

    fn index() -> Index {
        match ManifestDocument::parse(manifest_list().as_bytes(), None).unwrap() {
            ManifestDocument::Index(index) => index,
            ManifestDocument::Image(_) => panic!("a manifest list parses as an index"),
        }
    }

    fn select(index: &Index, platform: &str) -> String {
        let platform = Platform::parse(platform).unwrap();
        index.select(&platform).unwrap().digest.to_string()
    }

    #[test]
    fn index_selects_requested_platform() {
        let index = index();
        assert_eq!(select(&index, "linux/amd64"), AMD64);
        assert_eq!(select(&index, "linux/arm64"), ARM64);
        assert_eq!(select(&index, "linux/arm64/v8"), ARM64);
        assert_eq!(select(&index, "linux/arm"), ARMV7);
    }

    #[test]
    fn index_reports_missing_platform() {
        let platform = Platform::parse("linux/s390x").unwrap();
        let error = index().select(&platform).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no manifest for platform linux/s390x in the index; it lists: \
             linux/amd64, linux/arm64/v8, linux/arm/v7, unknown/unknown"
        );
    }

    #[test]
    fn exact_variant_wins_over_any_variant() {
        let json = format!(
            r#"{{"schemaVersion": 2, "manifests": [
                {{"mediaType": "{OCI_MANIFEST}", "digest": "{ARM64}", "size": 1,
                  "platform": {{"architecture": "amd64", "os": "linux", "variant": "v3"}}}},
                {{"mediaType": "{OCI_MANIFEST}", "digest": "{AMD64}", "size": 1,
                  "platform": {{"architecture": "amd64", "os": "linux"}}}}
            ]}}"#
        );
        let ManifestDocument::Index(index) =
            ManifestDocument::parse(json.as_bytes(), None).unwrap()
        else {
            panic!("a document with manifests parses as an index");
        };
        assert_eq!(select(&index, "linux/amd64"), AMD64);
        assert_eq!(select(&index, "linux/amd64/v3"), ARM64);
    }

    #[test]
    fn content_type_overrides_document() {
        let json = format!(
            r#"{{"schemaVersion": 2, "config": {{"mediaType": "x", "digest": "{AMD64}", "size": 1}},
                "layers": []}}"#
        );
        let parsed = ManifestDocument::parse(
            json.as_bytes(),
            Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        )
        .unwrap();
        assert!(matches!(parsed, ManifestDocument::Image(_)));
        let error = ManifestDocument::parse(json.as_bytes(), Some("text/html")).unwrap_err();
        assert!(
            matches!(error, ManifestError::UnsupportedMediaType(ref value) if value == "text/html")
        );
    }

    #[test]
    fn schema_one_is_rejected() {
        let error = ManifestDocument::parse(br#"{"schemaVersion": 1}"#, None).unwrap_err();
        assert!(matches!(error, ManifestError::UnsupportedSchemaVersion(1)));
    }

    #[test]
    fn malformed_json_is_an_error() {
        let error = ManifestDocument::parse(b"{\"schemaVersion\": 2,", None).unwrap_err();
        assert!(matches!(
            error,
            ManifestError::Json {
                kind: "manifest",
                ..
            }
        ));
        let bad_digest = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:../../etc","size":1},"layers":[]}"#;
        assert!(ManifestDocument::parse(bad_digest, None).is_err());
    }
}
