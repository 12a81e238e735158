//! The `hoist-push` command line against a testkit registry.

use assert_cmd::cargo::cargo_bin_cmd;
use hoist_image::{read_oci_layout, write_docker_archive};
use hoist_testkit::{BaseImage, ImageSource, Registry, skopeo_inspect_raw};
use predicates::prelude::*;

fn stored_digest(registry: &Registry, name: &str) -> String {
    let raw =
        skopeo_inspect_raw(&ImageSource::in_registry(registry, name)).expect("skopeo inspect");
    hoist_testkit::sha256_digest(&raw)
}

#[test]
fn layout_push_prints_digest() {
    let registry = Registry::builder().start().unwrap();
    let files = hoist_testkit::base_image(BaseImage::Busybox).unwrap();
    let expected = read_oci_layout(&files.layout, Some("latest"))
        .unwrap()
        .rendered
        .manifest_descriptor
        .digest
        .to_string();

    cargo_bin_cmd!("hoist-push")
        .arg(&files.layout)
        .args(["--source-ref", "latest"])
        .args(["--destination", &registry.reference("cli/app:v1")])
        .args(["--destination", &registry.reference("cli/app:v2")])
        .args(["--insecure-registry", registry.host()])
        .env("HOME", tempfile::tempdir().unwrap().path())
        .assert()
        .success()
        .stdout(format!("{expected}\n"))
        // Logs to a pipe are plain text, without colour escapes.
        .stderr(predicates::str::contains("\u{1b}[").not());

    assert_eq!(stored_digest(&registry, "cli/app:v1"), expected);
    assert_eq!(stored_digest(&registry, "cli/app:v2"), expected);
}

#[test]
fn docker_archive_push_over_tls() {
    let registry = Registry::builder().tls().start().unwrap();
    let files = hoist_testkit::base_image(BaseImage::Busybox).unwrap();
    let image = read_oci_layout(&files.layout, Some("latest"))
        .unwrap()
        .image;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    write_docker_archive(&image, &archive, &["cli/archive:v1"]).unwrap();
    let ca = registry.ca_cert().unwrap();

    let output = cargo_bin_cmd!("hoist-push")
        .arg(&archive)
        .args(["--destination", &registry.reference("cli/archive:v1")])
        .arg("--registry-certificate")
        .arg(format!("{}={}", registry.host(), ca.display()))
        .args(["--chunk-size", "65536"])
        .env("HOME", dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();

    let printed = String::from_utf8(output).unwrap();
    assert_eq!(printed.trim(), stored_digest(&registry, "cli/archive:v1"));
}

#[test]
fn untrusted_registry_fails_with_its_name() {
    let registry = Registry::builder().tls().start().unwrap();
    let files = hoist_testkit::base_image(BaseImage::Busybox).unwrap();

    cargo_bin_cmd!("hoist-push")
        .arg(&files.layout)
        .args(["--source-ref", "latest"])
        .args(["--destination", &registry.reference("cli/app:v1")])
        .env("HOME", tempfile::tempdir().unwrap().path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(registry.host()));
}

/// Counts the requests in the registry's log, the testkit's readiness probe included.
fn logged_requests(registry: &Registry) -> usize {
    let log = std::fs::read_to_string(registry.log_path()).expect("registry log");
    log.lines()
        .filter(|line| line.contains("response completed"))
        .count()
}

fn busybox_digest(files: &hoist_testkit::BaseImageFiles) -> String {
    read_oci_layout(&files.layout, Some("latest"))
        .expect("busybox layout reads")
        .rendered
        .manifest_descriptor
        .digest
        .to_string()
}

#[test]
fn wrong_digest_destination_fails_before_upload() {
    let registry = Registry::builder().start().unwrap();
    let files = hoist_testkit::base_image(BaseImage::Busybox).unwrap();
    let actual = busybox_digest(&files);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let destination = registry.reference(&format!("cli/app@{wrong}"));
    let requests_before = logged_requests(&registry);

    let output = cargo_bin_cmd!("hoist-push")
        .arg(&files.layout)
        .args(["--source-ref", "latest"])
        .args(["--destination", &destination])
        .args(["--insecure-registry", registry.host()])
        .env("HOME", tempfile::tempdir().unwrap().path())
        .assert()
        .failure()
        .get_output()
        .clone();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&destination), "{stderr}");
    assert!(stderr.contains(&wrong), "{stderr}");
    assert!(stderr.contains(&actual), "{stderr}");
    assert_eq!(logged_requests(&registry), requests_before);
}

#[test]
fn tag_and_digest_destination_is_rejected() {
    let registry = Registry::builder().start().unwrap();
    let files = hoist_testkit::base_image(BaseImage::Busybox).unwrap();
    let digest = busybox_digest(&files);
    let requests_before = logged_requests(&registry);

    cargo_bin_cmd!("hoist-push")
        .arg(&files.layout)
        .args(["--source-ref", "latest"])
        .args([
            "--destination",
            &registry.reference(&format!("cli/app:v1@{digest}")),
        ])
        .args(["--insecure-registry", registry.host()])
        .env("HOME", tempfile::tempdir().unwrap().path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("both a tag and a digest"));

    assert_eq!(logged_requests(&registry), requests_before);
}

#[test]
fn ipv6_loopback_destination_is_pushed() {
    let registry = Registry::builder().ipv6().start().unwrap();
    let files = hoist_testkit::base_image(BaseImage::Busybox).unwrap();
    let expected = busybox_digest(&files);

    // No transport flag: [::1] falls back to plain HTTP as 127.0.0.1 does.
    cargo_bin_cmd!("hoist-push")
        .arg(&files.layout)
        .args(["--source-ref", "latest"])
        .args(["--destination", &registry.reference("cli/app:v1")])
        .env("HOME", tempfile::tempdir().unwrap().path())
        .assert()
        .success()
        .stdout(format!("{expected}\n"));

    let stored = registry
        .client()
        .unwrap()
        .get_manifest("cli/app", "v1")
        .unwrap();
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body_digest(), expected);
}

#[test]
fn credentials_in_destination_are_not_printed() {
    let output = cargo_bin_cmd!("hoist-push")
        .arg("/nonexistent-layout")
        .args(["-d", "ci:S3cretPass@127.0.0.1:5999/app:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("S3cretPass"), "{stderr}");
    assert!(stderr.contains("***@127.0.0.1:5999/app:1"), "{stderr}");
}

#[test]
fn bad_digest_file_fails_before_push() {
    let registry = Registry::builder().start().unwrap();
    let requests_before = logged_requests(&registry);
    let output = cargo_bin_cmd!("hoist-push")
        .arg("/nonexistent-layout")
        .args(["-d", &registry.reference("app:1")])
        .args(["--digest-file", "/nonexistent-dir/digest.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the directory /nonexistent-dir does not exist"),
        "{stderr}"
    );
    assert_eq!(logged_requests(&registry), requests_before);
}
