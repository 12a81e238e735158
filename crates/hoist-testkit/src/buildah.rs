//! buildah as the peer builder of differential tests.
//!
//! `buildah bud --isolation chroot` runs RUN steps in a chroot with private
//! mount and PID namespaces. It needs root, but no cgroups, no OCI runtime
//! and no user namespaces. Each [`Buildah`] keeps its images in a storage
//! root of its own under `/var/tmp/hoist-buildah-*` (never
//! `/var/lib/containers`), passes every setting as an option and so changes
//! no machine-wide configuration.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{Result, io_error};
use crate::process::run;
use crate::tools::RegistryAccess;

/// The containers/storage driver of a [`Buildah`] storage root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDriver {
    /// overlayfs: fast, mounts layers below the storage root.
    Overlay,
    /// Plain copies: slow for big images, but needs no mounts.
    Vfs,
}

impl StorageDriver {
    fn name(self) -> &'static str {
        match self {
            Self::Overlay => "overlay",
            Self::Vfs => "vfs",
        }
    }
}

/// A buildah storage root. Dropping it removes its containers, images and
/// mounts, then the directory.
#[derive(Debug)]
pub struct Buildah {
    root: TempDir,
    driver: StorageDriver,
}

impl Buildah {
    /// Creates an empty storage root with the overlay driver.
    pub fn new() -> Result<Self> {
        Self::with_driver(StorageDriver::Overlay)
    }

    /// Creates an empty storage root with `driver`.
    pub fn with_driver(driver: StorageDriver) -> Result<Self> {
        let parent = Path::new("/var/tmp");
        let root = tempfile::Builder::new()
            .prefix("hoist-buildah-")
            .tempdir_in(parent)
            .map_err(io_error("create temporary directory in", parent))?;
        Ok(Self { root, driver })
    }

    /// Returns the storage root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Builds `dockerfile` with `context` into the local image `tag`. Base
    /// images are pulled with `access`; `extra` goes to `buildah bud` as is
    /// (such as `--layers`, `--build-arg X=1`, `--target stage`).
    pub fn bud(
        &self,
        context: &Path,
        dockerfile: &Path,
        tag: &str,
        access: &RegistryAccess,
        extra: &[&str],
    ) -> Result<()> {
        let mut command = self.command();
        command
            .args(["bud", "--isolation", "chroot"])
            .args(access_args(access))
            .arg("--file")
            .arg(dockerfile)
            .args(["--tag", tag])
            .args(extra)
            .arg(context);
        run(&mut command)?;
        Ok(())
    }

    /// Pushes the local image `tag` to `destination`
    /// (`host:port/repository:tag`) and returns the manifest digest.
    pub fn push(&self, tag: &str, destination: &str, access: &RegistryAccess) -> Result<String> {
        let digest_file = self.root.path().join("push.digest");
        let mut command = self.command();
        command
            .args(["push", "--quiet"])
            .args(access_args(access))
            .arg("--digestfile")
            .arg(&digest_file)
            .arg(tag)
            .arg(format!("docker://{destination}"));
        run(&mut command)?;
        let digest = fs::read_to_string(&digest_file).map_err(io_error("read", &digest_file))?;
        Ok(digest.trim().to_owned())
    }

    fn command(&self) -> Command {
        let root = self.root.path();
        let mut command = crate::tools::contained_command("buildah");
        command
            .arg("--root")
            .arg(root.join("storage"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args(["--storage-driver", self.driver.name()]);
        command
    }

    /// Removes containers and images so that their layer mounts go away,
    /// then detaches any mount still below the root.
    fn clean_up(&self) {
        for args in [&["rm", "--all"][..], &["rmi", "--all", "--force"][..]] {
            let mut command = self.command();
            command.args(args);
            if let Err(error) = run(&mut command) {
                tracing::warn!(%error, "buildah clean-up failed");
            }
        }
        for mount in mounts_below(self.root.path()) {
            let detached = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
            if let Err(error) = detached {
                tracing::warn!(mount = %mount.display(), %error, "unmount failed");
            }
        }
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        self.clean_up();
    }
}

fn access_args(access: &RegistryAccess) -> Vec<OsString> {
    let mut args = Vec::new();
    match &access.cert_dir {
        Some(dir) => {
            args.push(OsString::from("--cert-dir"));
            args.push(dir.clone().into_os_string());
        }
        None => args.push(OsString::from("--tls-verify=false")),
    }
    if let Some(file) = &access.auth_file {
        args.push(OsString::from("--authfile"));
        args.push(file.clone().into_os_string());
    }
    args
}

/// Returns the mount points at or below `root`, deepest first.
fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_path(field)))
        .filter(|path| path.starts_with(root))
        .collect();
    mounts.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    mounts
}

/// Decodes the octal escapes (`\040` for a space) of mountinfo paths.
fn unescape_mount_path(field: &str) -> String {
    let mut text = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(position) = rest.find('\\') {
        text.push_str(&rest[..position]);
        let escape = rest.get(position + 1..position + 4);
        match escape.and_then(|digits| u8::from_str_radix(digits, 8).ok()) {
            Some(byte) => {
                text.push(char::from(byte));
                rest = &rest[position + 4..];
            }
            None => {
                text.push('\\');
                rest = &rest[position + 1..];
            }
        }
    }
    text.push_str(rest);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_decode() {
        assert_eq!(unescape_mount_path(r"/var/tmp/a\040b"), "/var/tmp/a b");
        assert_eq!(unescape_mount_path(r"/plain"), "/plain");
        assert_eq!(unescape_mount_path(r"/odd\x"), r"/odd\x");
    }
}
