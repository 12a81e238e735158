//! Registry credentials for hoist.
//!
//! This crate reads and writes Docker's `config.json` and podman's `auth.json`, and finds
//! the credentials that apply to a registry: `auths` entries (`auth`, `username` and
//! `password`, `identitytoken`, `registrytoken`), per-registry credential helpers
//! (`credHelpers`) and the default helper (`credsStore`).
//!
//! ```no_run
//! use hoist_auth::{Environment, Keychain};
//!
//! let keychain = Keychain::from_environment(&Environment::from_process());
//! if let Some(credential) = keychain.credential("registry.example:5000")? {
//!     // `Debug` shows the user name, never the secret.
//!     println!("{credential:?}");
//! }
//! # Ok::<(), hoist_auth::Error>(())
//! ```
//!
//! Writing merges one registry's entry into the file and keeps every other member as it
//! was:
//!
//! ```no_run
//! use hoist_auth::{ConfigEditor, Secret};
//!
//! let mut editor = ConfigEditor::open("/kaniko/.docker/config.json")?;
//! editor.set_basic_auth("registry.example:5000", "ci", &Secret::new("s3cret"))?;
//! editor.save()?;
//! # Ok::<(), hoist_auth::Error>(())
//! ```
#![deny(missing_docs)]

mod config;
mod credential;
mod error;
mod helper;
mod keychain;
mod locate;
mod registry;
mod write;

#[doc(hidden)]
pub mod fuzzing;

pub use config::MAX_CONFIG_BYTES;
pub use credential::{Credential, Secret};
pub use error::Error;
pub use helper::HelperError;
pub use keychain::{DEFAULT_HELPER_TIMEOUT, Keychain, Resolved, Source};
pub use locate::{CONFIG_FILE_NAME, Environment, docker_config_dir, podman_auth_file};
pub use registry::{
    DOCKER_HUB_KEY, config_key, redact_userinfo, registry_host, same_registry, validate_registry,
};
pub use write::{ConfigEditor, DIR_MODE, FILE_MODE, LOCK_SUFFIX};
