//! The `hoist-warmer` command line against a testkit registry.

use assert_cmd::cargo::cargo_bin_cmd;
use hoist_testkit::{BaseImage, Registry};

#[test]
fn warmer_fills_cache_from_index() {
    let registry = Registry::builder()
        .tls()
        .htpasswd("warmer", "warm-pass-3")
        .start()
        .unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let index = pushed.iter().find(|image| image.tag == "index").unwrap();
    let manifest = pushed.iter().find(|image| image.tag == "latest").unwrap();
    let home = tempfile::tempdir().unwrap();
    let docker_dir = home.path().join(".docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"d2FybWVyOndhcm0tcGFzcy0z"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let cache = home.path().join("cache");
    let ca = registry.ca_cert().unwrap();

    cargo_bin_cmd!("hoist-warmer")
        .args(["--image", &index.reference])
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--registry-certificate")
        .arg(format!("{}={}", registry.host(), ca.display()))
        .env("HOME", home.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .assert()
        .success()
        .stdout(format!("{} {}\n", index.reference, manifest.digest));

    let hex = manifest.digest.trim_start_matches("sha256:");
    assert!(cache.join("blobs/sha256").join(hex).is_file());
    let cache_index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    assert!(cache_index.contains(&manifest.digest), "{cache_index}");
    assert!(cache_index.contains(&index.reference), "{cache_index}");
}

#[test]
fn warmer_pulls_through_registry_map() {
    let origin = Registry::builder().start().unwrap();
    let mirror = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&mirror, BaseImage::Busybox).unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let reference = origin.reference("base/busybox:latest");

    cargo_bin_cmd!("hoist-warmer")
        .args(["--image", &reference])
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--registry-map")
        .arg(format!("{}={}", origin.host(), mirror.host()))
        .args(["--insecure-registry", origin.host()])
        .args(["--insecure-registry", mirror.host()])
        .arg("--skip-default-registry-fallback")
        .env("HOME", home.path())
        .assert()
        .success()
        .stdout(format!("{reference} {}\n", pushed[0].digest));
}

#[test]
fn invalid_registry_map_is_rejected() {
    cargo_bin_cmd!("hoist-warmer")
        .args(["--image", "r.example/app:1", "--cache-dir", "/nonexistent"])
        .args(["--registry-map", "r.example"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("REGISTRY=MIRROR"));
}
