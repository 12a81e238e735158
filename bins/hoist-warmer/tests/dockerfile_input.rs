//! `--dockerfile` input meant to make the warmer hang or fill memory: an
//! endless device, a FIFO and an amplifying file. Each fails before any
//! registry is contacted.

use std::path::Path;
use std::time::Duration;

use assert_cmd::cargo::cargo_bin_cmd;

fn warm_dockerfile(dockerfile: &Path, cache: &Path) -> assert_cmd::assert::Assert {
    cargo_bin_cmd!("hoist-warmer")
        .arg("--dockerfile")
        .arg(dockerfile)
        .arg("--cache-dir")
        .arg(cache)
        .timeout(Duration::from_secs(120))
        .assert()
}

#[test]
fn endless_device_is_rejected() {
    let home = tempfile::tempdir().unwrap();

    warm_dockerfile(Path::new("/dev/zero"), &home.path().join("cache"))
        .failure()
        .stderr(predicates::str::contains(
            "/dev/zero: file is larger than the limit of 16777216 bytes",
        ));
}

#[test]
fn fifo_without_writer_does_not_block() {
    let home = tempfile::tempdir().unwrap();
    let fifo = home.path().join("Dockerfile");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());

    warm_dockerfile(&fifo, &home.path().join("cache"))
        .failure()
        .stderr(predicates::str::contains("file with no instructions"));
}

#[test]
fn amplifying_file_hits_expansion_limit() {
    let home = tempfile::tempdir().unwrap();
    let dockerfile = home.path().join("Dockerfile");
    let mut text = format!("ARG a={}\n", "a".repeat(64));
    text.push_str(&"ARG a=$a$a\n".repeat(14));
    text.push_str(&"FROM scratch\nARG a\nLABEL l=$a\n".repeat(100));
    std::fs::write(&dockerfile, text).unwrap();

    warm_dockerfile(&dockerfile, &home.path().join("cache"))
        .failure()
        .stderr(predicates::str::contains(format!(
            "{}:",
            dockerfile.display()
        )))
        .stderr(predicates::str::contains(
            "expanded values in the build total more than 67108864 bytes",
        ));
}
