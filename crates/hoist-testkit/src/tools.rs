//! Peer tools: skopeo, umoci and buildah, run the way that works with the
//! test registries and leaves no machine-wide state behind.
//!
//! skopeo and buildah make no exception for loopback registries, so every
//! call passes either `--cert-dir` with the test CA or `--tls-verify=false`,
//! and credentials go through an `--authfile`, never the command line.
//! skopeo and buildah run through [`contained_command`], which keeps their
//! caches off the machine's `/var/lib`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result, io_error};
use crate::process::run;
use crate::registry::Registry;

/// The TLS trust and credentials that skopeo and buildah use for a
/// registry. The default is plain HTTP without credentials.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// A directory holding only the CA certificate; `None` turns TLS
    /// verification off, which plain-HTTP registries need.
    pub cert_dir: Option<PathBuf>,
    /// A containers-auth.json with the credentials.
    pub auth_file: Option<PathBuf>,
}

impl RegistryAccess {
    /// Returns the access that `registry` needs.
    pub fn of(registry: &Registry) -> Self {
        Self {
            cert_dir: registry.cert_dir().map(Path::to_path_buf),
            auth_file: registry.auth_file().map(Path::to_path_buf),
        }
    }

    /// Returns the options of a source (`prefix` = `"src-"`), a
    /// destination (`"dest-"`) or a single-image command (`""`).
    fn args(&self, prefix: &str) -> Vec<OsString> {
        let mut args = Vec::new();
        match &self.cert_dir {
            Some(dir) => {
                args.push(OsString::from(format!("--{prefix}cert-dir")));
                args.push(dir.clone().into_os_string());
            }
            None => args.push(OsString::from(format!("--{prefix}tls-verify=false"))),
        }
        if let Some(file) = &self.auth_file {
            args.push(OsString::from(format!("--{prefix}authfile")));
            args.push(file.clone().into_os_string());
        }
        args
    }
}

/// An image that skopeo can read.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An image in a registry.
    Registry {
        /// `host:port/repository:tag` or `host:port/repository@digest`.
        reference: String,
        /// TLS trust and credentials for the registry.
        access: RegistryAccess,
    },
    /// A tag in an OCI image layout directory.
    Layout {
        /// The layout directory (holding `index.json`).
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: String,
    },
}

impl ImageSource {
    /// Returns the image `name` (`repository:tag`) in `registry`.
    pub fn in_registry(registry: &Registry, name: &str) -> Self {
        Self::Registry {
            reference: registry.reference(name),
            access: RegistryAccess::of(registry),
        }
    }

    /// Returns the image tagged `tag` in the OCI layout at `dir`.
    pub fn in_layout(dir: &Path, tag: &str) -> Self {
        Self::Layout {
            dir: dir.to_path_buf(),
            tag: tag.to_owned(),
        }
    }

    /// Returns the skopeo transport string, such as `docker://…` or `oci:DIR:TAG`.
    fn transport(&self) -> OsString {
        match self {
            Self::Registry { reference, .. } => OsString::from(format!("docker://{reference}")),
            Self::Layout { dir, tag } => {
                let mut text = OsString::from("oci:");
                text.push(dir.as_os_str());
                text.push(format!(":{tag}"));
                text
            }
        }
    }

    fn access_args(&self, prefix: &str) -> Vec<OsString> {
        match self {
            Self::Registry { access, .. } => access.args(prefix),
            Self::Layout { .. } => Vec::new(),
        }
    }
}

/// Returns a `skopeo` command that keeps its cache off the machine; see
/// [`contained_command`].
pub fn skopeo_command() -> Command {
    contained_command("skopeo")
}

/// Returns a command for `program` (skopeo or buildah) that runs in a
/// private mount namespace with an empty tmpfs on `/var/lib`.
///
/// skopeo 1.9 and buildah 1.28 run as root write a blob-info cache to
/// `/var/lib/containers/cache/`, even when buildah is given a storage root
/// of its own, and have no option to move it. The tmpfs takes that write
/// and goes away when the program exits. Neither program reads anything
/// else from `/var/lib` for the transports and storage roots the tests use.
pub fn contained_command(program: &str) -> Command {
    let mut command = Command::new("unshare");
    command.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        r#"mount -t tmpfs -o mode=0755,size=64m hoist-contained /var/lib && exec "$0" "$@""#,
        program,
    ]);
    command
}

/// Returns the manifest bytes of `source`, exactly as stored (so their
/// SHA-256 is the manifest digest). For an index this is the index itself.
pub fn skopeo_inspect_raw(source: &ImageSource) -> Result<Vec<u8>> {
    let mut command = skopeo_command();
    command
        .args(["inspect", "--raw"])
        .args(source.access_args(""))
        .arg(source.transport());
    Ok(run(&mut command)?.stdout)
}

/// Returns the image config of `source` (for an index, the config of the
/// manifest for this machine's platform).
pub fn skopeo_inspect_config(source: &ImageSource) -> Result<serde_json::Value> {
    let mut command = skopeo_command();
    command
        .args(["inspect", "--config"])
        .args(source.access_args(""))
        .arg(source.transport());
    let output = run(&mut command)?;
    serde_json::from_slice(&output.stdout).map_err(|source_error| Error::Json {
        what: format!(
            "skopeo inspect --config {}",
            source.transport().to_string_lossy()
        ),
        source: source_error,
    })
}

/// Copies `source` to `destination` (`host:port/repository:tag`) with
/// `skopeo copy` and returns the digest of the manifest it wrote. `extra`
/// contains options such as `--all` or `--format v2s2`.
pub fn skopeo_push(
    source: &ImageSource,
    destination: &str,
    access: &RegistryAccess,
    extra: &[&str],
) -> Result<String> {
    let digest_dir = tempfile::tempdir().map_err(io_error("create", std::env::temp_dir()))?;
    let digest_file = digest_dir.path().join("digest");
    let mut command = skopeo_command();
    command
        .args(["copy", "-q"])
        .args(source.access_args("src-"))
        .args(access.args("dest-"))
        .args(extra)
        .arg("--digestfile")
        .arg(&digest_file)
        .arg(source.transport())
        .arg(format!("docker://{destination}"));
    run(&mut command)?;
    let digest = fs::read_to_string(&digest_file).map_err(io_error("read", &digest_file))?;
    Ok(digest.trim().to_owned())
}

/// Unpacks `source` into a new root filesystem directory `destination`
/// (which must not exist yet): `skopeo copy` to an OCI layout, which also
/// picks this platform's manifest from an index, then `umoci unpack`.
///
/// This process runs as root, so umoci keeps owners and device nodes and
/// needs no `--rootless`.
pub fn unpack_image(source: &ImageSource, destination: &Path) -> Result<()> {
    if destination.exists() {
        return Err(Error::InvalidSetup(format!(
            "unpack destination {} already exists",
            destination.display()
        )));
    }
    let parent = destination.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
    // A sibling of the destination, so that the final rename stays on one
    // file system.
    let work = tempfile::Builder::new()
        .prefix(".hoist-unpack-")
        .tempdir_in(parent)
        .map_err(io_error("create temporary directory in", parent))?;
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");

    let mut copy = skopeo_command();
    copy.args(["copy", "-q"])
        .args(source.access_args("src-"))
        .arg(source.transport())
        .arg(ImageSource::in_layout(&layout, "image").transport());
    run(&mut copy)?;

    let mut unpack = Command::new("umoci");
    unpack
        .arg("unpack")
        .arg("--image")
        .arg(concat_os(&layout, ":image"))
        .arg(&bundle);
    run(&mut unpack)?;

    let rootfs = bundle.join("rootfs");
    fs::rename(&rootfs, destination).map_err(io_error("move unpacked root filesystem", &rootfs))
}

fn concat_os(path: &Path, suffix: &str) -> OsString {
    let mut text = path.as_os_str().to_os_string();
    text.push(suffix);
    text
}
