//! Finding the credential for a registry across Docker's and podman's files and their
//! credential helpers.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{ConfigFile, FileLookup};
use crate::credential::Credential;
use crate::error::Error;
use crate::helper;
use crate::locate::{CONFIG_FILE_NAME, Environment, docker_config_dir, podman_auth_file};
use crate::registry::config_key;

/// The default time limit for one credential helper run.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The place a credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An `auths` entry of a file.
    FileEntry {
        /// The file.
        path: PathBuf,
        /// The `auths` key that matched.
        key: String,
    },
    /// A per-registry helper from `credHelpers`.
    Helper {
        /// The file that names the helper.
        path: PathBuf,
        /// The helper name; the program is `docker-credential-<name>`.
        name: String,
    },
    /// The default helper from `credsStore`.
    Store {
        /// The file that names the helper.
        path: PathBuf,
        /// The helper name; the program is `docker-credential-<name>`.
        name: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FileEntry { path, key } => {
                write!(f, "auths entry \"{key}\" in {}", path.display())
            }
            Self::Helper { path, name } => write!(
                f,
                "credential helper docker-credential-{name} (credHelpers in {})",
                path.display()
            ),
            Self::Store { path, name } => write!(
                f,
                "credential store docker-credential-{name} (credsStore in {})",
                path.display()
            ),
        }
    }
}

/// The result of a lookup for one registry: the source, and the credential, which is `None`
/// when a helper reported that it has none (the registry is then used anonymously, as
/// Docker does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The source that matched the registry.
    pub source: Source,
    /// The credential, if the source had one.
    pub credential: Option<Credential>,
}

/// The ordered list of credential files consulted for a registry.
///
/// The first file that names a source for the registry (a `credHelpers` entry, an `auths`
/// entry with a credential, or a `credsStore`) decides. Missing files are skipped.
#[derive(Debug, Clone)]
pub struct Keychain {
    files: Vec<PathBuf>,
    path_var: Option<OsString>,
    helper_timeout: Duration,
}

impl Keychain {
    /// Builds the keychain hoist uses by default: Docker's `config.json` (in
    /// `$DOCKER_CONFIG`, else `$HOME/.docker`), then podman's `auth.json`
    /// (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`). Helpers are
    /// looked up in the environment's `PATH`.
    pub fn from_environment(env: &Environment) -> Self {
        let docker = docker_config_dir(env).map(|dir| dir.join(CONFIG_FILE_NAME));
        Self::with_docker_config(docker, env)
    }

    /// Builds the default keychain, but with Docker's config file in `config_dir` (the
    /// `--config` option of Docker-like commands) instead of the environment's.
    pub fn with_config_dir(config_dir: &Path, env: &Environment) -> Self {
        Self::with_docker_config(Some(config_dir.join(CONFIG_FILE_NAME)), env)
    }

    fn with_docker_config(docker: Option<PathBuf>, env: &Environment) -> Self {
        let files = docker.into_iter().chain(podman_auth_file(env)).collect();
        Self::new(files, env)
    }

    /// Builds a keychain that consults exactly `files`, in order.
    pub fn new(files: Vec<PathBuf>, env: &Environment) -> Self {
        Self {
            files,
            path_var: env.var("PATH").map(ToOwned::to_owned),
            helper_timeout: DEFAULT_HELPER_TIMEOUT,
        }
    }

    /// Sets the time limit for one credential helper run.
    pub fn helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    /// Returns the files consulted, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Finds the credential for `registry`, running a credential helper where a file names
    /// one. Returns `None` when no file names a source for it.
    pub fn resolve(&self, registry: &str) -> Result<Option<Resolved>, Error> {
        for path in &self.files {
            let Some(file) = ConfigFile::read(path)? else {
                tracing::debug!(path = %path.display(), "credential file not found");
                continue;
            };
            if let Some(lookup) = file.lookup(registry)? {
                let resolved = self.complete(&file, registry, lookup)?;
                tracing::debug!(
                    registry,
                    source = %resolved.source,
                    found = resolved.credential.is_some(),
                    "resolved registry credential"
                );
                return Ok(Some(resolved));
            }
        }
        tracing::debug!(registry, "no credential configured");
        Ok(None)
    }

    /// Finds the credential for `registry`, or `None` when there is none.
    pub fn credential(&self, registry: &str) -> Result<Option<Credential>, Error> {
        Ok(self
            .resolve(registry)?
            .and_then(|resolved| resolved.credential))
    }

    /// Runs the helper that a `credHelpers` or `credsStore` lookup names. An `auths` entry
    /// is already complete.
    fn complete(
        &self,
        file: &ConfigFile,
        registry: &str,
        lookup: FileLookup,
    ) -> Result<Resolved, Error> {
        let path = file.path().to_owned();
        let (source, config_field, name) = match lookup {
            FileLookup::Entry { key, credential } => {
                return Ok(Resolved {
                    source: Source::FileEntry { path, key },
                    credential: Some(credential),
                });
            }
            FileLookup::Helper { helper } => {
                let source = Source::Helper {
                    path: path.clone(),
                    name: helper.clone(),
                };
                (source, "credHelpers", helper)
            }
            FileLookup::Store { helper } => {
                let source = Source::Store {
                    path: path.clone(),
                    name: helper.clone(),
                };
                (source, "credsStore", helper)
            }
        };

        let server = config_key(registry);
        let credential = helper::get_credential(
            &name,
            &server,
            self.path_var.as_deref(),
            self.helper_timeout,
        )
        .map_err(|source| Error::Helper {
            registry: registry.to_owned(),
            path,
            config_field,
            source,
        })?;
        Ok(Resolved { source, credential })
    }
}
