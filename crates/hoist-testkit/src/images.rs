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

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::client::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::dates::rfc3339;
use crate::error::{Error, Result, io_error};
use crate::process::{file_tail, run};
use crate::registry::Registry;
use crate::tools::{ImageSource, RegistryAccess, skopeo_inspect_raw, skopeo_push};

/// The version of the build recipe below. Change it whenever the recipe
/// changes, so that old caches are not used.
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

/// Creates a layout with an empty image and unpacks it, which leaves an
/// empty `bundle/rootfs` that `umoci repack` turns into one layer.
fn start_empty_image(layout: &Path, tag: &str, bundle: &Path) -> Result<()> {
    run(Command::new("umoci").args(["init", "--layout"]).arg(layout))?;
    run(Command::new("umoci")
        .args(["new", "--image"])
        .arg(image_arg(layout, tag)))?;
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(image_arg(layout, tag))
        .arg(bundle))?;
    let rootfs = bundle.join("rootfs");
    fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))
        .map_err(io_error("set mode of", &rootfs))
}

/// Repacks the bundle into one layer and sets the config with pinned dates.
fn commit_layer(
    layout: &Path,
    tag: &str,
    bundle: &Path,
    created_by: &str,
    cmd: &str,
) -> Result<()> {
    let created = rfc3339(SOURCE_DATE_EPOCH);
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(image_arg(layout, tag))
        .args([
            "--history.created",
            &created,
            "--history.author",
            "hoist-testkit",
        ])
        .args(["--history.created_by", created_by])
        .arg(bundle))?;
    run(Command::new("umoci")
        .args(["config", "--image"])
        .arg(image_arg(layout, tag))
        .args([
            "--no-history",
            "--created",
            &created,
            "--author",
            "hoist-testkit",
        ])
        .args(["--architecture", oci_architecture(), "--os", "linux"])
        .args(["--config.env", PATH_ENV, "--config.cmd", cmd]))?;
    run(Command::new("umoci").args(["gc", "--layout"]).arg(layout))?;
    Ok(())
}

/// Writes an OCI image index with one entry (this platform) pointing at
/// `tag`, and tags it `index_tag` in the layout.
fn add_index(layout: &Path, tag: &str, index_tag: &str) -> Result<()> {
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path)?;
    let manifest = find_tag(&index, tag).ok_or_else(|| {
        Error::InvalidSetup(format!("tag {tag} missing in {}", index_path.display()))
    })?;
    let image_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest["digest"],
            "size": manifest["size"],
            "platform": { "architecture": oci_architecture(), "os": "linux" },
        }],
    });
    let bytes = image_index.to_string().into_bytes();
    let digest = crate::sha256_digest(&bytes);
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    fs::write(&blob, &bytes).map_err(io_error("write", &blob))?;

    let descriptor = serde_json::json!({
        "mediaType": OCI_INDEX,
        "digest": digest,
        "size": bytes.len(),
        "annotations": { "org.opencontainers.image.ref.name": index_tag },
    });
    match index["manifests"].as_array_mut() {
        Some(manifests) => manifests.push(descriptor),
        None => {
            return Err(Error::InvalidSetup(format!(
                "no manifests in {}",
                index_path.display()
            )));
        }
    }
    fs::write(&index_path, index.to_string()).map_err(io_error("write", &index_path))
}

fn find_tag<'a>(index: &'a serde_json::Value, tag: &str) -> Option<&'a serde_json::Value> {
    index["manifests"].as_array()?.iter().find(|descriptor| {
        descriptor["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag)
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })
}

/// Fills `rootfs` with the busybox image and returns its history text.
fn fill_busybox(rootfs: &Path) -> Result<String> {
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "home", "proc", "sys", "dev",
    ] {
        make_dir(&rootfs.join(dir), 0o755)?;
    }
    make_dir(&rootfs.join("root"), 0o700)?;
    make_dir(&rootfs.join("tmp"), 0o1777)?;
    make_dir(&rootfs.join("var"), 0o755)?;
    make_dir(&rootfs.join("var/tmp"), 0o1777)?;

    let busybox = rootfs.join("bin/busybox");
    fs::copy("/bin/busybox", &busybox).map_err(io_error("copy /bin/busybox to", &busybox))?;
    fs::set_permissions(&busybox, fs::Permissions::from_mode(0o755))
        .map_err(io_error("set mode of", &busybox))?;
    let applets = run(Command::new("/bin/busybox").arg("--list-full"))?.stdout;
    // Each line is a path such as `bin/sh` or `usr/bin/wget`.
    for applet in String::from_utf8_lossy(&applets).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            make_dir(parent, 0o755)?;
        }
        symlink("/bin/busybox", &link).map_err(io_error("create symlink", &link))?;
    }

    write_file(
        &rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    write_file(&rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let version = package_version("busybox-static")?;
    Ok(format!("hoist-testkit: busybox-static {version}"))
}

/// Fills `rootfs` with a cleaned debootstrap tree and returns its history text.
fn fill_debian(rootfs: &Path, work: &Path) -> Result<String> {
    let mirror = debian_mirror(DEBIAN_SUITE);
    let log = work.join("debootstrap.log");
    let log_file = fs::File::create(&log).map_err(io_error("create", &log))?;
    let log_for_stderr = log_file.try_clone().map_err(io_error("duplicate", &log))?;
    tracing::info!(%mirror, "running debootstrap --variant=minbase {DEBIAN_SUITE}");
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", DEBIAN_SUITE])
        .arg(rootfs)
        .arg(&mirror)
        .stdout(log_file)
        .stderr(log_for_stderr)
        .status()
        .map_err(|source| Error::Spawn {
            program: "debootstrap".to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(Error::CommandFailed {
            command: format!("debootstrap --variant=minbase {DEBIAN_SUITE} {mirror}"),
            status,
            stderr_tail: file_tail(&log),
        });
    }
    clean_debian(rootfs)?;
    Ok(format!(
        "debootstrap --variant=minbase {DEBIAN_SUITE} {mirror}"
    ))
}

/// Makes the debootstrap tree look like a container base image: no apt
/// lists, caches or logs, no device nodes (runtimes mount `/dev`) and no host
/// identity. It also removes what differs between two runs from the same
/// mirror. The ldconfig aux-cache, which contains inode numbers and times, is
/// deleted, and the last-password-change day in `/etc/shadow` is pinned.
fn clean_debian(rootfs: &Path) -> Result<()> {
    for dir in [
        "var/lib/apt/lists",
        "var/log/apt",
        "dev",
        "run",
        "tmp",
        "var/tmp",
    ] {
        empty_dir(&rootfs.join(dir), |_| true)?;
    }
    empty_dir(&rootfs.join("var/cache/apt/archives"), |name| {
        name.ends_with(".deb")
    })?;
    empty_dir(&rootfs.join("var/cache/apt"), |name| name.ends_with(".bin"))?;
    empty_dir(&rootfs.join("var/log"), |name| name.ends_with(".log"))?;
    for file in [
        "etc/hostname",
        "etc/resolv.conf",
        "var/cache/ldconfig/aux-cache",
    ] {
        remove_if_present(&rootfs.join(file))?;
    }
    make_dir(&rootfs.join("var/lib/apt/lists/partial"), 0o700)?;
    pin_shadow_days(&rootfs.join("etc/shadow"))
}

fn pin_shadow_days(shadow: &Path) -> Result<()> {
    let Ok(text) = fs::read_to_string(shadow) else {
        return Ok(());
    };
    let day = (SOURCE_DATE_EPOCH / 86_400).to_string();
    let pinned: Vec<String> = text
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            // Field 3 is the day of the last password change.
            if fields.len() > 2 && !fields[2].is_empty() {
                fields[2] = &day;
            }
            fields.join(":")
        })
        .collect();
    fs::write(shadow, pinned.join("\n") + "\n").map_err(io_error("write", shadow))
}

/// Sets every mtime newer than [`SOURCE_DATE_EPOCH`] to it, symlinks
/// included, as reproducible builds do.
fn clamp_mtimes(rootfs: &Path) -> Result<()> {
    let epoch = format!("@{SOURCE_DATE_EPOCH}");
    run(Command::new("find").arg(rootfs).args([
        "-newermt", &epoch, "-exec", "touch", "-h", "-d", &epoch, "{}", "+",
    ]))?;
    Ok(())
}

/// Returns the first mirror for `suite` in the apt sources (deb822
/// `*.sources` first, then the one-line format), or deb.debian.org.
fn debian_mirror(suite: &str) -> String {
    let mut deb822: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    deb822.sort();
    let from_deb822 = deb822
        .iter()
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "sources")
        })
        .filter_map(|path| fs::read_to_string(path).ok())
        .find_map(|text| mirror_in_deb822(&text, suite));
    let one_line_files = std::iter::once(PathBuf::from("/etc/apt/sources.list")).chain(
        deb822
            .iter()
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "list")
            })
            .cloned(),
    );
    from_deb822
        .or_else(|| {
            one_line_files
                .filter_map(|path| fs::read_to_string(path).ok())
                .find_map(|text| mirror_in_one_line_format(&text, suite))
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

fn mirror_in_deb822(text: &str, suite: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let enabled = field("Enabled").is_none_or(|value| !value.eq_ignore_ascii_case("no"));
        let is_deb = field("Types")?.split_whitespace().any(|kind| kind == "deb");
        let has_suite = field("Suites")?
            .split_whitespace()
            .any(|name| name == suite);
        let uri = field("URIs")?.split_whitespace().next()?.to_owned();
        (enabled && is_deb && has_suite).then_some(uri)
    })
}

fn mirror_in_one_line_format(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace().peekable();
        if words.next()? != "deb" {
            return None;
        }
        // Skip options such as `[arch=amd64 signed-by=...]`.
        if words.peek()?.starts_with('[') {
            for word in words.by_ref() {
                if word.ends_with(']') {
                    break;
                }
            }
        }
        let uri = words.next()?;
        (words.next()? == suite).then(|| uri.to_owned())
    })
}

fn package_version(package: &str) -> Result<String> {
    let output = run(Command::new("dpkg-query").args(["-W", "-f=${Version}", package]))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path).map_err(io_error("create directory", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_error("set mode of", path))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(io_error("write", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(io_error("set mode of", path))
}

/// Removes the entries of `dir` whose names pass `select`; a missing `dir`
/// is fine.
fn empty_dir(dir: &Path, select: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !select(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_error("remove", &path))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error("remove", path)(error))
        }
        _ => Ok(()),
    }
}

fn image_arg(layout: &Path, tag: &str) -> std::ffi::OsString {
    let mut text = layout.as_os_str().to_os_string();
    text.push(format!(":{tag}"));
    text
}

/// Returns the OCI name of this machine's architecture.
fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_mirror_for_suite() {
        let text = "Types: deb\nURIs: http://security.example/debian-security\n\
                    Suites: bookworm-security\n\n\
                    Types: deb deb-src\nURIs: http://mirror.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            mirror_in_deb822(text, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn deb822_skips_disabled_stanza() {
        let text = "Enabled: no\nTypes: deb\nURIs: http://off.example\nSuites: bookworm\n";
        assert_eq!(mirror_in_deb822(text, "bookworm"), None);
    }

    #[test]
    fn one_line_mirror_with_options() {
        let text =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_in_one_line_format(text, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
    }

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
