//! Bad input: each fails with one line that names what to fix and exit status 2, before
//! anything is built or pushed.

mod support;

use predicates::prelude::*;
use support::{context, hoist};

/// Runs `hoist` with a busybox Dockerfile context and `extra`, and returns stderr after
/// checking exit status 2 and a one-line error.
fn usage_error(extra: &[&str]) -> String {
    let home = support::temporary_dir();
    let dir = context(home.path(), &[("Dockerfile", "FROM scratch\nCOPY a /a\n")]);
    let output = hoist(home.path())
        .arg("--context")
        .arg(&dir)
        .args(extra)
        .output()
        .expect("run hoist");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("hoist: error: "), "{stderr}");
    stderr
}

#[test]
fn unknown_flag_is_usage_error() {
    let stderr = usage_error(&["--no-such-flag"]);
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    let stderr = usage_error(&["--no-pus"]);
    assert!(
        stderr.contains("--no-push"),
        "the tip names the flag: {stderr}"
    );
}

#[test]
fn unsupported_kaniko_flags_are_rejected() {
    let cases: &[(&[&str], &str)] = &[
        (&["--cache"], "--cache"),
        (&["--cache=true"], "--cache"),
        (&["--cache-repo", "r.example/cache"], "--cache-repo"),
        (&["--cache-ttl", "6h"], "--cache-ttl"),
        (&["--cache-copy-layers"], "--cache-copy-layers"),
        (&["--cache-run-layers"], "--cache-run-layers"),
        (&["--compressed-caching=true"], "--compressed-caching"),
        (&["--no-push-cache"], "--no-push-cache"),
        (&["--git", "branch=main"], "--git"),
        (&["--use-new-run"], "--use-new-run"),
        (
            &["--image-fs-extract-retry", "2"],
            "--image-fs-extract-retry",
        ),
        (&["--force-build-metadata"], "--force-build-metadata"),
        (&["--credential-helpers", "ecr"], "--credential-helpers"),
        (&["--ignore-path", "/var/cache"], "--ignore-path"),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["--no-push"];
        args.extend_from_slice(extra);
        let stderr = usage_error(&args);
        assert!(
            stderr.contains(&format!("{flag} is not supported yet")),
            "{extra:?}: {stderr}"
        );
    }
}

#[test]
fn remote_contexts_are_rejected() {
    for context in [
        "s3://bucket/ctx.tar.gz",
        "gs://bucket/ctx.tar.gz",
        "az://a/b",
        "git://example/repo.git",
        "https://example.invalid/ctx.tar.gz",
    ] {
        let home = support::temporary_dir();
        hoist(home.path())
            .args(["--context", context, "--no-push"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is not supported yet"));
    }
}

#[test]
fn invalid_destination_tag_is_rejected() {
    let stderr = usage_error(&["--destination", "127.0.0.1:5000/app:bad tag!"]);
    assert!(stderr.contains("invalid --destination"), "{stderr}");
}

#[test]
fn missing_destination_needs_no_push() {
    let stderr = usage_error(&[]);
    assert!(stderr.contains("--no-push"), "{stderr}");
}

#[test]
fn missing_dockerfile_is_reported() {
    let stderr = usage_error(&["--no-push", "--dockerfile", "Containerfile"]);
    assert!(stderr.contains("no Dockerfile"), "{stderr}");
    assert!(stderr.contains("--dockerfile"), "{stderr}");
}

#[test]
fn unreadable_context_is_reported() {
    let stderr = usage_error(&["--no-push", "--context", "/nonexistent/hoist-context"]);
    assert!(
        stderr.contains("cannot read the context directory"),
        "{stderr}"
    );
}

#[test]
fn invalid_snapshot_mode_is_rejected() {
    let stderr = usage_error(&["--no-push", "--snapshot-mode", "fast"]);
    assert!(stderr.contains("--snapshot-mode"), "{stderr}");
}

#[test]
fn root_kaniko_dir_is_rejected() {
    let stderr = usage_error(&["--no-push", "--kaniko-dir", "/"]);
    assert!(stderr.contains("--kaniko-dir must not be /"), "{stderr}");
}

#[test]
fn kaniko_dir_comes_from_environment() {
    let home = support::temporary_dir();
    let dir = context(home.path(), &[("Dockerfile", "FROM scratch\n")]);
    // `hoist()` passes --kaniko-dir, so this command is built by hand.
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_hoist"))
        .env("KANIKO_DIR", "/")
        .arg("--context")
        .arg(&dir)
        .arg("--no-push")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--kaniko-dir must not be /"));
}

#[test]
fn invalid_kaniko_no_push_is_rejected() {
    let home = support::temporary_dir();
    let dir = context(home.path(), &[("Dockerfile", "FROM scratch\n")]);
    hoist(home.path())
        .env("KANIKO_NO_PUSH", "maybe")
        .arg("--context")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("KANIKO_NO_PUSH"));
}

#[test]
fn invalid_compression_level_is_rejected() {
    let stderr = usage_error(&[
        "--no-push",
        "--compression",
        "zstd",
        "--compression-level",
        "30",
    ]);
    assert!(stderr.contains("--compression-level 30"), "{stderr}");
}

#[test]
fn invalid_registry_map_is_rejected() {
    let stderr = usage_error(&["--no-push", "--registry-map", "gcr.io"]);
    assert!(stderr.contains("REGISTRY=MIRROR"), "{stderr}");
}

#[test]
fn help_groups_flags_with_units() {
    hoist(std::path::Path::new("/var/tmp"))
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Build input:"))
        .stdout(predicate::str::contains("Output and push:"))
        .stdout(predicate::str::contains("Registries and transport:"))
        .stdout(predicate::str::contains("Kaniko flags not supported yet"))
        .stdout(predicate::str::contains("(count)"));
}

#[test]
fn invalid_client_certificate_is_rejected() {
    let stderr = usage_error(&["--no-push", "--registry-client-cert", "r.example"]);
    assert!(stderr.contains("--registry-client-cert"), "{stderr}");
}

#[test]
fn json_log_reports_error_as_json() {
    let home = support::temporary_dir();
    let output = hoist(home.path())
        .args([
            "--log-format",
            "json",
            "--no-push",
            "--context",
            "/nonexistent/ctx",
        ])
        .output()
        .expect("run hoist");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let event: serde_json::Value = serde_json::from_str(stderr.trim()).expect("one JSON line");
    assert_eq!(event["level"], "ERROR");
    assert!(
        event["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/ctx")
    );
}

#[test]
fn uppercase_destination_is_rejected_offline() {
    // Read as a Docker Hub name, this would send the push check to the internet.
    let stderr = usage_error(&["--destination", "UPPER/case"]);
    assert!(stderr.contains("must be lowercase"), "{stderr}");
}

#[test]
fn digest_file_in_missing_directory() {
    let stderr = usage_error(&[
        "--no-push",
        "--digest-file",
        "/var/tmp/hoist-no-such-directory/digest",
    ]);
    assert!(stderr.contains("--digest-file"), "{stderr}");
}

#[test]
fn destination_port_out_of_range_is_rejected() {
    let stderr = usage_error(&["--destination", "host:99999/x:1"]);
    assert!(stderr.contains("invalid registry port"), "{stderr}");
}

#[test]
fn tag_and_digest_destination_is_rejected() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let destination = format!("127.0.0.1:5000/app:v1@{digest}");
    let stderr = usage_error(&["--destination", &destination]);
    assert!(stderr.contains("invalid --destination"), "{stderr}");
    assert!(stderr.contains("both a tag and a digest"), "{stderr}");
}
