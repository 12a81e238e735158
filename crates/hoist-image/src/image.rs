//! An image being built: its config and its layers, each with the place of its blob.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

use crate::config::{History, ImageConfig};
use crate::digest::digest_bytes;
use crate::manifest::{Descriptor, DescriptorPlatform, Manifest};
use crate::media::{Compression, ManifestFormat, MediaTypeError};
use crate::platform::Platform;

/// A layer of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Compression of the blob, which with the manifest format gives its media type.
    pub compression: Compression,
    /// Digest of the blob as stored, that is after compression.
    pub digest: Digest,
    /// Size of the blob as stored, in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar stream, as listed in `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Location of the blob's bytes.
    pub blob: BlobLocation,
}

/// Location of a blob's bytes: `size` bytes of a file from `offset` on.
///
/// A blob in a directory is a whole file (offset 0). A blob read back from a docker-archive
/// stays inside the tarball, at the offset of its entry's data, so nothing is copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The file that contains the blob.
    pub path: PathBuf,
    /// Offset of the blob's first byte in the file.
    pub offset: u64,
}

/// An image: a config and the layers that its `rootfs.diff_ids` lists.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    config: ImageConfig,
    layers: Vec<Layer>,
}

/// An image whose layers do not agree with its config.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// The config lists a different number of diff IDs than there are layers.
    #[error("the image config lists {diff_ids} diff IDs but the image has {layers} layers")]
    LayerCount {
        /// Number of `rootfs.diff_ids`.
        diff_ids: usize,
        /// Number of layers.
        layers: usize,
    },
    /// A layer's diff ID differs from the config's entry at its position.
    #[error("layer {index} has diff ID {layer} but the image config lists {config}")]
    DiffIdMismatch {
        /// Position of the layer, base layer 0.
        index: usize,
        /// The layer's diff ID.
        layer: String,
        /// The config's diff ID at that position.
        config: String,
    },
    /// A media type that the chosen format cannot express.
    #[error(transparent)]
    MediaType(#[from] MediaTypeError),
}

/// The JSON documents of an image in one manifest format, with their descriptors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedImage {
    /// The format that chose every media type.
    pub format: ManifestFormat,
    /// Serialized image config.
    pub config_json: Vec<u8>,
    /// The manifest, which points to the config and the layers.
    pub manifest: Manifest,
    /// Serialized manifest.
    pub manifest_json: Vec<u8>,
    /// Descriptor of the serialized manifest.
    pub manifest_descriptor: Descriptor,
}

/// An image read back from an output, with the exact bytes of its config and manifest so
/// that pushing it keeps its digests.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedImage {
    /// The image model.
    pub image: Image,
    /// The config and manifest as stored, with the manifest's descriptor.
    pub rendered: RenderedImage,
}

impl Layer {
    /// Describes a layer blob that fills a whole file.
    pub fn from_file(
        path: impl Into<PathBuf>,
        compression: Compression,
        digest: Digest,
        size: u64,
        diff_id: Digest,
    ) -> Self {
        let blob = BlobLocation {
            path: path.into(),
            offset: 0,
        };
        Self {
            compression,
            digest,
            size,
            diff_id,
            blob,
        }
    }

    /// Describes a layer blob that fills the file at `path`, such as one pulled from a
    /// registry, from its manifest descriptor and the config's diff ID for it.
    ///
    /// Fails for media types other than plain, gzip and zstd tar layers in either format.
    pub fn from_descriptor(
        descriptor: &Descriptor,
        diff_id: Digest,
        path: impl Into<PathBuf>,
    ) -> Result<Self, MediaTypeError> {
        let compression = Compression::from_layer_media_type(&descriptor.media_type)?;
        let digest = descriptor.digest.clone();
        Ok(Self::from_file(
            path,
            compression,
            digest,
            descriptor.size,
            diff_id,
        ))
    }

    /// Opens the blob for reading: exactly `size` bytes from its location.
    pub fn open(&self) -> io::Result<impl Read + use<>> {
        self.blob.open(self.size)
    }

    fn descriptor(&self, format: ManifestFormat) -> Result<Descriptor, MediaTypeError> {
        Ok(Descriptor {
            media_type: format.layer_media_type(self.compression)?,
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
            annotations: None,
            urls: None,
        })
    }
}

impl BlobLocation {
    /// Opens `size` bytes of the file from `offset` on.
    pub fn open(&self, size: u64) -> io::Result<impl Read + use<>> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        Ok(file.take(size))
    }

    /// Returns the path of the file that contains the blob.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Image {
    /// Creates an empty image (`FROM scratch`) for `platform`.
    pub fn scratch(platform: &Platform) -> Self {
        Self {
            config: ImageConfig::scratch(platform),
            layers: Vec::new(),
        }
    }

    /// Creates an image from a config and its layers, such as a pulled base image.
    ///
    /// Fails unless the layers' diff IDs are the config's `rootfs.diff_ids`, in order.
    pub fn from_parts(config: ImageConfig, layers: Vec<Layer>) -> Result<Self, ImageError> {
        check_diff_ids(&config, &layers)?;
        Ok(Self { config, layers })
    }

    /// Returns the image that a child stage built `FROM` this one starts with, and the
    /// `ONBUILD` triggers that the child runs first (see [`ImageConfig::derive_child`]).
    pub fn derive_child(&self) -> (Self, Vec<String>) {
        let (config, triggers) = self.config.derive_child();
        (
            Self {
                config,
                layers: self.layers.clone(),
            },
            triggers,
        )
    }

    /// Returns the image config.
    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// Returns the image config for changes to its metadata.
    ///
    /// Add layers with [`Image::add_layer`] rather than through `rootfs`, because
    /// [`Image::render`] fails when the diff IDs and the layers disagree.
    pub fn config_mut(&mut self) -> &mut ImageConfig {
        &mut self.config
    }

    /// Returns the layers, base layer first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Appends a layer, its diff ID and its history entry.
    pub fn add_layer(&mut self, layer: Layer, mut history: History) {
        history.empty_layer = false;
        self.config.rootfs.diff_ids.push(layer.diff_id.clone());
        self.config.history.push(history);
        self.layers.push(layer);
    }

    /// Appends a history entry for a step that added no layer, such as `ENV`.
    pub fn add_empty_history(&mut self, mut history: History) {
        history.empty_layer = true;
        self.config.history.push(history);
    }

    /// Serializes the config and builds the manifest in `format`.
    ///
    /// Fails when a layer's compression has no media type in `format` (zstd in the Docker
    /// format), so an image never mixes OCI and Docker media types.
    pub fn render(&self, format: ManifestFormat) -> Result<RenderedImage, ImageError> {
        self.render_with_config(self.config.to_json(), format)
    }

    /// Builds the manifest around `config_json`, the stored bytes of this image's config, so
    /// that an image read back from an output keeps its config digest.
    pub(crate) fn render_with_config(
        &self,
        config_json: Vec<u8>,
        format: ManifestFormat,
    ) -> Result<RenderedImage, ImageError> {
        check_diff_ids(&self.config, &self.layers)?;
        let config = plain_descriptor(format.config_media_type(), &config_json);
        let layers = self
            .layers
            .iter()
            .map(|layer| layer.descriptor(format))
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(format.manifest_media_type().to_owned()),
            config,
            layers,
            annotations: None,
        };
        let manifest_json = manifest.to_json();
        let mut manifest_descriptor =
            plain_descriptor(format.manifest_media_type(), &manifest_json);
        manifest_descriptor.platform = Some(self.descriptor_platform());
        Ok(RenderedImage {
            format,
            config_json,
            manifest,
            manifest_json,
            manifest_descriptor,
        })
    }

    fn descriptor_platform(&self) -> DescriptorPlatform {
        DescriptorPlatform {
            architecture: self.config.architecture.clone(),
            os: self.config.os.clone(),
            os_version: self.config.os_version.clone(),
            os_features: self.config.os_features.clone(),
            variant: self.config.variant.clone(),
        }
    }
}

fn plain_descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest_bytes(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: None,
        urls: None,
    }
}

fn check_diff_ids(config: &ImageConfig, layers: &[Layer]) -> Result<(), ImageError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(ImageError::LayerCount {
            diff_ids: diff_ids.len(),
            layers: layers.len(),
        });
    }
    let mismatch = layers
        .iter()
        .zip(diff_ids)
        .position(|(layer, diff_id)| &layer.diff_id != diff_id);
    match mismatch {
        None => Ok(()),
        Some(index) => Err(ImageError::DiffIdMismatch {
            index,
            layer: layers[index].diff_id.to_string(),
            config: diff_ids[index].to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> Digest {
        Digest::try_from(format!("sha256:{}", fill.to_string().repeat(64))).unwrap()
    }

    fn layer(compression: Compression, fill: char, diff_fill: char) -> Layer {
        Layer::from_file(
            "/nonexistent",
            compression,
            digest(fill),
            100,
            digest(diff_fill),
        )
    }

    fn two_layer_image(second: Compression) -> Image {
        let mut image = Image::scratch(&Platform::linux_amd64());
        image.config_mut().created = Some("2025-01-01T00:00:00Z".to_owned());
        image.add_layer(
            layer(Compression::Gzip, 'a', 'b'),
            History {
                created_by: Some("COPY . / # buildkit".to_owned()),
                ..History::default()
            },
        );
        image.add_empty_history(History {
            created_by: Some("ENV A=1".to_owned()),
            ..History::default()
        });
        image.add_layer(
            layer(second, 'c', 'd'),
            History {
                created_by: Some("RUN /bin/sh -c true".to_owned()),
                ..History::default()
            },
        );
        image
    }

    #[test]
    fn add_layer_keeps_diff_ids_in_step() {
        let image = two_layer_image(Compression::None);
        let diff_ids = &image.config().rootfs.diff_ids;
        assert_eq!(diff_ids, &vec![digest('b'), digest('d')]);
        let empty: Vec<bool> = image
            .config()
            .history
            .iter()
            .map(|entry| entry.empty_layer)
            .collect();
        assert_eq!(empty, vec![false, true, false]);
    }

    #[test]
    fn render_uses_one_format_throughout() {
        let image = two_layer_image(Compression::None);
        let oci = image.render(ManifestFormat::Oci).unwrap();
        insta::assert_snapshot!(
            "oci_manifest",
            String::from_utf8(oci.manifest_json).unwrap()
        );
        let docker = image.render(ManifestFormat::Docker).unwrap();
        insta::assert_snapshot!(
            "docker_manifest",
            String::from_utf8(docker.manifest_json).unwrap()
        );
        insta::assert_snapshot!(
            "config",
            String::from_utf8(docker.config_json.clone()).unwrap()
        );
        assert_eq!(oci.config_json, docker.config_json);
    }

    #[test]
    fn render_is_deterministic() {
        let image = two_layer_image(Compression::Gzip);
        let first = image.render(ManifestFormat::Oci).unwrap();
        let second = image.clone().render(ManifestFormat::Oci).unwrap();
        assert_eq!(first.manifest_json, second.manifest_json);
        assert_eq!(
            first.manifest_descriptor.digest,
            second.manifest_descriptor.digest
        );
    }

    #[test]
    fn docker_render_rejects_zstd_layer() {
        let image = two_layer_image(Compression::Zstd);
        assert_eq!(
            image.render(ManifestFormat::Docker),
            Err(ImageError::MediaType(MediaTypeError::DockerZstd))
        );
        assert!(image.render(ManifestFormat::Oci).is_ok());
    }

    #[test]
    fn from_parts_checks_diff_ids() {
        let mut config = ImageConfig::scratch(&Platform::linux_amd64());
        config.rootfs.diff_ids = vec![digest('b')];
        let error = Image::from_parts(config.clone(), vec![]).unwrap_err();
        assert_eq!(
            error,
            ImageError::LayerCount {
                diff_ids: 1,
                layers: 0
            }
        );
        let error = Image::from_parts(config.clone(), vec![layer(Compression::Gzip, 'a', 'e')])
            .unwrap_err();
        assert!(matches!(error, ImageError::DiffIdMismatch { index: 0, .. }));
        assert!(Image::from_parts(config, vec![layer(Compression::Gzip, 'a', 'b')]).is_ok());
    }

    #[test]
    fn derive_child_keeps_layers() {
        let mut base = two_layer_image(Compression::Gzip);
        base.config_mut().config.on_build = Some(vec!["RUN make".to_owned()]);
        let (child, triggers) = base.derive_child();
        assert_eq!(triggers, vec!["RUN make".to_owned()]);
        assert_eq!(child.layers(), base.layers());
        assert_eq!(child.config().config.on_build, None);
    }

    #[test]
    fn blob_location_reads_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"headerBLOBtrailer").unwrap();
        let location = BlobLocation { path, offset: 6 };
        let mut content = String::new();
        location
            .open(4)
            .unwrap()
            .read_to_string(&mut content)
            .unwrap();
        assert_eq!(content, "BLOB");
    }
}
