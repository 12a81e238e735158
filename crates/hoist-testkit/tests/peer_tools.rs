//! Unpacked images equal the trees they were made from, and buildah builds
//! on the base images from a test registry.

use std::fs;
use std::path::Path;

use hoist_testkit::{
    BaseImage, Buildah, DifferenceKind, ImageSource, Registry, RegistryAccess, base_image,
    compare_rootfs, push_base_image, skopeo_inspect_config, skopeo_inspect_raw, unpack_image,
};

#[test]
fn unpacked_busybox_equals_its_rootfs() {
    let registry = Registry::builder()
        .tls()
        .htpasswd("tester", "pass")
        .start()
        .unwrap();
    push_base_image(&registry, BaseImage::Busybox).unwrap();
    let expected = base_image(BaseImage::Busybox).unwrap().rootfs;
    let work = tempfile::tempdir().unwrap();

    for tag in ["latest", "latest-docker", "index", "index-docker"] {
        let unpacked = work.path().join(tag);
        let source = ImageSource::in_registry(&registry, &format!("base/busybox:{tag}"));
        unpack_image(&source, &unpacked).unwrap();
        let differences = compare_rootfs(&expected, &unpacked).unwrap();
        assert!(differences.is_empty(), "{tag}: {differences}");
    }
}

#[test]
fn unpacked_debian_layout_equals_its_rootfs() {
    let files = base_image(BaseImage::Debian).unwrap();
    let work = tempfile::tempdir().unwrap();
    let unpacked = work.path().join("rootfs");
    unpack_image(
        &ImageSource::in_layout(&files.layout, "bookworm"),
        &unpacked,
    )
    .unwrap();
    let differences = compare_rootfs(&files.rootfs, &unpacked).unwrap();
    assert!(differences.is_empty(), "{differences}");
}

#[test]
fn unpack_rejects_existing_destination() {
    let files = base_image(BaseImage::Busybox).unwrap();
    let work = tempfile::tempdir().unwrap();
    let error = unpack_image(
        &ImageSource::in_layout(&files.layout, "latest"),
        work.path(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
}

#[test]
fn inspect_shows_pushed_config_and_manifest() {
    let registry = Registry::builder().start().unwrap();
    let pushed = push_base_image(&registry, BaseImage::Busybox).unwrap();
    let source = ImageSource::in_registry(&registry, "base/busybox:index-docker");

    let raw = skopeo_inspect_raw(&source).unwrap();
    assert_eq!(hoist_testkit::sha256_digest(&raw), pushed[3].digest);
    let config = skopeo_inspect_config(&source).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn base_image_cache_is_reused() {
    let first = base_image(BaseImage::Busybox).unwrap();
    let second = base_image(BaseImage::Busybox).unwrap();
    assert_eq!(first.layout, second.layout);
    let index = fs::read_to_string(first.layout.join("index.json")).unwrap();
    assert!(
        index.contains(r#""org.opencontainers.image.ref.name":"index""#),
        "{index}"
    );
    let tmp_mode = fs::metadata(first.rootfs.join("tmp")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&tmp_mode.permissions()) & 0o7777,
        0o1777
    );
    let sh = fs::read_link(first.rootfs.join("bin/sh")).unwrap();
    assert_eq!(sh, Path::new("/bin/busybox"));
}

#[test]
fn buildah_builds_on_registry_base_image() {
    let registry = Registry::builder()
        .tls()
        .htpasswd("tester", "pass")
        .start()
        .unwrap();
    push_base_image(&registry, BaseImage::Busybox).unwrap();
    let context = tempfile::tempdir().unwrap();
    fs::write(context.path().join("greeting"), "hello\n").unwrap();
    let dockerfile = context.path().join("Dockerfile");
    let base = registry.reference("base/busybox:index");
    fs::write(
        &dockerfile,
        format!(
            "FROM {base}\nCOPY greeting /greeting\nRUN echo built > /built && chmod 600 /built\n"
        ),
    )
    .unwrap();

    let buildah = Buildah::new().unwrap();
    let access = RegistryAccess::of(&registry);
    buildah
        .bud(
            context.path(),
            &dockerfile,
            "localhost/peer:test",
            &access,
            &[],
        )
        .unwrap();
    let destination = registry.reference("test/peer:1");
    let digest = buildah
        .push("localhost/peer:test", &destination, &access)
        .unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let work = tempfile::tempdir().unwrap();
    let unpacked = work.path().join("rootfs");
    unpack_image(
        &ImageSource::in_registry(&registry, "test/peer:1"),
        &unpacked,
    )
    .unwrap();
    let expected = base_image(BaseImage::Busybox).unwrap().rootfs;
    let differences = compare_rootfs(&expected, &unpacked).unwrap();
    let added: Vec<String> = differences
        .as_slice()
        .iter()
        .filter(|difference| difference.kind == DifferenceKind::OnlyInRight)
        .map(|difference| difference.path.display().to_string())
        .collect();
    assert!(added.contains(&"/greeting".to_owned()), "{differences}");
    assert!(added.contains(&"/built".to_owned()), "{differences}");
    assert_eq!(
        fs::read_to_string(unpacked.join("built")).unwrap(),
        "built\n"
    );

    let root = buildah.root().to_path_buf();
    drop(buildah);
    assert!(!root.exists(), "{} still exists", root.display());
}
