//! The builder-image example (`examples/builder-image/` of the repository):
//! the paths of its Dockerfiles, the build arguments they take from a
//! [`Testbed`], and its build with buildah as the reference. It also has the
//! checks that a built image must pass, so that every builder under test is
//! held to the same specification.
//!
//! ```no_run
//! use hoist_testkit::Testbed;
//! use hoist_testkit::builder_image::{Variant, buildah_build, check_builder_image, fetch_image};
//!
//! let testbed = Testbed::builder().start()?;
//! let reference = format!("{}:latest", Variant::Busybox.repository());
//! buildah_build(&testbed, Variant::Busybox, &[reference.as_str()])?;
//! let image = fetch_image(&testbed, &reference)?;
//! let problems = check_builder_image(
//!     Variant::Busybox,
//!     image.rootfs(),
//!     &image.config,
//!     testbed.release_server(),
//! )?;
//! assert!(problems.is_empty(), "{problems:?}");
//! # Ok::<(), hoist_testkit::Error>(())
//! ```

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::buildah::Buildah;
use crate::error::{Error, Result, io_error};
use crate::process::run;
use crate::release_server::{ReleaseServer, Tool};
use crate::testbed::Testbed;
use crate::tools::{
    ImageSource, RegistryAccess, skopeo_inspect_config, skopeo_inspect_raw, unpack_image,
};

/// The user the image runs as.
pub const IMAGE_USER: &str = "infra";

/// The directory of the tool executables in the image.
const TOOL_DIR: &str = "usr/local/bin";

/// The commands that the Debian variant's package step installs.
const DEBIAN_COMMANDS: [&str; 9] = [
    "usr/bin/bash",
    "usr/bin/curl",
    "usr/bin/git",
    "usr/bin/grep",
    "usr/bin/tree",
    "usr/bin/jq",
    "usr/bin/figlet",
    "usr/bin/unzip",
    "usr/bin/yamllint",
];

/// A variant of the example, one directory with a Dockerfile each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// On `base/debian:bookworm`; installs packages from the Debian mirror.
    Debian,
    /// On `base/busybox`; needs no mirror.
    Busybox,
}

impl Variant {
    /// Both variants.
    pub const ALL: [Self; 2] = [Self::Debian, Self::Busybox];

    /// Returns the directory name, `debian` or `busybox`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Debian => "debian",
            Self::Busybox => "busybox",
        }
    }

    /// Returns the repository the main job pushes this variant to.
    pub fn repository(self) -> &'static str {
        match self {
            Self::Debian => "builder",
            Self::Busybox => "builder-busybox",
        }
    }

    /// Returns the build context directory, which contains the Dockerfile.
    pub fn context_dir(self) -> PathBuf {
        examples_dir().join(self.name())
    }

    /// Returns the path of the Dockerfile.
    pub fn dockerfile(self) -> PathBuf {
        self.context_dir().join("Dockerfile")
    }
}

/// Returns `examples/builder-image` of the repository this crate was built in.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/builder-image")
}

/// Returns the `KEY=VALUE` build arguments that point the Dockerfiles at
/// `testbed`.
pub fn build_args(testbed: &Testbed) -> Vec<String> {
    let releases = testbed.release_server();
    vec![
        format!("REGISTRY={}", testbed.registry().host()),
        format!("RELEASES_URL={}", releases.url()),
        format!("TERRAFORM_VERSION={}", releases.version(Tool::Terraform)),
        format!("TFLINT_VERSION={}", releases.version(Tool::Tflint)),
    ]
}

/// Builds `variant` with `buildah bud` against `testbed` and pushes it to
/// each of `names` (`repository:tag`) in the test bed's registry. Returns
/// the manifest digest, which is the same for every name.
pub fn buildah_build(testbed: &Testbed, variant: Variant, names: &[&str]) -> Result<String> {
    let registry = testbed.registry();
    let access = RegistryAccess::of(registry);
    let buildah = Buildah::new()?;
    let options: Vec<String> = build_args(testbed)
        .into_iter()
        .flat_map(|arg| ["--build-arg".to_owned(), arg])
        .collect();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let local = format!("localhost/{}:build", variant.repository());
    buildah.bud(
        &variant.context_dir(),
        &variant.dockerfile(),
        &local,
        &access,
        &options,
    )?;

    let mut digests = Vec::new();
    for name in names {
        digests.push(buildah.push(&local, &registry.reference(name), &access)?);
    }
    match digests.split_first() {
        Some((first, rest)) if rest.iter().all(|digest| digest == first) => Ok(first.clone()),
        Some(_) => Err(Error::UnexpectedResponse {
            url: registry.url().to_owned(),
            reason: format!("buildah pushed {names:?} with different digests {digests:?}"),
        }),
        None => Err(Error::InvalidSetup(
            "buildah_build needs at least one name to push to".to_owned(),
        )),
    }
}

/// An image read back from a registry: manifest digest, config and the
/// unpacked root filesystem, which is removed when this is dropped.
#[derive(Debug)]
pub struct FetchedImage {
    /// The digest of the manifest the registry returns, `sha256:<hex>`.
    pub digest: String,
    /// The image config, as `skopeo inspect --config` prints it.
    pub config: serde_json::Value,
    rootfs: PathBuf,
    _dir: TempDir,
}

impl FetchedImage {
    /// Returns the unpacked root filesystem.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
}

/// Reads `name` (`repository:tag`) from the test bed's registry and unpacks
/// it into a temporary directory.
pub fn fetch_image(testbed: &Testbed, name: &str) -> Result<FetchedImage> {
    let source = ImageSource::in_registry(testbed.registry(), name);
    let digest = crate::sha256_digest(&skopeo_inspect_raw(&source)?);
    let config = skopeo_inspect_config(&source)?;
    let parent = Path::new("/var/tmp");
    let dir = tempfile::Builder::new()
        .prefix("hoist-fetched-")
        .tempdir_in(parent)
        .map_err(io_error("create temporary directory in", parent))?;
    let rootfs = dir.path().join("rootfs");
    unpack_image(&source, &rootfs)?;
    Ok(FetchedImage {
        digest,
        config,
        rootfs,
        _dir: dir,
    })
}

/// Checks a built image of `variant` against the example's specification
/// and returns every problem found, empty when it passes.
///
/// `rootfs` is the unpacked root filesystem (see [`crate::unpack_image`]),
/// `config` the image config (see [`crate::skopeo_inspect_config`]), and
/// `releases` the server the image was built against. The image must run as
/// [`IMAGE_USER`], which `/etc/passwd` and `/etc/group` must define. It must
/// have `/usr/local/bin/terraform` and `tflint` as executable regular files
/// equal to the executables in the served zips, and it must contain no zip.
/// The Debian variant must also have the commands of its packages.
pub fn check_builder_image(
    variant: Variant,
    rootfs: &Path,
    config: &serde_json::Value,
    releases: &ReleaseServer,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    check_user(rootfs, config, &mut problems);
    for tool in Tool::ALL {
        check_tool(rootfs, releases, tool, &mut problems)?;
    }
    for zip in find_zips(rootfs) {
        problems.push(format!("zip left in the image: {}", zip.display()));
    }
    if variant == Variant::Debian {
        for command in DEBIAN_COMMANDS {
            if !resolve_in_root(rootfs, command).is_some_and(|path| is_executable(&path)) {
                problems.push(format!("/{command} is missing or not executable"));
            }
        }
    }
    Ok(problems)
}

fn check_user(rootfs: &Path, config: &serde_json::Value, problems: &mut Vec<String>) {
    let user = &config["config"]["User"];
    if user != IMAGE_USER {
        problems.push(format!("config User is {user}, expected {IMAGE_USER:?}"));
    }
    for file in ["etc/passwd", "etc/group"] {
        let text = fs::read_to_string(rootfs.join(file)).unwrap_or_default();
        let prefix = format!("{IMAGE_USER}:");
        if !text.lines().any(|line| line.starts_with(&prefix)) {
            problems.push(format!("/{file} has no entry for {IMAGE_USER}"));
        }
    }
}

fn check_tool(
    rootfs: &Path,
    releases: &ReleaseServer,
    tool: Tool,
    problems: &mut Vec<String>,
) -> Result<()> {
    let path = rootfs.join(TOOL_DIR).join(tool.executable_name());
    let shown = format!("/{TOOL_DIR}/{}", tool.executable_name());
    let Ok(metadata) = fs::symlink_metadata(&path) else {
        problems.push(format!("{shown} is missing"));
        return Ok(());
    };
    if !metadata.is_file() {
        problems.push(format!("{shown} is not a regular file"));
        return Ok(());
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o111 != 0o111 {
        problems.push(format!("{shown} has mode {mode:o}, not executable by all"));
    }
    let served = unzip_entry(releases.zip_file(tool), tool.executable_name())?;
    if fs::read(&path).ok().as_deref() != Some(served.as_slice()) {
        problems.push(format!(
            "{shown} differs from the executable in {}",
            releases.zip_url(tool)
        ));
    }
    Ok(())
}

fn unzip_entry(zip: &Path, name: &str) -> Result<Vec<u8>> {
    let mut command = Command::new("unzip");
    command.arg("-p").arg(zip).arg(name);
    Ok(run(&mut command)?.stdout)
}

/// Returns the file that `relative` names in the root filesystem at `root`,
/// following symbolic links of the last component as the image would: an
/// absolute target starts at `root`, not at the machine's `/`. Returns
/// `None` for a missing file or a chain of more than 16 links.
fn resolve_in_root(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = root.join(relative);
    for _ in 0..16 {
        let metadata = fs::symlink_metadata(&path).ok()?;
        if !metadata.file_type().is_symlink() {
            return Some(path);
        }
        let target = fs::read_link(&path).ok()?;
        path = match target.strip_prefix("/") {
            Ok(inside) => root.join(inside),
            Err(_) => path.parent()?.join(target),
        };
    }
    None
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|metadata| metadata.permissions().mode() & 0o111 != 0)
}

/// Returns the files below `rootfs` whose names end in `.zip`, not following
/// symbolic links.
fn find_zips(rootfs: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(rootfs)
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".zip"))
        .map(|entry| Path::new("/").join(entry.path().strip_prefix(rootfs).unwrap_or(entry.path())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dockerfiles_exist() {
        for variant in Variant::ALL {
            let dockerfile = variant.dockerfile();
            let text = fs::read_to_string(&dockerfile).unwrap();
            assert!(text.contains("ARG REGISTRY"), "{}", dockerfile.display());
            assert!(
                text.contains("ARG RELEASES_URL"),
                "{}",
                dockerfile.display()
            );
            assert!(text.contains("USER infra"), "{}", dockerfile.display());
        }
    }

    #[test]
    fn absolute_links_resolve_inside_root() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/alternatives")).unwrap();
        fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        fs::write(root.path().join("usr/bin/figlet-figlet"), "").unwrap();
        std::os::unix::fs::symlink(
            "/usr/bin/figlet-figlet",
            root.path().join("etc/alternatives/figlet"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../../etc/alternatives/figlet",
            root.path().join("usr/bin/figlet"),
        )
        .unwrap();
        std::os::unix::fs::symlink("loop", root.path().join("usr/bin/loop")).unwrap();

        assert_eq!(
            resolve_in_root(root.path(), "usr/bin/figlet"),
            Some(root.path().join("usr/bin/figlet-figlet"))
        );
        assert_eq!(resolve_in_root(root.path(), "usr/bin/loop"), None);
        assert_eq!(resolve_in_root(root.path(), "usr/bin/missing"), None);
    }

    #[test]
    fn zips_are_found_below_root() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("tmp/deep")).unwrap();
        fs::write(root.path().join("tmp/deep/terraform.zip"), "").unwrap();
        fs::write(root.path().join("tmp/zip"), "").unwrap();

        assert_eq!(
            find_zips(root.path()),
            vec![PathBuf::from("/tmp/deep/terraform.zip")]
        );
    }
}
