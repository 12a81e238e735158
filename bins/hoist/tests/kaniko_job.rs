//! The CI job's Kaniko command line against an htpasswd registry over TLS, with
//! credentials in `DOCKER_CONFIG` written by `hoist-login`.

mod support;

use predicates::prelude::*;
use support::{PASSWORD, certificate_args, context, hoist, login, registry_digest, tls_registry};

const DOCKERFILE: &str = "\
FROM {REGISTRY}/base/busybox:latest
ARG TOOL_VERSION=v0.1.0
COPY hello.txt /opt/hello.txt
RUN echo \"tool ${TOOL_VERSION#v}\" > /opt/version && echo step-output-visible
USER nobody
";

#[test]
fn kaniko_command_pushes_two_tags() {
    let registry = tls_registry();
    let home = support::temporary_dir();
    login(home.path(), &registry, PASSWORD);
    let dockerfile = DOCKERFILE.replace("{REGISTRY}", registry.host());
    let dir = context(
        home.path(),
        &[("Dockerfile", &dockerfile), ("hello.txt", "hello\n")],
    );
    let digest_file = home.path().join("digest");

    let assert = hoist(home.path())
        .arg("--context")
        .arg(&dir)
        .arg("--dockerfile")
        .arg(dir.join("Dockerfile"))
        .args(["--destination", &registry.reference("builder:latest")])
        .args(["--destination", &registry.reference("builder:0a1b2c3")])
        .args(["--build-arg", "TOOL_VERSION=v1.2.3"])
        .args(certificate_args(&registry))
        .arg("--digest-file")
        .arg(&digest_file)
        .assert()
        .success();
    let output = assert.get_output();
    let log = String::from_utf8_lossy(&output.stderr);

    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let latest = registry_digest(&registry, "builder:latest");
    let short_sha = registry_digest(&registry, "builder:0a1b2c3");
    assert_eq!(latest.as_deref(), Some(digest.as_str()));
    assert_eq!(short_sha.as_deref(), Some(digest.as_str()));

    assert!(
        log.contains("step-output-visible"),
        "RUN output missing: {log}"
    );
    assert!(
        log.contains("line=4"),
        "instruction line number missing: {log}"
    );
    assert!(log.contains("stage"), "stage missing: {log}");
    assert!(
        log.contains("builder:0a1b2c3") && log.contains(&digest),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "the password leaked into the log");
    let config = support::registry_config(&registry, "builder:latest");
    assert_eq!(config["config"]["User"], "nobody");
}

#[test]
fn refused_credentials_fail_before_building() {
    let registry = tls_registry();
    let home = support::temporary_dir();
    login(home.path(), &registry, "wrong-password");
    let dockerfile = DOCKERFILE.replace("{REGISTRY}", registry.host());
    let dir = context(
        home.path(),
        &[("Dockerfile", &dockerfile), ("hello.txt", "hello\n")],
    );
    let started = std::time::Instant::now();

    hoist(home.path())
        .arg("--context")
        .arg(&dir)
        .args(["--destination", &registry.reference("builder:latest")])
        .args(certificate_args(&registry))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("step-output-visible").not())
        .stderr(predicate::str::contains("check the credentials"))
        .stderr(predicate::str::contains("wrong-password").not());

    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(registry_digest(&registry, "builder:latest"), None);
}
