//! The test bed of the builder-image example: a registry with htpasswd auth
//! over TLS that holds the base images, and a release server for the tools
//! the example downloads.
//!
//! The `hoist-testbed` binary runs one for as long as a shell script needs
//! it. It writes an env file ([`ENV_FILE_NAME`]) into a state directory with
//! the addresses and file paths that the script needs. Tests start one in-process
//! with [`Testbed::builder`].

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::certs::random_hex;
use crate::error::{Error, Result, io_error};
use crate::images::{PushedImage, push_base_images};
use crate::registry::Registry;
use crate::release_server::{ReleaseServer, ReleaseServerBuilder, Tool};

/// The registry user unless [`TestbedBuilder::user`] sets another.
pub const DEFAULT_USER: &str = "hoist-ci";

/// The name of the env file in the state directory.
pub const ENV_FILE_NAME: &str = "testbed.env";

/// Options of a [`Testbed`]; start one with [`TestbedBuilder::start`].
#[derive(Debug, Clone)]
pub struct TestbedBuilder {
    user: String,
    releases: ReleaseServerBuilder,
}

impl TestbedBuilder {
    /// Sets the registry user name.
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_owned();
        self
    }

    /// Sets the options of the release server.
    pub fn releases(mut self, releases: ReleaseServerBuilder) -> Self {
        self.releases = releases;
        self
    }

    /// Starts the registry with a random password, pushes both base images
    /// in all manifest forms, and starts the release server.
    ///
    /// The first start on a machine builds the Debian base image, which
    /// takes a minute or two (see [`crate::base_image`]).
    pub fn start(self) -> Result<Testbed> {
        let password = random_hex()?;
        let registry = Registry::builder()
            .tls()
            .htpasswd(&self.user, &password)
            .start()?;
        let pushed = push_base_images(&registry)?;
        let releases = self.releases.start()?;
        tracing::info!(
            registry = %registry.host(),
            releases = %releases.url(),
            "test bed started"
        );
        Ok(Testbed {
            registry,
            releases,
            pushed,
        })
    }
}

/// A running test bed. Dropping it stops the registry and the release
/// server and removes their directories.
#[derive(Debug)]
pub struct Testbed {
    registry: Registry,
    releases: ReleaseServer,
    pushed: Vec<PushedImage>,
}

impl Testbed {
    /// Returns a builder with the user [`DEFAULT_USER`] and a release server
    /// with the default versions.
    pub fn builder() -> TestbedBuilder {
        TestbedBuilder {
            user: DEFAULT_USER.to_owned(),
            releases: ReleaseServer::builder(),
        }
    }

    /// Returns the registry, with TLS and htpasswd auth.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Returns the release server.
    pub fn release_server(&self) -> &ReleaseServer {
        &self.releases
    }

    /// Returns the base image references pushed at the start.
    pub fn base_images(&self) -> &[PushedImage] {
        &self.pushed
    }

    /// Writes the state files into `dir` (created when missing): the env
    /// file, the password file, the CA certificate and a containers auth
    /// file. Secrets are written with the mode 0600.
    pub fn write_state(&self, dir: &Path) -> Result<StateFiles> {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let files = StateFiles::in_dir(dir);
        let (user, password) = self.registry.credentials().ok_or_else(|| {
            Error::InvalidSetup("the test bed registry has no credentials".to_owned())
        })?;

        write_file(&files.password, password.as_bytes(), 0o600)?;
        if let Some(auth_file) = self.registry.auth_file() {
            let auth = fs::read(auth_file).map_err(io_error("read", auth_file))?;
            write_file(&files.auth_file, &auth, 0o600)?;
        }
        fs::create_dir_all(&files.cert_dir).map_err(io_error("create directory", dir))?;
        if let Some(ca_cert) = self.registry.ca_cert() {
            let pem = fs::read(ca_cert).map_err(io_error("read", ca_cert))?;
            write_file(&files.ca_cert, &pem, 0o644)?;
        }
        let env = self.env_text(user, &files);
        write_file(&files.env, env.as_bytes(), 0o644)?;
        Ok(files)
    }

    /// Returns the env file: one `NAME='value'` line per setting, which a
    /// POSIX shell can source.
    fn env_text(&self, user: &str, files: &StateFiles) -> String {
        let releases = &self.releases;
        let settings = [
            ("HOIST_TESTBED_REGISTRY", self.registry.host().to_owned()),
            ("HOIST_TESTBED_CA_CERT", path_text(&files.ca_cert)),
            ("HOIST_TESTBED_CERT_DIR", path_text(&files.cert_dir)),
            ("HOIST_TESTBED_USER", user.to_owned()),
            ("HOIST_TESTBED_PASSWORD_FILE", path_text(&files.password)),
            ("HOIST_TESTBED_AUTH_FILE", path_text(&files.auth_file)),
            ("HOIST_TESTBED_RELEASES_URL", releases.url().to_owned()),
            (
                "HOIST_TESTBED_TERRAFORM_VERSION",
                releases.version(Tool::Terraform).to_owned(),
            ),
            (
                "HOIST_TESTBED_TFLINT_VERSION",
                releases.version(Tool::Tflint).to_owned(),
            ),
            ("HOIST_TESTBED_PID", std::process::id().to_string()),
        ];
        let mut text = String::from("# Written by hoist-testbed; removed when it stops.\n");
        for (name, value) in settings {
            text.push_str(&format!("{name}={}\n", shell_quote(&value)));
        }
        text
    }
}

/// The files [`Testbed::write_state`] writes into a state directory.
#[derive(Debug, Clone)]
pub struct StateFiles {
    /// The env file, [`ENV_FILE_NAME`].
    pub env: PathBuf,
    /// The registry password, without a trailing newline, mode 0600.
    pub password: PathBuf,
    /// The PEM certificate of the CA that signed the registry's certificate.
    pub ca_cert: PathBuf,
    /// A directory that contains only `ca.crt`, for `--cert-dir` of skopeo
    /// and buildah.
    pub cert_dir: PathBuf,
    /// A containers-auth.json with the credentials, for `--authfile` of
    /// skopeo and buildah, mode 0600.
    pub auth_file: PathBuf,
}

impl StateFiles {
    /// Returns the paths of the state files in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        let cert_dir = dir.join("certs");
        Self {
            env: dir.join(ENV_FILE_NAME),
            password: dir.join("password"),
            ca_cert: cert_dir.join("ca.crt"),
            cert_dir,
            auth_file: dir.join("auth.json"),
        }
    }

    /// Removes the state files, the env file first, so that a reader never
    /// sees an env file that names removed files. Missing files are skipped.
    pub fn remove(&self) -> Result<()> {
        for path in [&self.env, &self.password, &self.auth_file, &self.ca_cert] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error("remove", path)(error)),
            }
        }
        match fs::remove_dir(&self.cert_dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("remove", &self.cert_dir)(error))
            }
            _ => Ok(()),
        }
    }
}

/// Replaces `path` with a file of `mode` that contains `bytes`. The content
/// goes to a temporary file first, which is then renamed, so that a reader
/// never sees a partial file and a secret is never readable by others.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let temporary = path.with_extension("partial");
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(io_error("create", &temporary))?;
    // The umask may have cleared bits of `mode`.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error("set the mode of", &temporary))?;
    file.write_all(bytes)
        .map_err(io_error("write", &temporary))?;
    fs::rename(&temporary, path).map_err(io_error("rename", &temporary))
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Quotes `value` for a POSIX shell: single quotes, with each `'` written as
/// `'\''`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_sh() {
        let value = "it's a $HOME `x` \"y\"";
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(value)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), value);
    }

    #[test]
    fn secret_file_has_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();

        write_file(&path, b"secret", 0o600).unwrap();

        let metadata = fs::metadata(&path).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret");
        assert!(!path.with_extension("partial").exists());
    }

    #[test]
    fn state_removal_skips_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::in_dir(dir.path());
        fs::write(&files.env, "X=1\n").unwrap();

        files.remove().unwrap();

        assert!(!files.env.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
