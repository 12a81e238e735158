//! `RegistrySource` against testkit registries with the busybox and debian bases: pulls
//! of manifests and indexes, and builds from a warmed cache without the registry.

use std::path::Path;
use std::time::Duration;

use hoist_build::source::{RegistrySource, RegistrySourceOptions};
use hoist_build::stage::BaseImageSource;
use hoist_image::Platform;
use hoist_registry::{BlobCache, Client, ClientOptions, Credentials, ImageReference};
use hoist_testkit::{BaseImage, PushedImage, Registry};

fn temporary_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hoist-source-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory")
}

fn source(work_parent: &Path, cache_dir: Option<&Path>) -> RegistrySource {
    RegistrySource::new(RegistrySourceOptions {
        client: ClientOptions::default(),
        credentials: Credentials::Anonymous,
        cache_dir: cache_dir.map(Path::to_path_buf),
        download_retries: 0,
        retry_backoff: Duration::from_millis(10),
        work_parent: work_parent.to_path_buf(),
    })
    .expect("registry source")
}

fn pushed_digest(pushed: &[PushedImage], image: BaseImage, tag: &str) -> String {
    pushed
        .iter()
        .find(|entry| entry.repository == image.repository() && entry.tag == tag)
        .map(|entry| entry.digest.clone())
        .expect("pushed form")
}

/// Warms `cache` with `reference` for linux/amd64 as hoist-warmer does.
fn warm(cache: &Path, reference: &str) {
    let cache = BlobCache::open(cache).expect("open cache");
    let reference: ImageReference = reference.parse().expect("valid reference");
    let platform = Platform::linux_amd64();
    let client = Client::new(ClientOptions::default(), Credentials::Anonymous);
    let runtime = tokio::runtime::Runtime::new().expect("async runtime");
    let pulled = runtime
        .block_on(client.pull(&reference, &platform, &cache))
        .expect("pull into the cache");
    cache
        .record_reference(&reference, &platform, &pulled.manifest_descriptor())
        .expect("record the reference");
}

#[test]
fn both_bases_resolve_from_registry() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_images(&registry).unwrap();
    let work = temporary_dir();
    let source = source(work.path(), None);
    let amd64 = Platform::linux_amd64();

    for image in [BaseImage::Busybox, BaseImage::Debian] {
        for tag in [image.manifest_tag(), image.index_tag()] {
            let reference = registry.reference(&format!("{}:{tag}", image.repository()));
            let resolved = source.resolve(&reference, &amd64).unwrap();
            assert!(!resolved.layers().is_empty(), "{reference}");
            assert_eq!(resolved.config().architecture, "amd64");
            for layer in resolved.layers() {
                assert!(
                    layer.blob.path.starts_with(source.pull_dir()),
                    "{reference}"
                );
            }
        }
    }

    let origins = source.layer_origins();
    let manifest = pushed_digest(&pushed, BaseImage::Debian, BaseImage::Debian.manifest_tag());
    assert!(
        origins
            .values()
            .any(|origin| origin.digest() == Some(manifest.as_str())),
        "{origins:?}"
    );
}

#[test]
fn warmed_cache_serves_without_registry() {
    let registry = Registry::builder().start().unwrap();
    hoist_testkit::push_base_images(&registry).unwrap();
    let work = temporary_dir();
    let cache = work.path().join("cache");
    let busybox = registry.reference("base/busybox:index");
    let debian = registry.reference("base/debian:bookworm");
    warm(&cache, &busybox);
    warm(&cache, &debian);
    drop(registry);

    let source = source(work.path(), Some(&cache));
    let amd64 = Platform::linux_amd64();
    for reference in [&busybox, &debian] {
        let resolved = source.resolve(reference, &amd64).unwrap();
        for layer in resolved.layers() {
            assert!(layer.blob.path.starts_with(&cache), "{reference}");
        }
    }
    let arm64 = Platform::parse("linux/arm64").unwrap();
    let error = source.resolve(&busybox, &arm64).unwrap_err().to_string();
    assert!(error.contains("failed to pull"), "{error}");
}

#[test]
fn incomplete_cache_entry_is_pulled() {
    let registry = Registry::builder().start().unwrap();
    hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let work = temporary_dir();
    let cache = work.path().join("cache");
    let busybox = registry.reference("base/busybox:latest");
    warm(&cache, &busybox);
    for entry in std::fs::read_dir(cache.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::metadata(&path).unwrap().len() > 100_000 {
            std::fs::remove_file(&path).unwrap();
        }
    }

    let source = source(work.path(), Some(&cache));
    let resolved = source.resolve(&busybox, &Platform::linux_amd64()).unwrap();
    for layer in resolved.layers() {
        assert!(layer.blob.path.starts_with(source.pull_dir()));
    }
}

#[test]
fn download_retries_repeat_failed_pull() {
    let registry = Registry::builder().start().unwrap();
    let work = temporary_dir();
    let mut options = RegistrySourceOptions {
        client: ClientOptions::default(),
        credentials: Credentials::Anonymous,
        cache_dir: None,
        download_retries: 2,
        retry_backoff: Duration::from_millis(10),
        work_parent: work.path().to_path_buf(),
    };
    options.client.retry.max_attempts = 1;
    let source = RegistrySource::new(options).unwrap();
    let missing = registry.reference("base/missing:latest");
    let error = source
        .resolve(&missing, &Platform::linux_amd64())
        .unwrap_err()
        .to_string();
    assert!(error.contains("after 3 attempt(s)"), "{error}");
}
