//! Media types of manifests, configs and layers, chosen together per format.

use std::fmt;

use oci_spec::image::MediaType;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image manifest v2 schema 2 media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer media type.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer media type.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A media type that hoist cannot use in the requested place.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaTypeError {
    /// Docker image manifest v2 schema 2 defines no zstd layer media type.
    #[error("the Docker manifest format has no zstd layer media type; use the OCI format or gzip")]
    DockerZstd,
    /// A layer media type that is not a plain, gzip or zstd tar layer.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedLayer(String),
    /// A manifest media type that is neither an OCI nor a Docker schema 2 image manifest.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedManifest(String),
}

/// Manifest format of an image, which fixes the manifest, config and layer media types together
/// so that an image never mixes OCI and Docker types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ManifestFormat {
    /// OCI image spec v1 media types.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 media types.
    Docker,
}

/// Compression of a layer blob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// A gzip-compressed tar stream.
    #[default]
    Gzip,
    /// A zstd-compressed tar stream.
    Zstd,
}

impl fmt::Display for ManifestFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oci => f.write_str("oci"),
            Self::Docker => f.write_str("docker"),
        }
    }
}

impl ManifestFormat {
    /// Returns the media type of an image manifest in this format.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Self::Oci => OCI_MANIFEST,
            Self::Docker => DOCKER_MANIFEST,
        }
    }

    /// Returns the media type of an image config in this format.
    pub fn config_media_type(self) -> &'static str {
        match self {
            Self::Oci => OCI_CONFIG,
            Self::Docker => DOCKER_CONFIG,
        }
    }

    /// Returns the media type of a layer with the given compression in this format.
    ///
    /// Fails with [`MediaTypeError::DockerZstd`] for a zstd layer in the Docker format.
    pub fn layer_media_type(self, compression: Compression) -> Result<String, MediaTypeError> {
        match (self, compression) {
            (Self::Oci, Compression::None) => Ok(MediaType::ImageLayer.to_string()),
            (Self::Oci, Compression::Gzip) => Ok(MediaType::ImageLayerGzip.to_string()),
            (Self::Oci, Compression::Zstd) => Ok(MediaType::ImageLayerZstd.to_string()),
            (Self::Docker, Compression::None) => Ok(DOCKER_LAYER.to_owned()),
            (Self::Docker, Compression::Gzip) => Ok(DOCKER_LAYER_GZIP.to_owned()),
            (Self::Docker, Compression::Zstd) => Err(MediaTypeError::DockerZstd),
        }
    }

    /// Returns the format whose image manifest media type is `media_type`.
    pub fn from_manifest_media_type(media_type: &str) -> Result<Self, MediaTypeError> {
        match media_type {
            OCI_MANIFEST => Ok(Self::Oci),
            DOCKER_MANIFEST => Ok(Self::Docker),
            other => Err(MediaTypeError::UnsupportedManifest(other.to_owned())),
        }
    }
}

impl Compression {
    /// Returns the compression of a layer with media type `media_type`, in either format.
    ///
    /// Non-distributable and foreign layer types are rejected because hoist writes every layer
    /// blob it references.
    pub fn from_layer_media_type(media_type: &str) -> Result<Self, MediaTypeError> {
        match MediaType::from(media_type) {
            MediaType::ImageLayer => Ok(Self::None),
            MediaType::ImageLayerGzip => Ok(Self::Gzip),
            MediaType::ImageLayerZstd => Ok(Self::Zstd),
            MediaType::Other(other) if other == DOCKER_LAYER => Ok(Self::None),
            MediaType::Other(other) if other == DOCKER_LAYER_GZIP => Ok(Self::Gzip),
            _ => Err(MediaTypeError::UnsupportedLayer(media_type.to_owned())),
        }
    }

    /// Detects the compression of a blob from its first bytes: gzip and zstd have magic
    /// numbers, and anything else is taken as a plain tar stream.
    pub fn sniff(prefix: &[u8]) -> Self {
        const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
        const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
        if prefix.starts_with(&GZIP_MAGIC) {
            Self::Gzip
        } else if prefix.starts_with(&ZSTD_MAGIC) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_layer_types_cover_every_compression() {
        let oci = ManifestFormat::Oci;
        assert_eq!(
            oci.layer_media_type(Compression::None).unwrap(),
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(
            oci.layer_media_type(Compression::Gzip).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            oci.layer_media_type(Compression::Zstd).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }

    #[test]
    fn docker_format_rejects_zstd_layers() {
        let docker = ManifestFormat::Docker;
        assert_eq!(
            docker.layer_media_type(Compression::None).unwrap(),
            DOCKER_LAYER
        );
        assert_eq!(
            docker.layer_media_type(Compression::Gzip).unwrap(),
            DOCKER_LAYER_GZIP
        );
        assert_eq!(
            docker.layer_media_type(Compression::Zstd),
            Err(MediaTypeError::DockerZstd)
        );
    }

    #[test]
    fn layer_media_types_round_trip() {
        for format in [ManifestFormat::Oci, ManifestFormat::Docker] {
            for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
                let Ok(media_type) = format.layer_media_type(compression) else {
                    continue;
                };
                assert_eq!(
                    Compression::from_layer_media_type(&media_type),
                    Ok(compression)
                );
            }
        }
    }

    #[test]
    fn foreign_layers_are_unsupported() {
        let foreign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
        assert_eq!(
            Compression::from_layer_media_type(foreign),
            Err(MediaTypeError::UnsupportedLayer(foreign.to_owned()))
        );
    }

    #[test]
    fn sniff_detects_magic_numbers() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/passwd\0"), Compression::None);
        assert_eq!(Compression::sniff(&[]), Compression::None);
    }
}
