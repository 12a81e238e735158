//! The base images `base/busybox` and `base/debian:bookworm`, built offline
//! (no image registry is contacted), cached on disk and pushed to test
//! registries in four manifest forms.
//!
//! The cache lives in `/var/tmp/hoist-testbed/<recipe version>/` (or under
//! `$HOIST_TESTBED_DIR`). Each image is built into a temporary directory that
//! is renamed into place when complete, under an exclusive file lock, so
//! parallel tests and processes build it once and an interrupted build never
//! looks finished.
//!
//! File times and dates are pinned to [`SOURCE_DATE_EPOCH`], so two builds
//! give the same digests as long as busybox-static, umoci and the packages
//! on the mirror stay the same. Two separate builds on Debian 12
//! (busybox-static 1:1.35.0-4+deb12u1+b1, umoci 0.4.7) did.

mod layout;
mod rootfs;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::client::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::error::{Error, Result, io_error};
use crate::process::run;
use crate::registry::Registry;
use crate::tools::{ImageSource, RegistryAccess, skopeo_inspect_raw, skopeo_push};
use layout::{add_index, commit_layer, start_empty_image};
use rootfs::{clamp_mtimes, fill_busybox, fill_debian};

/// The version of the build recipe (`build_image` and the `layout` and
/// `rootfs` modules). Change it whenever the recipe changes, so that old
/// caches are not used.
const RECIPE_VERSION: &str = "v1";

/// The cache root unless `HOIST_TESTBED_DIR` names another.
const DEFAULT_CACHE_ROOT: &str = "/var/tmp/hoist-testbed";

/// `SOURCE_DATE_EPOCH` of every file and date in the images
/// (2023-11-14T22:13:20Z), which makes the images reproducible.
pub const SOURCE_DATE_EPOCH: u64 = 1_700_000_000;

/// The Debian suite of `base/debian`.
const DEBIAN_SUITE: &str = "bookworm";

/// `PATH` in the image configs.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A base image the kit can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseImage {
    /// `/bin/busybox` from Debian's busybox-static, one absolute symlink per
    /// applet, `/etc/passwd`, `/etc/group` and `/tmp`. Cmd `/bin/sh`.
    Busybox,
    /// `debootstrap --variant=minbase bookworm`, cleaned. Cmd `bash`.
    Debian,
}

impl BaseImage {
    /// Returns the repository it is pushed to.
    pub fn repository(self) -> &'static str {
        match self {
            Self::Busybox => "base/busybox",
            Self::Debian => "base/debian",
        }
    }

    /// Returns the tag of the image manifest in the layout and in registries.
    pub fn manifest_tag(self) -> &'static str {
        match self {
            Self::Busybox => "latest",
            Self::Debian => DEBIAN_SUITE,
        }
    }

    /// Returns the tag of the one-entry image index in the layout and in registries.
    pub fn index_tag(self) -> &'static str {
        match self {
            Self::Busybox => "index",
            Self::Debian => "bookworm-index",
        }
    }

    fn cache_name(self) -> &'static str {
        match self {
            Self::Busybox => "busybox",
            Self::Debian => "debian-bookworm",
        }
    }

    fn cmd(self) -> &'static str {
        match self {
            Self::Busybox => "/bin/sh",
            Self::Debian => "bash",
        }
    }
}

/// The manifest forms each base image is pushed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestForm {
    /// An OCI image manifest, tag `latest` or `bookworm`.
    Oci,
    /// A Docker schema 2 manifest, tag `latest-docker` or `bookworm-docker`.
    Docker,
    /// An OCI image index with one entry, tag `index` or `bookworm-index`.
    OciIndex,
    /// A Docker manifest list with one entry, tag `index-docker` or
    /// `bookworm-index-docker`.
    DockerList,
}

impl ManifestForm {
    /// All four forms.
    pub const ALL: [Self; 4] = [Self::Oci, Self::Docker, Self::OciIndex, Self::DockerList];

    /// Returns the media type of a manifest in this form.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Oci => OCI_MANIFEST,
            Self::Docker => DOCKER_MANIFEST,
            Self::OciIndex => OCI_INDEX,
            Self::DockerList => DOCKER_MANIFEST_LIST,
        }
    }

    /// Returns the tag `image` has in this form.
    pub fn tag(self, image: BaseImage) -> String {
        match self {
            Self::Oci => image.manifest_tag().to_owned(),
            Self::Docker => format!("{}-docker", image.manifest_tag()),
            Self::OciIndex => image.index_tag().to_owned(),
            Self::DockerList => format!("{}-docker", image.index_tag()),
        }
    }

    fn layout_tag(self, image: BaseImage) -> &'static str {
        match self {
            Self::Oci | Self::Docker => image.manifest_tag(),
            Self::OciIndex | Self::DockerList => image.index_tag(),
        }
    }

    fn skopeo_options(self) -> &'static [&'static str] {
        match self {
            Self::Oci => &[],
            Self::Docker => &["--format", "v2s2"],
            Self::OciIndex => &["--all"],
            Self::DockerList => &["--all", "--format", "v2s2"],
        }
    }
}

/// The cached files of a base image.
#[derive(Debug, Clone)]
pub struct BaseImageFiles {
    /// An OCI image layout with the tags [`BaseImage::manifest_tag`] and
    /// [`BaseImage::index_tag`].
    pub layout: PathBuf,
    /// The root filesystem the layer was made from. Treat it as read-only:
    /// other tests use it too.
    pub rootfs: PathBuf,
}

/// One pushed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `host:port/repository:tag`.
    pub reference: String,
    /// The repository, such as `base/busybox`.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The manifest form.
    pub form: ManifestForm,
    /// The digest of the manifest bytes in the registry, `sha256:<hex>`.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
}

/// Returns the cached files of `image`, building them first when the cache
/// has none. Busybox takes about a second; Debian runs debootstrap, which
/// downloads about 30 MB from the machine's apt mirror and takes about a
/// minute.
pub fn base_image(image: BaseImage) -> Result<BaseImageFiles> {
    cached_image_in(&cache_root(), image)
}

/// Returns the files of `image` below the cache directory `root`, building
/// them under the image's lock when they are missing.
fn cached_image_in(root: &Path, image: BaseImage) -> Result<BaseImageFiles> {
    fs::create_dir_all(root).map_err(io_error("create directory", root))?;
    let finished = root.join(image.cache_name());
    let files = BaseImageFiles {
        layout: finished.join("layout"),
        rootfs: finished.join("rootfs"),
    };
    if finished.is_dir() {
        return Ok(files);
    }

    let lock_path = root.join(format!("{}.lock", image.cache_name()));
    let lock = fs::File::create(&lock_path).map_err(io_error("create", &lock_path))?;
    fs4::FileExt::lock(&lock).map_err(io_error("lock", &lock_path))?;
    if finished.is_dir() {
        return Ok(files);
    }
    remove_abandoned_builds(root, image)?;

    let build = tempfile::Builder::new()
        .prefix(&build_prefix(image))
        .tempdir_in(root)
        .map_err(io_error("create temporary directory in", root))?;
    tracing::info!(?image, dir = %build.path().display(), "building base image");
    build_image(image, build.path())?;
    let build = build.keep();
    fs::rename(&build, &finished).map_err(io_error("move finished build", &build))?;
    tracing::info!(?image, dir = %finished.display(), "base image built");
    Ok(files)
}

/// Pushes `image` in all four [`ManifestForm`]s to `registry`.
pub fn push_base_image(registry: &Registry, image: BaseImage) -> Result<Vec<PushedImage>> {
    let files = base_image(image)?;
    let access = RegistryAccess::of(registry);
    ManifestForm::ALL
        .iter()
        .map(|&form| push_form(registry, &access, &files, image, form))
        .collect()
}

/// Pushes both base images in all four forms to `registry`.
pub fn push_base_images(registry: &Registry) -> Result<Vec<PushedImage>> {
    let mut pushed = push_base_image(registry, BaseImage::Busybox)?;
    pushed.extend(push_base_image(registry, BaseImage::Debian)?);
    Ok(pushed)
}

fn push_form(
    registry: &Registry,
    access: &RegistryAccess,
    files: &BaseImageFiles,
    image: BaseImage,
    form: ManifestForm,
) -> Result<PushedImage> {
    let tag = form.tag(image);
    let name = format!("{}:{tag}", image.repository());
    let reference = registry.reference(&name);
    let source = ImageSource::in_layout(&files.layout, form.layout_tag(image));
    let digest = skopeo_push(&source, &reference, access, form.skopeo_options())?;

    let raw = skopeo_inspect_raw(&ImageSource::in_registry(registry, &name))?;
    let media_type = manifest_media_type(&raw).map_err(|source| Error::Json {
        what: format!("manifest of {reference}"),
        source,
    })?;
    let stored_digest = crate::sha256_digest(&raw);
    if stored_digest != digest {
        return Err(Error::UnexpectedResponse {
            url: reference,
            reason: format!(
                "skopeo wrote manifest {digest}, but the registry returns {stored_digest}"
            ),
        });
    }
    tracing::debug!(%reference, %digest, %media_type, "base image pushed");
    Ok(PushedImage {
        reference,
        repository: image.repository().to_owned(),
        tag,
        form,
        digest,
        media_type,
    })
}

/// Returns a manifest's media type: its `mediaType` field, or, for
/// manifests written by umoci, which have none, the OCI type its shape
/// implies.
fn manifest_media_type(raw: &[u8]) -> std::result::Result<String, serde_json::Error> {
    let json: serde_json::Value = serde_json::from_slice(raw)?;
    if let Some(media_type) = json["mediaType"].as_str() {
        return Ok(media_type.to_owned());
    }
    let shape = if json.get("manifests").is_some() {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    };
    Ok(shape.to_owned())
}

fn cache_root() -> PathBuf {
    let base = std::env::var_os("HOIST_TESTBED_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE_ROOT), PathBuf::from);
    base.join(RECIPE_VERSION)
}

fn build_prefix(image: BaseImage) -> String {
    format!(".build-{}-", image.cache_name())
}

/// Removes builds that a killed process left behind. The caller holds the
/// image's lock, so no other build of it is running.
fn remove_abandoned_builds(root: &Path, image: BaseImage) -> Result<()> {
    let prefix = build_prefix(image);
    let entries = fs::read_dir(root).map_err(io_error("list", root))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            tracing::info!(dir = %path.display(), "removing an abandoned base image build");
            fs::remove_dir_all(&path).map_err(io_error("remove", &path))?;
        }
    }
    Ok(())
}

/// Builds `image` into `dir`: `dir/layout` (OCI layout) and `dir/rootfs`.
fn build_image(image: BaseImage, dir: &Path) -> Result<()> {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let tag = image.manifest_tag();

    start_empty_image(&layout, tag, &bundle)?;

    let rootfs = bundle.join("rootfs");
    let created_by = match image {
        BaseImage::Busybox => fill_busybox(&rootfs)?,
        BaseImage::Debian => fill_debian(&rootfs, dir)?,
    };
    clamp_mtimes(&rootfs)?;

    commit_layer(&layout, tag, &bundle, &created_by, image.cmd())?;
    add_index(&layout, tag, image.index_tag())?;
    run(Command::new("chmod").arg("-R").arg("a+rX").arg(&layout))?;

    let kept = dir.join("rootfs");
    fs::rename(&rootfs, &kept).map_err(io_error("move root filesystem", &rootfs))?;
    fs::remove_dir_all(&bundle).map_err(io_error("remove", &bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_manifest_shape() {
        assert_eq!(
            manifest_media_type(br#"{"manifests":[]}"#).unwrap(),
            OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(br#"{"layers":[]}"#).unwrap(),
            OCI_MANIFEST
        );
        let docker = format!(r#"{{"mediaType":"{DOCKER_MANIFEST}"}}"#);
        assert_eq!(
            manifest_media_type(docker.as_bytes()).unwrap(),
            DOCKER_MANIFEST
        );
    }

    #[test]
    fn busybox_cache_builds_once_in_parallel() {
        let root = tempfile::tempdir().unwrap();
        let abandoned = root
            .path()
            .join(format!("{}killed", build_prefix(BaseImage::Busybox)));
        fs::create_dir_all(abandoned.join("layout")).unwrap();

        let builds: Vec<_> = (0..3)
            .map(|_| {
                let root = root.path().to_path_buf();
                std::thread::spawn(move || cached_image_in(&root, BaseImage::Busybox))
            })
            .collect();
        for build in builds {
            let files = build.join().unwrap().unwrap();
            assert!(files.layout.join("index.json").is_file());
            assert!(files.rootfs.join("bin/busybox").is_file());
        }

        assert!(!abandoned.exists(), "abandoned build was not removed");
        let leftovers: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".build-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn manifest_forms_have_distinct_tags() {
        for image in [BaseImage::Busybox, BaseImage::Debian] {
            let mut tags: Vec<String> = ManifestForm::ALL
                .iter()
                .map(|form| form.tag(image))
                .collect();
            tags.sort();
            tags.dedup();
            assert_eq!(tags.len(), 4, "{image:?}");
        }
    }
}
