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

    warmer(home.path())
        .args(["--image", &reference])
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--registry-map")
        .arg(format!("{}={}", origin.host(), mirror.host()))
        .args(["--insecure-registry", origin.host()])
        .args(["--insecure-registry", mirror.host()])
        .arg("--skip-default-registry-fallback")
        .assert()
        .success()
        .stdout(format!("{reference} {}\n", pushed[0].digest));
}

#[test]
fn warmer_tries_mapped_mirrors_in_order() {
    let origin = Registry::builder().start().unwrap();
    let empty_mirror = Registry::builder().start().unwrap();
    let mirror = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&mirror, BaseImage::Busybox).unwrap();
    let home = tempfile::tempdir().unwrap();
    let reference = origin.reference("base/busybox:latest");
    // The executor's form: one REGISTRY=MIRROR pair per entry.
    let map = format!(
        "{0}={1};{0}={2}",
        origin.host(),
        empty_mirror.host(),
        mirror.host()
    );

    warmer(home.path())
        .args(["--image", &reference])
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .args(["--registry-map", &map])
        .args(["--insecure-registry", origin.host()])
        .args(["--insecure-registry", empty_mirror.host()])
        .args(["--insecure-registry", mirror.host()])
        .arg("--skip-default-registry-fallback")
        .assert()
        .success()
        .stdout(format!("{reference} {}\n", pushed[0].digest));

    let mirror_log = std::fs::read_to_string(empty_mirror.log_path()).unwrap();
    assert!(
        mirror_log.contains("/v2/base/busybox/manifests/latest"),
        "the first mirror was not tried:\n{mirror_log}"
    );
}

#[test]
fn warmer_reads_registry_map_variable() {
    let origin = Registry::builder().start().unwrap();
    let mirror = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&mirror, BaseImage::Busybox).unwrap();
    let home = tempfile::tempdir().unwrap();
    let reference = origin.reference("base/busybox:latest");

    warmer(home.path())
        .env(
            "KANIKO_REGISTRY_MAP",
            format!("{}={}", origin.host(), mirror.host()),
        )
        .args(["--image", &reference])
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .args(["--insecure-registry", origin.host()])
        .args(["--insecure-registry", mirror.host()])
        .arg("--skip-default-registry-fallback")
        .assert()
        .success()
        .stdout(format!("{reference} {}\n", pushed[0].digest));
}

#[test]
fn invalid_registry_map_is_rejected() {
    let home = tempfile::tempdir().unwrap();
    warmer(home.path())
        .args(["--image", "r.example/app:1", "--cache-dir", "/nonexistent"])
        .args(["--registry-map", "r.example"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--registry-map"))
        .stderr(predicates::str::contains(
            "REGISTRY=MIRROR[;REGISTRY=MIRROR]",
        ));
}

#[test]
fn mirror_list_map_is_rejected() {
    // `REGISTRY=MIRROR;MIRROR`, the form hoist-warmer read before it shared the
    // executor's parser, now fails instead of being read another way.
    let home = tempfile::tempdir().unwrap();
    warmer(home.path())
        .args(["--image", "r.example/app:1", "--cache-dir", "/nonexistent"])
        .args(["--registry-map", "r.example=m1.example;m2.example"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "\"r.example=m1.example;m2.example\"",
        ));
}

#[test]
fn invalid_map_variable_is_rejected() {
    let home = tempfile::tempdir().unwrap();
    warmer(home.path())
        .env("KANIKO_REGISTRY_MAP", "r.example")
        .args(["--image", "r.example/app:1", "--cache-dir", "/nonexistent"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("KANIKO_REGISTRY_MAP"));
}

#[test]
fn empty_mirror_variable_is_rejected() {
    let home = tempfile::tempdir().unwrap();
    warmer(home.path())
        .env("KANIKO_REGISTRY_MIRROR", "")
        .args(["--image", "r.example/app:1", "--cache-dir", "/nonexistent"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("KANIKO_REGISTRY_MIRROR"));
}

#[test]
fn warmer_presents_client_certificate() {
    let registry = Registry::builder().require_client_cert().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let home = tempfile::tempdir().unwrap();
    let reference = registry.reference("base/busybox:latest");
    let ca = registry.ca_cert().unwrap();
    let cert = registry.client_cert().unwrap();
    let key = registry.client_key().unwrap();

    warmer(home.path())
        .args(["--image", &reference])
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .arg("--registry-certificate")
        .arg(format!("{}={}", registry.host(), ca.display()))
        .arg("--registry-client-cert")
        .arg(format!(
            "{}={},{}",
            registry.host(),
            cert.display(),
            key.display()
        ))
        .assert()
        .success()
        .stdout(format!("{reference} {}\n", pushed[0].digest));
}

/// Returns a `hoist-warmer` command with `home` as its home directory and without the
/// caller's credential and Kaniko mirror variables.
fn warmer(home: &std::path::Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("hoist-warmer");
    command
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("KANIKO_REGISTRY_MIRROR")
        .env_remove("KANIKO_REGISTRY_MAP");
    command
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

#[test]
fn single_image_records_its_own_platform() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let manifest = pushed.iter().find(|image| image.tag == "latest").unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");

    let output = warmer(home.path())
        .args(["--image", &manifest.reference])
        .args(["--custom-platform", "linux/s390x"])
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--insecure-registry", registry.host()])
        .assert()
        .success()
        .get_output()
        .clone();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another platform"), "{stderr}");
    let cache_index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    assert!(
        cache_index.contains(r#""architecture":"amd64""#),
        "{cache_index}"
    );
    assert!(!cache_index.contains("s390x"), "{cache_index}");
}

#[test]
fn image_digest_wins_over_tag() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let tagged = pushed.iter().find(|image| image.tag == "latest").unwrap();
    let docker = pushed
        .iter()
        .find(|image| image.tag == "latest-docker")
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    // The tag names the OCI manifest, the digest the Docker one: the digest is pulled.
    let reference = format!("{}@{}", tagged.reference, docker.digest);

    warmer(home.path())
        .args(["--image", &reference])
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--insecure-registry", registry.host()])
        .assert()
        .success()
        .stdout(format!("{reference} {}\n", docker.digest));

    let cache_index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    let recorded = format!(
        "{}/{}@{}",
        registry.host(),
        docker.repository,
        docker.digest
    );
    assert!(cache_index.contains(&recorded), "{cache_index}");
    assert!(!cache_index.contains(&tagged.digest), "{cache_index}");
}

/// Returns the mode of every file under `dir`, by path relative to it.
fn file_modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt as _;

    let mut modes = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("list the cache directory") {
            let path = entry.expect("read a cache directory entry").path();
            let metadata = std::fs::symlink_metadata(&path).expect("inspect a cache file");
            if metadata.is_dir() {
                pending.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                modes.push((name, metadata.permissions().mode() & 0o7777));
            }
        }
    }
    modes.sort();
    modes
}

#[test]
fn cache_files_readable_by_other_users() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let index = pushed.iter().find(|image| image.tag == "index").unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");

    // The usual umask, so that the expected modes do not depend on the test runner's umask.
    let output = std::process::Command::new("/bin/sh")
        .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_hoist-warmer"))
        .args(["--image", &index.reference])
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--insecure-registry", registry.host()])
        .env("HOME", home.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let modes = file_modes(&cache);
    assert!(
        modes.iter().any(|(name, _)| name == "index.json"),
        "{modes:?}"
    );
    assert!(
        modes
            .iter()
            .any(|(name, _)| name.starts_with("blobs/sha256/")),
        "{modes:?}"
    );
    for (name, mode) in &modes {
        assert_eq!(*mode, 0o644, "{name} has mode {mode:o}");
    }
}

#[test]
fn closed_stdout_still_warms_every_image() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let index = pushed.iter().find(|image| image.tag == "index").unwrap();
    let manifest = pushed.iter().find(|image| image.tag == "latest").unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hoist-warmer"))
        .args(["--image", &index.reference])
        .args(["--image", &manifest.reference])
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--insecure-registry", registry.host()])
        .env("HOME", home.path())
        .env("RUST_LOG", "error")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .stdout(writer)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert_eq!(stderr, "");
    let cache_index = std::fs::read_to_string(cache.join("index.json")).unwrap();
    assert!(cache_index.contains(&index.reference), "{cache_index}");
    assert!(cache_index.contains(&manifest.reference), "{cache_index}");
}

#[test]
fn error_names_each_cause_once() {
    let home = tempfile::tempdir().unwrap();
    let docker_dir = home.path().join(".docker");
    std::fs::create_dir(&docker_dir).unwrap();
    std::fs::write(docker_dir.join("config.json"), "{").unwrap();

    let output = warmer(home.path())
        .args(["--image", "127.0.0.1:1/app:1"])
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|line| line.starts_with("hoist-warmer: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert_eq!(error.matches("invalid JSON").count(), 1, "{error}");
}
