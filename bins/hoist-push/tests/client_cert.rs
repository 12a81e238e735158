//! `hoist-push --registry-client-cert` against a testkit registry that requires a client
//! certificate.

use std::path::Path;

use assert_cmd::cargo::cargo_bin_cmd;
use hoist_testkit::{BaseImage, ImageSource, Registry, skopeo_inspect_raw};
use predicates::prelude::*;

fn client_cert_registry() -> Registry {
    Registry::builder()
        .require_client_cert()
        .start()
        .expect("registry starts")
}

/// Returns a `hoist-push` of the busybox layout to `name` in `registry`, which trusts the
/// registry's CA and has a home directory without credentials.
fn push_command(registry: &Registry, name: &str, home: &Path) -> assert_cmd::Command {
    let files = hoist_testkit::base_image(BaseImage::Busybox).expect("busybox builds");
    let ca = registry.ca_cert().expect("TLS registry");
    let mut command = cargo_bin_cmd!("hoist-push");
    command
        .arg(&files.layout)
        .args(["--source-ref", "latest"])
        .args(["--destination", &registry.reference(name)])
        .arg("--registry-certificate")
        .arg(format!("{}={}", registry.host(), ca.display()))
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE");
    command
}

fn client_cert_arg(registry: &Registry, cert: &Path, key: &Path) -> String {
    format!("{}={},{}", registry.host(), cert.display(), key.display())
}

#[test]
fn client_cert_push_prints_digest() {
    let registry = client_cert_registry();
    let home = tempfile::tempdir().expect("temporary directory");
    let cert = registry.client_cert().expect("client certificate");
    let key = registry.client_key().expect("client key");

    let output = push_command(&registry, "mtls/app:v1", home.path())
        .arg("--registry-client-cert")
        .arg(client_cert_arg(&registry, cert, key))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();

    let raw = skopeo_inspect_raw(&ImageSource::in_registry(&registry, "mtls/app:v1"))
        .expect("skopeo reads with the client certificate");
    let printed = String::from_utf8(output).expect("UTF-8 output");
    assert_eq!(printed.trim(), hoist_testkit::sha256_digest(&raw));
}

#[test]
fn push_without_client_cert_fails() {
    let registry = client_cert_registry();
    let home = tempfile::tempdir().expect("temporary directory");

    push_command(&registry, "mtls/app:v1", home.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(registry.host()))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn unusable_client_key_names_file() {
    let registry = client_cert_registry();
    let home = tempfile::tempdir().expect("temporary directory");
    let cert = registry.client_cert().expect("client certificate");
    let key = home.path().join("not-a.key");
    std::fs::write(&key, "this is no PEM key\n").expect("write the file");

    push_command(&registry, "mtls/app:v1", home.path())
        .arg("--registry-client-cert")
        .arg(client_cert_arg(&registry, cert, &key))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(registry.host()))
        .stderr(predicate::str::contains(key.display().to_string()))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn client_cert_flag_needs_key() {
    cargo_bin_cmd!("hoist-push")
        .arg("/nonexistent")
        .args(["--destination", "127.0.0.1:5000/app:v1"])
        .args(["--registry-client-cert", "127.0.0.1:5000=/client.cert"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("HOST=CERT,KEY"));
}
