//! Both variants of `examples/builder-image` built end to end with the CI job's Kaniko
//! command line against the test bed (htpasswd registry over TLS, loopback release
//! server), checked against the example's specification and against Buildah's build of
//! the same Dockerfile.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hoist_testkit::builder_image::{Variant, build_args, check_builder_image};
use hoist_testkit::{
    Aspect, Buildah, Exception, ImageSource, RegistryAccess, ReleaseServer, Testbed,
    compare_rootfs_except, skopeo_inspect_config, unpack_image,
};
use support::{certificate_args, hoist, registry_digest, sibling_binary};

/// The config fields that must equal Buildah's.
const CONFIG_FIELDS: [&str; 6] = [
    "Env",
    "WorkingDir",
    "User",
    "Entrypoint",
    "Cmd",
    "ExposedPorts",
];

/// A short commit SHA as CI jobs tag images with.
const SHORT_SHA: &str = "4f3e2d1";

fn start_testbed() -> Testbed {
    Testbed::builder()
        .releases(ReleaseServer::builder().stand_ins())
        .start()
        .expect("test bed")
}

/// Writes the test bed's credentials to `<home>/.docker/config.json` with `hoist-login`.
fn login(home: &Path, testbed: &Testbed) {
    let registry = testbed.registry();
    let (user, password) = registry.credentials().expect("htpasswd registry");
    let status = Command::new(sibling_binary("hoist-login"))
        .arg(registry.host())
        .args(["--username", user, "--password-stdin"])
        .env("DOCKER_CONFIG", home.join(".docker"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin pipe")
                .write_all(password.as_bytes())?;
            child.wait()
        })
        .expect("run hoist-login");
    assert!(status.success());
}

/// Runs the CI job's command line for `variant` and returns the digest file's content
/// and the wall time.
fn build_with_hoist(testbed: &Testbed, variant: Variant, home: &Path) -> (String, Duration) {
    let registry = testbed.registry();
    let digest_file = home.join("digest");
    let mut command = hoist(home);
    command
        .arg("--context")
        .arg(variant.context_dir())
        .arg("--dockerfile")
        .arg(variant.dockerfile())
        .args([
            "--destination",
            &registry.reference(&format!("{}:latest", variant.repository())),
        ])
        .args([
            "--destination",
            &registry.reference(&format!("{}:{SHORT_SHA}", variant.repository())),
        ])
        .args(certificate_args(registry))
        .arg("--digest-file")
        .arg(&digest_file);
    for arg in build_args(testbed) {
        command.args(["--build-arg", &arg]);
    }

    let started = Instant::now();
    let output = command.output().expect("run hoist");
    let elapsed = started.elapsed();

    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let (_, password) = registry.credentials().expect("htpasswd registry");
    assert!(!log.contains(password), "the password leaked into the log");
    let digest = std::fs::read_to_string(digest_file).expect("digest file");
    (digest, elapsed)
}

/// Builds `variant` with Buildah, pushes it to `<repository>-buildah:latest` and returns
/// its source and the wall time of `buildah bud`.
fn build_with_buildah(testbed: &Testbed, variant: Variant) -> (ImageSource, Duration) {
    let registry = testbed.registry();
    let access = RegistryAccess::of(registry);
    let buildah = Buildah::new().expect("buildah storage");
    let args: Vec<String> = build_args(testbed)
        .into_iter()
        .flat_map(|arg| ["--build-arg".to_owned(), arg])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let local = format!("localhost/{}:test", variant.repository());
    let started = Instant::now();
    buildah
        .bud(
            &variant.context_dir(),
            &variant.dockerfile(),
            &local,
            &access,
            &args,
        )
        .expect("buildah bud");
    let elapsed = started.elapsed();
    let name = format!("{}-buildah:latest", variant.repository());
    buildah
        .push(&local, &registry.reference(&name), &access)
        .expect("buildah push");
    (ImageSource::in_registry(registry, &name), elapsed)
}

/// Counts the instructions after the last `FROM` of `dockerfile`.
fn final_stage_instructions(dockerfile: &Path) -> usize {
    let text = std::fs::read_to_string(dockerfile).expect("read Dockerfile");
    let parsed = hoist_dockerfile::parser::parse(&text, "Dockerfile").expect("parse");
    let last_from = parsed
        .nodes
        .iter()
        .rposition(|node| node.keyword.eq_ignore_ascii_case("FROM"))
        .expect("a FROM line");
    parsed.nodes.len() - last_from - 1
}

/// Differences to Buildah that come from the build tools, not from hoist: the mount
/// points Buildah 1.28 leaves behind, and in the Debian variant the contents of files
/// that record the time of the build (logs, apt and debconf caches, password ages).
fn expected_differences(variant: Variant) -> Vec<Exception> {
    let mut exceptions = vec![
        Exception::path("/etc/hostname"),
        Exception::path("/etc/hosts"),
        Exception::path("/etc/resolv.conf"),
        Exception::subtree("/run"),
    ];
    if variant == Variant::Debian {
        let timestamped = [
            Exception::subtree("/var/log"),
            Exception::subtree("/var/cache/debconf"),
            Exception::path("/var/cache/apt/pkgcache.bin"),
            Exception::path("/var/cache/apt/srcpkgcache.bin"),
            Exception::path("/var/cache/ldconfig/aux-cache"),
            Exception::path("/etc/shadow"),
            Exception::path("/etc/shadow-"),
            Exception::path("/etc/gshadow-"),
        ];
        exceptions.extend(
            timestamped
                .into_iter()
                .map(|exception| exception.only(Aspect::Content)),
        );
    }
    exceptions
}

fn build_and_compare(variant: Variant) {
    let testbed = start_testbed();
    let registry = testbed.registry();
    let home = support::temporary_dir();
    login(home.path(), &testbed);

    let (digest, hoist_time) = build_with_hoist(&testbed, variant, home.path());
    let latest = format!("{}:latest", variant.repository());
    let tagged = format!("{}:{SHORT_SHA}", variant.repository());
    assert_eq!(
        registry_digest(registry, &latest).as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        registry_digest(registry, &tagged).as_deref(),
        Some(digest.as_str())
    );

    let hoist_source = ImageSource::in_registry(registry, &latest);
    let hoist_config = skopeo_inspect_config(&hoist_source).expect("hoist config");
    let hoist_root = home.path().join("hoist-rootfs");
    unpack_image(&hoist_source, &hoist_root).expect("unpack hoist image");
    let problems = check_builder_image(
        variant,
        &hoist_root,
        &hoist_config,
        testbed.release_server(),
    )
    .expect("check image");
    assert!(problems.is_empty(), "{problems:#?}");

    let (buildah_source, buildah_time) = build_with_buildah(&testbed, variant);
    let buildah_config = skopeo_inspect_config(&buildah_source).expect("buildah config");
    let history = |config: &serde_json::Value| config["history"].as_array().map_or(0, Vec::len);
    let base_source = ImageSource::in_registry(registry, &format!("base/{}", base_tag(variant)));
    let base_config = skopeo_inspect_config(&base_source).expect("base config");
    assert_eq!(
        history(&hoist_config),
        history(&base_config) + final_stage_instructions(&variant.dockerfile()),
        "one history entry per instruction"
    );

    let buildah_root = home.path().join("buildah-rootfs");
    unpack_image(&buildah_source, &buildah_root).expect("unpack buildah image");
    let differences =
        compare_rootfs_except(&hoist_root, &buildah_root, &expected_differences(variant))
            .expect("compare trees");
    assert!(differences.is_empty(), "{differences}");
    for field in CONFIG_FIELDS {
        assert_eq!(
            hoist_config["config"][field], buildah_config["config"][field],
            "config field {field}"
        );
    }
    eprintln!(
        "{variant:?}: hoist {:.1}s (build and push), buildah bud {:.1}s (build only), ratio {:.2}",
        hoist_time.as_secs_f64(),
        buildah_time.as_secs_f64(),
        hoist_time.as_secs_f64() / buildah_time.as_secs_f64()
    );
}

fn base_tag(variant: Variant) -> &'static str {
    match variant {
        Variant::Busybox => "busybox:latest",
        Variant::Debian => "debian:bookworm",
    }
}

#[test]
fn busybox_variant_matches_buildah() {
    build_and_compare(Variant::Busybox);
}

#[test]
fn debian_variant_matches_buildah() {
    build_and_compare(Variant::Debian);
}
