//! Each executor flag shows its effect on a build of the busybox base from loopback
//! registries that the tests start.

mod support;

use std::path::Path;
use std::process::Output;

use hoist_testkit::{BaseImage, Fault, FaultProxy, ImageSource, Registry};
use support::{PASSWORD, certificate_args, context, hoist, login, registry_digest};

/// Builds `dockerfile` (with `{REGISTRY}` replaced by `registry`'s host) from a context
/// in `home`, with `extra` flags, and returns the output.
fn build(home: &Path, registry: &str, dockerfile: &str, extra: &[&str]) -> Output {
    let dockerfile = dockerfile.replace("{REGISTRY}", registry);
    let dir = context(home, &[("Dockerfile", &dockerfile), ("a.txt", "a\n")]);
    hoist(home)
        .arg("--context")
        .arg(&dir)
        .args(extra)
        .output()
        .expect("run hoist")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}", stderr(output));
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

const SIMPLE: &str = "FROM {REGISTRY}/base/busybox:latest\nCOPY a.txt /a.txt\n";

#[test]
fn outputs_and_digest_files_are_written() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let out = home.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dockerfile =
        "FROM {REGISTRY}/base/busybox:latest\nARG GREETING\nLABEL greeting=$GREETING\n";
    let latest = registry.reference("app:latest");
    let tagged = registry.reference("app:v1");
    let output = hoist(home.path())
        .env("GREETING", "hello-from-env")
        .arg("--context")
        .arg(context(
            home.path(),
            &[(
                "Dockerfile",
                &dockerfile.replace("{REGISTRY}", registry.host()),
            )],
        ))
        .args(["--destination", &latest, "--destination", &tagged])
        .args([
            "--build-arg",
            "GREETING",
            "--label",
            "org.example.team=infra",
        ])
        .args(["--tar-path", path_arg(&out.join("image.tar"))])
        .args(["--oci-layout-path", path_arg(&out.join("layout"))])
        .args(["--digest-file", path_arg(&out.join("digest"))])
        .args(["--image-name-with-digest-file", path_arg(&out.join("name"))])
        .args([
            "--image-name-tag-with-digest-file",
            path_arg(&out.join("name-tag")),
        ])
        .output()
        .unwrap();
    assert_success(&output);

    let digest = std::fs::read_to_string(out.join("digest")).unwrap();
    assert_eq!(
        registry_digest(&registry, "app:v1").as_deref(),
        Some(digest.as_str())
    );
    let name = std::fs::read_to_string(out.join("name")).unwrap();
    assert_eq!(name, format!("{}/app@{digest}\n", registry.host()));
    let name_tag = std::fs::read_to_string(out.join("name-tag")).unwrap();
    assert_eq!(name_tag, format!("{latest}@{digest}\n{tagged}@{digest}\n"));

    let layout = hoist_image::read_oci_layout(&out.join("layout"), Some("v1")).unwrap();
    assert_eq!(
        layout.rendered.manifest_descriptor.digest.to_string(),
        digest
    );
    let archive = hoist_image::read_docker_archive(&out.join("image.tar"), Some(&tagged)).unwrap();
    assert_eq!(archive.image.layers().len(), layout.image.layers().len());

    let config = support::registry_config(&registry, "app:latest");
    assert_eq!(config["config"]["Labels"]["org.example.team"], "infra");
    assert_eq!(config["config"]["Labels"]["greeting"], "hello-from-env");
}

#[test]
fn no_push_leaves_registry_untouched() {
    let registry = support::plain_registry();
    for (flag, env) in [(Some("--no-push"), None), (None, Some("true"))] {
        let home = support::temporary_dir();
        let dockerfile = SIMPLE.replace("{REGISTRY}", registry.host());
        let mut command = hoist(home.path());
        command
            .arg("--context")
            .arg(context(
                home.path(),
                &[("Dockerfile", &dockerfile), ("a.txt", "a\n")],
            ))
            .args(["--destination", &registry.reference("nopush:latest")]);
        if let Some(flag) = flag {
            command.arg(flag);
        }
        if let Some(value) = env {
            command.env("KANIKO_NO_PUSH", value);
        }
        command.assert().success();
        assert_eq!(registry_digest(&registry, "nopush:latest"), None);
    }
}

#[test]
fn reproducible_builds_repeat_digest() {
    let registry = support::plain_registry();
    let mut digests = Vec::new();
    for _ in 0..2 {
        let home = support::temporary_dir();
        let digest_file = home.path().join("digest");
        let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN echo built > /built\n";
        let output = build(
            home.path(),
            registry.host(),
            dockerfile,
            &[
                "--no-push",
                "--reproducible",
                "--digest-file",
                path_arg(&digest_file),
            ],
        );
        assert_success(&output);
        digests.push(std::fs::read_to_string(&digest_file).unwrap());
        // Let the wall clock move on, so that only --reproducible keeps the times equal.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(digests[0], digests[1]);
}

/// Counts the requests with `method` whose log line contains `path_part` in the
/// registry's log.
fn logged_requests(registry: &Registry, method: &str, path_part: &str) -> usize {
    let log = std::fs::read_to_string(registry.log_path()).expect("registry log");
    log.lines()
        .filter(|line| line.contains("response completed"))
        .filter(|line| line.contains(&format!("http.request.method={method} ")))
        .filter(|line| line.contains(path_part))
        .count()
}

#[test]
fn digest_destination_must_match_image() {
    let registry = support::plain_registry();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN echo pinned > /pinned\n";
    let home = support::temporary_dir();
    let digest_file = home.path().join("digest");
    let flags = ["--reproducible", "--digest-file", path_arg(&digest_file)];
    let first = build(
        home.path(),
        registry.host(),
        dockerfile,
        &[&["--no-push"][..], &flags[..]].concat(),
    );
    assert_success(&first);
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    std::fs::remove_file(&digest_file).unwrap();

    let wrong = format!("sha256:{}", "0".repeat(64));
    let wrong_destination = registry.reference(&format!("pinned@{wrong}"));
    let home = support::temporary_dir();
    let tar_path = home.path().join("image.tar");
    let failed = build(
        home.path(),
        registry.host(),
        dockerfile,
        &[
            &["--destination", &wrong_destination][..],
            &["--tar-path", path_arg(&tar_path)],
            &flags[..],
        ]
        .concat(),
    );
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let message = stderr(&failed);
    assert!(message.contains(&wrong_destination), "{message}");
    assert!(message.contains(&digest), "{message}");
    assert!(!tar_path.exists());
    assert!(!digest_file.exists());
    assert_eq!(logged_requests(&registry, "PUT", "/v2/pinned/"), 0);
    assert_eq!(logged_requests(&registry, "PATCH", "/v2/pinned/"), 0);

    let destination = registry.reference(&format!("pinned@{digest}"));
    let home = support::temporary_dir();
    let name_tag_file = home.path().join("name-tag");
    let pushed = build(
        home.path(),
        registry.host(),
        dockerfile,
        &[
            &["--destination", &destination][..],
            &[
                "--image-name-tag-with-digest-file",
                path_arg(&name_tag_file),
            ],
            &flags[..],
        ]
        .concat(),
    );
    assert_success(&pushed);
    assert_eq!(
        registry_digest(&registry, &format!("pinned@{digest}")).as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        std::fs::read_to_string(&name_tag_file).unwrap(),
        format!("{destination}\n")
    );
}

#[test]
fn zstd_compression_sets_layer_type() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let layout = home.path().join("layout");
    let output = build(
        home.path(),
        registry.host(),
        SIMPLE,
        &[
            "--no-push",
            "--compression",
            "zstd",
            "--compression-level",
            "5",
        ],
    );
    assert!(output.status.success());
    let output = build(
        home.path(),
        registry.host(),
        SIMPLE,
        &[
            "--no-push",
            "--compression=zstd",
            "--oci-layout-path",
            path_arg(&layout),
        ],
    );
    assert_success(&output);
    let image = hoist_image::read_oci_layout(&layout, None).unwrap();
    let new_layer = image.rendered.manifest.layers.last().unwrap();
    assert!(
        new_layer.media_type.ends_with("+zstd"),
        "{}",
        new_layer.media_type
    );
}

const STAGES: &str = "\
FROM {REGISTRY}/base/busybox:latest AS broken
RUN echo unused-stage-ran && false
FROM {REGISTRY}/base/busybox:latest AS app
RUN echo app > /app
FROM app AS extra
RUN echo extra-stage-ran
";

#[test]
fn unused_stages_build_unless_skipped() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let all = build(
        home.path(),
        registry.host(),
        STAGES,
        &["--no-push", "--target", "app"],
    );
    assert_eq!(all.status.code(), Some(1), "{}", stderr(&all));
    assert!(stderr(&all).contains("unused-stage-ran"));

    let home = support::temporary_dir();
    let skipped = build(
        home.path(),
        registry.host(),
        STAGES,
        &["--no-push", "--target", "app", "--skip-unused-stages"],
    );
    assert_success(&skipped);
    assert!(!stderr(&skipped).contains("unused-stage-ran"));
    assert!(!stderr(&skipped).contains("extra-stage-ran"));
}

#[test]
fn unused_stage_for_other_platform_is_skipped() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let dockerfile = "\
FROM --platform=linux/arm64 {REGISTRY}/base/busybox:latest AS tools
RUN echo arm-stage-ran
FROM {REGISTRY}/base/busybox:latest AS app
RUN echo app > /app
";
    let output = build(home.path(), registry.host(), dockerfile, &["--no-push"]);
    assert_success(&output);
    let stderr = stderr(&output);
    assert!(!stderr.contains("arm-stage-ran"), "{stderr}");
    assert!(
        stderr.contains("skipping unused stage for platform linux/arm64"),
        "{stderr}"
    );

    let used = format!("{dockerfile}COPY --from=tools /bin/busybox /tools-busybox\n");
    let home = support::temporary_dir();
    let output = build(home.path(), registry.host(), &used, &["--no-push"]);
    let stderr = self::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:1: stage tools requests platform"),
        "{stderr}"
    );
}

#[test]
fn tarball_contexts_are_extracted() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let dockerfile = SIMPLE.replace("{REGISTRY}", registry.host());
    let source = context(
        home.path(),
        &[("app/Dockerfile", &dockerfile), ("app/a.txt", "a\n")],
    );
    let tarball = home.path().join("context.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&source)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());

    hoist(home.path())
        .arg(format!("--context=tar://{}", tarball.display()))
        .args(["--context-sub-path", "app", "--no-push"])
        .assert()
        .success();
    hoist(home.path())
        .args([
            "--context",
            "tar://stdin",
            "--context-sub-path",
            "app",
            "--no-push",
        ])
        .pipe_stdin(&tarball)
        .unwrap()
        .assert()
        .success();
    hoist(home.path())
        .arg(format!("--context=dir://{}", source.display()))
        .args(["--context-sub-path", "../..", "--no-push"])
        .assert()
        .code(2);
}

#[test]
fn cache_dir_serves_base_offline() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let cache = home.path().join("cache");
    let reference = registry.reference("base/busybox:latest");
    let warmed = std::process::Command::new(support::sibling_binary("hoist-warmer"))
        .args(["--image", &reference, "--cache-dir", path_arg(&cache)])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(warmed.status.success(), "{}", stderr(&warmed));
    let host = registry.host().to_owned();
    drop(registry);

    let output = build(
        home.path(),
        &host,
        SIMPLE,
        &["--no-push", "--cache-dir", path_arg(&cache)],
    );
    assert_success(&output);
    assert!(stderr(&output).contains("found in the cache directory"));

    let home = support::temporary_dir();
    let uncached = build(home.path(), &host, SIMPLE, &["--no-push"]);
    assert_eq!(uncached.status.code(), Some(1), "the registry is stopped");
}

#[test]
fn custom_platform_selects_from_index() {
    let registry = support::plain_registry();
    let dockerfile = "FROM {REGISTRY}/base/busybox:index\nRUN true\n";
    let home = support::temporary_dir();
    let amd64 = build(
        home.path(),
        registry.host(),
        dockerfile,
        &["--no-push", "--custom-platform", "linux/amd64"],
    );
    assert_success(&amd64);
    let home = support::temporary_dir();
    let arm64 = build(
        home.path(),
        registry.host(),
        dockerfile,
        &["--no-push", "--custom-platform", "linux/arm64"],
    );
    assert_eq!(arm64.status.code(), Some(1));
    assert!(stderr(&arm64).contains("linux/arm64"), "{}", stderr(&arm64));
}

#[test]
fn registry_map_pulls_from_mirror() {
    let origin = Registry::builder().start().unwrap();
    let mirror = support::plain_registry();
    let map = format!("{}={}", origin.host(), mirror.host());

    let home = support::temporary_dir();
    let mapped = build(
        home.path(),
        origin.host(),
        SIMPLE,
        &[
            "--no-push",
            "--registry-map",
            &map,
            "--skip-default-registry-fallback",
        ],
    );
    assert_success(&mapped);

    let home = support::temporary_dir();
    let dockerfile = SIMPLE.replace("{REGISTRY}", origin.host());
    hoist(home.path())
        .env("KANIKO_REGISTRY_MAP", &map)
        .arg("--context")
        .arg(context(
            home.path(),
            &[("Dockerfile", &dockerfile), ("a.txt", "a\n")],
        ))
        .arg("--no-push")
        .assert()
        .success();

    let home = support::temporary_dir();
    let unmapped = build(home.path(), origin.host(), SIMPLE, &["--no-push"]);
    assert_eq!(unmapped.status.code(), Some(1), "the origin has no busybox");
}

#[test]
fn mirror_failure_falls_back_unless_skipped() {
    let origin = support::plain_registry();
    let empty_mirror = Registry::builder().start().unwrap();
    let map = format!("{}={}", origin.host(), empty_mirror.host());

    let home = support::temporary_dir();
    let fallback = build(
        home.path(),
        origin.host(),
        SIMPLE,
        &["--no-push", "--registry-map", &map],
    );
    assert_success(&fallback);

    let home = support::temporary_dir();
    let skipped = build(
        home.path(),
        origin.host(),
        SIMPLE,
        &[
            "--no-push",
            "--registry-map",
            &map,
            "--skip-default-registry-fallback",
        ],
    );
    assert_eq!(skipped.status.code(), Some(1));
}

#[test]
fn tls_flags_split_pull_and_push() {
    let registry = Registry::builder().tls().start().unwrap();
    hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let destination = registry.reference("tls:latest");

    let home = support::temporary_dir();
    let untrusted = build(home.path(), registry.host(), SIMPLE, &["--no-push"]);
    assert_eq!(untrusted.status.code(), Some(1), "{}", stderr(&untrusted));

    let home = support::temporary_dir();
    let pull_only = build(
        home.path(),
        registry.host(),
        SIMPLE,
        &["--skip-tls-verify-pull", "--destination", &destination],
    );
    assert_eq!(pull_only.status.code(), Some(1), "the push check must fail");

    let home = support::temporary_dir();
    let both = build(
        home.path(),
        registry.host(),
        SIMPLE,
        &[
            "--skip-tls-verify-pull",
            "--skip-tls-verify",
            "--destination",
            &destination,
        ],
    );
    assert_success(&both);

    let home = support::temporary_dir();
    let per_registry = build(
        home.path(),
        registry.host(),
        SIMPLE,
        &[
            "--skip-tls-verify-registry",
            registry.host(),
            "--destination",
            &destination,
        ],
    );
    assert_success(&per_registry);

    let home = support::temporary_dir();
    let mut with_ca = vec!["--destination", &destination];
    let certificate = certificate_args(&registry);
    with_ca.extend(certificate.iter().map(String::as_str));
    assert_success(&build(home.path(), registry.host(), SIMPLE, &with_ca));
}

#[test]
fn push_check_can_be_skipped() {
    let base = support::plain_registry();
    let destination_registry = support::tls_registry();
    let certificate = certificate_args(&destination_registry);
    let destination = destination_registry.reference("checked:latest");
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN echo build-ran\n";
    let mut extra = vec!["--destination", &destination];
    extra.extend(certificate.iter().map(String::as_str));

    let home = support::temporary_dir();
    login(home.path(), &destination_registry, "wrong-password");
    let checked = build(home.path(), base.host(), dockerfile, &extra);
    assert_eq!(checked.status.code(), Some(1));
    assert!(
        !stderr(&checked).contains("build-ran"),
        "{}",
        stderr(&checked)
    );

    extra.push("--skip-push-permission-check");
    let home = support::temporary_dir();
    login(home.path(), &destination_registry, "wrong-password");
    let unchecked = build(home.path(), base.host(), dockerfile, &extra);
    assert_eq!(unchecked.status.code(), Some(1));
    assert!(
        stderr(&unchecked).contains("build-ran"),
        "{}",
        stderr(&unchecked)
    );
    assert_eq!(
        registry_digest(&destination_registry, "checked:latest"),
        None
    );

    let home = support::temporary_dir();
    login(home.path(), &destination_registry, PASSWORD);
    assert_success(&build(home.path(), base.host(), dockerfile, &extra));
}

#[test]
fn download_and_push_retries_repeat_operations() {
    let registry = support::plain_registry();
    let proxy = FaultProxy::start(&registry).unwrap();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN true\n";
    // The client makes five attempts per request, so five faults fail one pull.
    for nth in 1..=5 {
        proxy.inject("GET", "/manifests/", nth, Fault::Status(500));
    }
    let home = support::temporary_dir();
    let once = build(home.path(), proxy.host(), dockerfile, &["--no-push"]);
    assert_eq!(once.status.code(), Some(1));

    for nth in 6..=10 {
        proxy.inject("GET", "/manifests/", nth, Fault::Status(500));
    }
    let home = support::temporary_dir();
    let retried = build(
        home.path(),
        proxy.host(),
        dockerfile,
        &["--no-push", "--image-download-retry", "1"],
    );
    assert_success(&retried);

    for nth in 1..=5 {
        proxy.inject("PUT", "/manifests/", nth, Fault::Status(500));
    }
    let destination = format!("{}/retried:latest", proxy.host());
    let home = support::temporary_dir();
    let pushed = build(
        home.path(),
        proxy.host(),
        dockerfile,
        &["--destination", &destination, "--push-retry", "1"],
    );
    assert_success(&pushed);
    assert!(registry_digest(&registry, "retried:latest").is_some());
}

#[test]
fn log_formats_and_levels() {
    let registry = support::plain_registry();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN echo json-run-output\n";
    let home = support::temporary_dir();
    let json = build(
        home.path(),
        registry.host(),
        dockerfile,
        &["--no-push", "--log-format", "json"],
    );
    assert_success(&json);
    let events: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let run = events
        .iter()
        .find(|event| {
            event["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("RUN "))
        })
        .expect("an event for the RUN instruction");
    assert_eq!(run["line"], 2);
    assert!(
        events
            .iter()
            .any(|event| event["message"] == "json-run-output")
    );

    let home = support::temporary_dir();
    let stamped = build(
        home.path(),
        registry.host(),
        dockerfile,
        &["--no-push", "--log-timestamp"],
    );
    assert_success(&stamped);
    let first = stderr(&stamped)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(first.starts_with("20"), "{first}");

    let home = support::temporary_dir();
    let quiet = build(
        home.path(),
        registry.host(),
        dockerfile,
        &["--no-push", "-v", "error"],
    );
    assert_success(&quiet);
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));

    let home = support::temporary_dir();
    let colored = build(
        home.path(),
        registry.host(),
        dockerfile,
        &["--no-push", "--log-format", "color"],
    );
    assert!(stderr(&colored).contains('\u{1b}'));
}

#[test]
fn accepted_kaniko_flags_leave_no_work_files() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let output = build(
        home.path(),
        registry.host(),
        SIMPLE,
        &[
            "--no-push",
            "--cleanup",
            "--force",
            "--snapshot-mode=redo",
            "--ignore-var-run=false",
        ],
    );
    assert_success(&output);
    let leftovers: Vec<String> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("hoist-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn layout_output_is_readable_by_skopeo() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let layout = home.path().join("layout");
    let output = build(
        home.path(),
        registry.host(),
        SIMPLE,
        &[
            "--no-push",
            "--destination",
            &registry.reference("x:v2"),
            "--oci-layout-path",
            path_arg(&layout),
        ],
    );
    assert_success(&output);
    let config =
        hoist_testkit::skopeo_inspect_config(&ImageSource::in_layout(&layout, "v2")).unwrap();
    assert_eq!(config["architecture"], "amd64");
}

#[test]
fn registry_mirror_serves_docker_hub_names() {
    let mirror = support::plain_registry();
    let access = hoist_testkit::RegistryAccess::of(&mirror);
    hoist_testkit::skopeo_push(
        &ImageSource::in_registry(&mirror, "base/busybox:latest"),
        &mirror.reference("library/busybox:latest"),
        &access,
        &[],
    )
    .unwrap();
    // With the fallback off, docker.io itself is never contacted.
    let dockerfile = "FROM busybox\nCOPY a.txt /a.txt\n";
    let home = support::temporary_dir();
    let flag = build(
        home.path(),
        "",
        dockerfile,
        &[
            "--no-push",
            "--skip-default-registry-fallback",
            "--registry-mirror",
            mirror.host(),
        ],
    );
    assert_success(&flag);

    let home = support::temporary_dir();
    hoist(home.path())
        .env("KANIKO_REGISTRY_MIRROR", mirror.host())
        .arg("--context")
        .arg(context(
            home.path(),
            &[("Dockerfile", dockerfile), ("a.txt", "a\n")],
        ))
        .args(["--no-push", "--skip-default-registry-fallback"])
        .assert()
        .success();
}

#[test]
fn insecure_flags_force_plain_http() {
    // A TLS registry on loopback: plain HTTP to it fails, so each flag shows which of
    // pull and push it switches to plain HTTP.
    let registry = Registry::builder().tls().start().unwrap();
    hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let destination = registry.reference("plain:latest");
    let certificate = certificate_args(&registry);
    let with = |flags: &[&str]| {
        let mut extra = vec!["--destination", destination.as_str()];
        extra.extend(certificate.iter().map(String::as_str));
        extra.extend_from_slice(flags);
        let home = support::temporary_dir();
        build(home.path(), registry.host(), SIMPLE, &extra)
    };

    assert_success(&with(&[]));
    let insecure = with(&["--insecure"]);
    assert_eq!(insecure.status.code(), Some(1), "{}", stderr(&insecure));
    assert!(
        stderr(&insecure).contains("cannot push"),
        "{}",
        stderr(&insecure)
    );
    let insecure_pull = with(&["--insecure-pull", "--skip-push-permission-check"]);
    assert_eq!(insecure_pull.status.code(), Some(1));
    assert!(
        stderr(&insecure_pull).contains("failed to pull"),
        "{}",
        stderr(&insecure_pull)
    );
    let insecure_registry = with(&["--insecure-registry", registry.host()]);
    assert_eq!(insecure_registry.status.code(), Some(1));
}

#[test]
fn compression_level_changes_layer_size() {
    let registry = support::plain_registry();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN seq 1 200000 > /numbers\n";
    let mut sizes = Vec::new();
    for level in ["0", "9"] {
        let home = support::temporary_dir();
        let layout = home.path().join("layout");
        let output = build(
            home.path(),
            registry.host(),
            dockerfile,
            &[
                "--no-push",
                "--compression-level",
                level,
                "--oci-layout-path",
                path_arg(&layout),
            ],
        );
        assert_success(&output);
        let image = hoist_image::read_oci_layout(&layout, None).unwrap();
        sizes.push(image.rendered.manifest.layers.last().unwrap().size);
    }
    assert!(
        sizes[1] * 2 < sizes[0],
        "level 9 is not half the size of level 0: {sizes:?}"
    );
}

#[test]
fn kaniko_dir_holds_work_directories() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let kaniko_dir = home.path().join("kaniko");
    std::fs::create_dir(&kaniko_dir).unwrap();
    let dockerfile =
        "FROM {REGISTRY}/base/busybox:latest\nRUN sleep 3\n".replace("{REGISTRY}", registry.host());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hoist"))
        .env("HOME", home.path())
        .arg("--context")
        .arg(context(home.path(), &[("Dockerfile", &dockerfile)]))
        .args(["--no-push", "--kaniko-dir", path_arg(&kaniko_dir)])
        .args(["--cache-dir", path_arg(&home.path().join("no-cache"))])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.is_empty() && std::time::Instant::now() < deadline {
        seen = std::fs::read_dir(&kaniko_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("hoist-build-"))
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    assert!(
        !seen.is_empty(),
        "no work directory appeared in --kaniko-dir"
    );
    assert_eq!(std::fs::read_dir(&kaniko_dir).unwrap().count(), 0);
}

/// Returns the number of layers of the image tagged `tag` in the OCI layout `layout`.
fn layer_count(layout: &Path, tag: &str) -> usize {
    let config = hoist_testkit::skopeo_inspect_config(&ImageSource::in_layout(layout, tag))
        .expect("inspect the layout");
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .len()
}

#[test]
fn single_snapshot_writes_one_layer_per_stage() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN echo a > /a\nRUN echo b > /b\n";
    let mut counts = Vec::new();
    for (tag, extra) in [("each", None), ("single", Some("--single-snapshot"))] {
        let layout = home.path().join(tag);
        let destination = registry.reference(&format!("x:{tag}"));
        let mut args = vec![
            "--no-push",
            "--destination",
            &destination,
            "--oci-layout-path",
            path_arg(&layout),
        ];
        args.extend(extra);
        assert_success(&build(home.path(), registry.host(), dockerfile, &args));
        counts.push(layer_count(&layout, tag));
    }
    assert_eq!(
        counts[0],
        counts[1] + 1,
        "layers per step, then one: {counts:?}"
    );
}

#[test]
fn every_snapshot_mode_finds_the_same_change() {
    let registry = support::plain_registry();
    let home = support::temporary_dir();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN echo a > /a\n";
    let mut counts = Vec::new();
    for mode in ["full", "redo", "time"] {
        let layout = home.path().join(mode);
        let destination = registry.reference(&format!("x:{mode}"));
        let mode_flag = format!("--snapshot-mode={mode}");
        let args = [
            "--no-push",
            "--destination",
            &destination,
            "--oci-layout-path",
            path_arg(&layout),
            &mode_flag,
        ];
        assert_success(&build(home.path(), registry.host(), dockerfile, &args));
        counts.push(layer_count(&layout, mode));
    }
    assert!(counts.iter().all(|count| *count == counts[0]), "{counts:?}");
}
