//! Finding the credential files the way Docker and podman do.
//!
//! The environment is passed in as an [`Environment`] value, not read from the process,
//! so that callers and tests choose the variables the lookup reads.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

/// The file name of Docker's configuration inside its config directory.
pub const CONFIG_FILE_NAME: &str = "config.json";

/// A snapshot of environment variables that the lookup reads: `DOCKER_CONFIG`, `HOME`,
/// `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, and `PATH` for credential helpers.
///
/// `Debug` lists the variable names only, because a CI job's environment contains secrets.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<String, OsString>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Environment")
            .field("names", &names)
            .finish()
    }
}

impl Environment {
    /// Takes a snapshot of this process's environment.
    pub fn from_process() -> Self {
        Self::from_vars(
            std::env::vars_os().filter_map(|(name, value)| Some((name.into_string().ok()?, value))),
        )
    }

    /// Builds an environment from name and value pairs.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<OsString>,
    {
        let vars = vars
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        Self { vars }
    }

    /// Returns a variable's value. An empty value counts as unset, as in Docker.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(name)
            .map(OsString::as_os_str)
            .filter(|value| !value.is_empty())
    }
}

/// Returns Docker's config directory: `$DOCKER_CONFIG`, otherwise `$HOME/.docker`, or
/// `None` when neither variable is set.
pub fn docker_config_dir(env: &Environment) -> Option<PathBuf> {
    if let Some(dir) = env.var("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir));
    }
    env.var("HOME")
        .map(|home| PathBuf::from(home).join(".docker"))
}

/// Returns podman's credential file: `$REGISTRY_AUTH_FILE`, otherwise
/// `$XDG_RUNTIME_DIR/containers/auth.json`, or `None` when neither variable is set.
// NOTE: podman also falls back to `$HOME/.config/containers/auth.json`; hoist does not,
// because that file is only written when no runtime directory exists.
pub fn podman_auth_file(env: &Environment) -> Option<PathBuf> {
    if let Some(file) = env.var("REGISTRY_AUTH_FILE") {
        return Some(PathBuf::from(file));
    }
    env.var("XDG_RUNTIME_DIR")
        .map(|dir| PathBuf::from(dir).join("containers").join("auth.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn docker_config_prefers_docker_config_var() {
        let env = Environment::from_vars([("DOCKER_CONFIG", "/kaniko/.docker"), ("HOME", "/root")]);

        assert_eq!(
            docker_config_dir(&env).as_deref(),
            Some(Path::new("/kaniko/.docker"))
        );
    }

    #[test]
    fn docker_config_falls_back_to_home() {
        let env = Environment::from_vars([("DOCKER_CONFIG", ""), ("HOME", "/home/ci")]);

        assert_eq!(
            docker_config_dir(&env).as_deref(),
            Some(Path::new("/home/ci/.docker"))
        );
    }

    #[test]
    fn docker_config_absent_without_variables() {
        assert_eq!(docker_config_dir(&Environment::default()), None);
    }

    #[test]
    fn podman_prefers_registry_auth_file() {
        let env = Environment::from_vars([
            ("REGISTRY_AUTH_FILE", "/etc/auth.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ]);

        assert_eq!(
            podman_auth_file(&env).as_deref(),
            Some(Path::new("/etc/auth.json"))
        );
    }

    #[test]
    fn environment_debug_hides_values() {
        let env = Environment::from_vars([("ARM_CLIENT_SECRET", "s3cret-value")]);

        let debug = format!("{env:?}");

        assert!(debug.contains("ARM_CLIENT_SECRET"), "{debug}");
        assert!(!debug.contains("s3cret-value"), "{debug}");
    }

    #[test]
    fn podman_falls_back_to_runtime_dir() {
        let env = Environment::from_vars([("XDG_RUNTIME_DIR", "/run/user/1000")]);

        assert_eq!(
            podman_auth_file(&env).as_deref(),
            Some(Path::new("/run/user/1000/containers/auth.json"))
        );
    }
}
