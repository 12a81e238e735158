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

/// Writes `text` as `Dockerfile` in `dir` and returns its path.
fn write_dockerfile(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("Dockerfile");
    std::fs::write(&path, text).expect("write the Dockerfile");
    path
}

#[test]
fn warmer_pulls_dockerfile_from_images() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let manifest = pushed.iter().find(|image| image.tag == "latest").unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let dockerfile = write_dockerfile(
        home.path(),
        "ARG REGISTRY\nARG TAG=unset\n\
         FROM ${REGISTRY}/base/busybox:${TAG} AS build\n\
         RUN true\n\
         FROM build AS again\n\
         FROM scratch\n\
         COPY --from=build /bin/busybox /busybox\n",
    );

    cargo_bin_cmd!("hoist-warmer")
        .arg("--dockerfile")
        .arg(&dockerfile)
        .args(["--build-arg", &format!("REGISTRY={}", registry.host())])
        .args(["--build-arg", "TAG=latest"])
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--insecure-registry", registry.host()])
        .env("HOME", home.path())
        .assert()
        .success()
        .stdout(format!("{} {}\n", manifest.reference, manifest.digest));

    let cache_index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    assert!(cache_index.contains(&manifest.reference), "{cache_index}");
    assert!(cache_index.contains(&manifest.digest), "{cache_index}");
}

#[test]
fn warmer_combines_image_and_dockerfile() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let index = pushed.iter().find(|image| image.tag == "index").unwrap();
    let manifest = pushed.iter().find(|image| image.tag == "latest").unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let dockerfile = write_dockerfile(
        home.path(),
        &format!("FROM {0}\nFROM {1}\n", manifest.reference, index.reference),
    );

    cargo_bin_cmd!("hoist-warmer")
        .args(["--image", &index.reference])
        .arg("--dockerfile")
        .arg(&dockerfile)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--insecure-registry", registry.host()])
        .env("HOME", home.path())
        .assert()
        .success()
        .stdout(format!(
            "{0} {2}\n{1} {2}\n",
            index.reference, manifest.reference, manifest.digest
        ));

    let cache_index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    assert!(cache_index.contains(&index.reference), "{cache_index}");
    assert!(cache_index.contains(&manifest.reference), "{cache_index}");
}

#[test]
fn invalid_from_names_file_and_line() {
    let home = tempfile::tempdir().unwrap();
    let dockerfile = write_dockerfile(
        home.path(),
        "ARG NAME=Upper\nFROM scratch\nFROM r.example/${NAME}\n",
    );

    cargo_bin_cmd!("hoist-warmer")
        .arg("--dockerfile")
        .arg(&dockerfile)
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .assert()
        .failure()
        .stderr(predicates::str::contains(format!(
            "{}:3:",
            dockerfile.display()
        )))
        .stderr(predicates::str::contains("\"r.example/Upper\""));
}

#[test]
fn image_or_dockerfile_required() {
    cargo_bin_cmd!("hoist-warmer")
        .args(["--cache-dir", "/nonexistent"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("--image"))
        .stderr(predicates::str::contains("--dockerfile"));
}
