//! buildah builds both variants of the builder-image example against the
//! test bed, and the images meet the example's specification.

// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs;

use hoist_testkit::builder_image::{Variant, buildah_build, check_builder_image, fetch_image};
use hoist_testkit::{
    BaseImage, ImageSource, ReleaseServer, Testbed, base_image, sha256_digest,
    skopeo_inspect_config, skopeo_inspect_raw, unpack_image,
};

/// Builds `variant` with buildah, pushes it under two tags, and returns the
/// problems that [`check_builder_image`] finds.
fn build_and_check(testbed: &Testbed, variant: Variant) -> Vec<String> {
    let latest = format!("{}:latest", variant.repository());
    let commit = format!("{}:0123abc", variant.repository());
    let pushed = buildah_build(testbed, variant, &[&latest, &commit]).unwrap();

    let image = fetch_image(testbed, &latest).unwrap();
    assert_eq!(image.digest, pushed);
    let by_commit = skopeo_inspect_raw(&ImageSource::in_registry(testbed.registry(), &commit));
    assert_eq!(sha256_digest(&by_commit.unwrap()), pushed);
    check_builder_image(
        variant,
        image.rootfs(),
        &image.config,
        testbed.release_server(),
    )
    .unwrap()
}

fn start_testbed() -> Testbed {
    Testbed::builder()
        .releases(ReleaseServer::builder().stand_ins())
        .start()
        .unwrap()
}

#[test]
fn buildah_builds_debian_variant_to_spec() {
    let testbed = start_testbed();
    let problems = build_and_check(&testbed, Variant::Debian);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn buildah_builds_busybox_variant_to_spec() {
    let testbed = start_testbed();
    let problems = build_and_check(&testbed, Variant::Busybox);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn check_finds_image_without_tools() {
    let releases = ReleaseServer::builder().stand_ins().start().unwrap();
    let files = base_image(BaseImage::Busybox).unwrap();
    let base = ImageSource::in_layout(&files.layout, "latest");
    let config = skopeo_inspect_config(&base).unwrap();
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    unpack_image(&base, &rootfs).unwrap();
    fs::write(rootfs.join("tmp/tflint.zip"), "").unwrap();

    let problems = check_builder_image(Variant::Busybox, &rootfs, &config, &releases).unwrap();

    let expected = [
        "config User is null, expected \"infra\"",
        "/etc/passwd has no entry for infra",
        "/etc/group has no entry for infra",
        "/usr/local/bin/terraform is missing",
        "/usr/local/bin/tflint is missing",
        "zip left in the image: /tmp/tflint.zip",
    ];
    assert_eq!(problems, expected);
}
