//! Shared setup of the `hoist` command tests: binaries next to `hoist`, loopback
//! registries with the busybox base, credentials written by `hoist-login`, and contexts.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin_cmd;
use hoist_testkit::{BaseImage, ImageSource, Registry, RegistryAccess};

/// The user and password of the htpasswd registries.
pub const USER: &str = "ci-builder";
pub const PASSWORD: &str = "b8-correct-horse";

/// Returns a sibling binary of `hoist` in Cargo's target directory, which
/// `cargo build --workspace` or `cargo test --workspace` builds.
pub fn sibling_binary(name: &str) -> PathBuf {
    let hoist = PathBuf::from(env!("CARGO_BIN_EXE_hoist"));
    let path = hoist.with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before these tests",
        path.display()
    );
    path
}

/// Returns a `hoist` command with a clean environment for credentials and Kaniko variables,
/// text logs and the temporary directory as its work parent.
pub fn hoist(home: &Path) -> assert_cmd::Command {
    sibling_binary("hoist-sandbox");
    let mut command = cargo_bin_cmd!("hoist");
    command
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("KANIKO_NO_PUSH")
        .env_remove("KANIKO_REGISTRY_MIRROR")
        .env_remove("KANIKO_REGISTRY_MAP")
        .env_remove("KANIKO_DIR")
        .env_remove("RUST_LOG")
        .args(["--log-format", "text"])
        .arg("--kaniko-dir")
        .arg(home)
        .arg("--cache-dir")
        .arg(home.join("no-cache"));
    command
}

/// Creates a temporary directory under `/var/tmp`, where stage roots may hold device nodes.
pub fn temporary_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hoist-cli-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory")
}

/// Starts an htpasswd registry over TLS with the busybox base pushed to it.
pub fn tls_registry() -> Registry {
    let registry = Registry::builder()
        .tls()
        .htpasswd(USER, PASSWORD)
        .start()
        .expect("registry");
    hoist_testkit::push_base_image(&registry, BaseImage::Busybox).expect("push busybox");
    registry
}

/// Starts a plain-HTTP registry without auth, with the busybox base pushed to it.
pub fn plain_registry() -> Registry {
    let registry = Registry::builder().start().expect("registry");
    hoist_testkit::push_base_image(&registry, BaseImage::Busybox).expect("push busybox");
    registry
}

/// Writes `DOCKER_CONFIG=<home>/.docker` credentials for `registry` with `hoist-login`.
pub fn login(home: &Path, registry: &Registry, password: &str) {
    let status = Command::new(sibling_binary("hoist-login"))
        .arg(registry.host())
        .args(["--username", USER, "--password-env", "HOIST_TEST_PASSWORD"])
        .env("HOIST_TEST_PASSWORD", password)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .status()
        .expect("run hoist-login");
    assert!(status.success(), "hoist-login failed");
}

/// Writes `files` into a new context directory `<home>/context`.
pub fn context(home: &Path, files: &[(&str, &str)]) -> PathBuf {
    let dir = home.join("context");
    for (name, content) in files {
        let path = dir.join(name);
        let parent = path.parent().expect("context file has a parent");
        std::fs::create_dir_all(parent).expect("create context directory");
        std::fs::write(&path, content).expect("write context file");
    }
    dir
}

/// Returns `--registry-certificate HOST=CA` for a TLS registry.
pub fn certificate_args(registry: &Registry) -> Vec<String> {
    let ca = registry.ca_cert().expect("TLS registry");
    vec![
        "--registry-certificate".to_owned(),
        format!("{}={}", registry.host(), ca.display()),
    ]
}

/// Returns the manifest digest that `skopeo inspect` reports for `name` in `registry`.
pub fn registry_digest(registry: &Registry, name: &str) -> Option<String> {
    let source = ImageSource::Registry {
        reference: registry.reference(name),
        access: RegistryAccess::of(registry),
    };
    hoist_testkit::skopeo_inspect_raw(&source)
        .ok()
        .map(|raw| hoist_testkit::sha256_digest(&raw))
}

/// Returns the image config of `name` in `registry` as `skopeo inspect --config` prints it.
pub fn registry_config(registry: &Registry, name: &str) -> serde_json::Value {
    let source = ImageSource::Registry {
        reference: registry.reference(name),
        access: RegistryAccess::of(registry),
    };
    hoist_testkit::skopeo_inspect_config(&source).expect("skopeo inspect --config")
}
