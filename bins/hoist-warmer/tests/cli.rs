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
}
