//! Pushes to testkit registries, checked with skopeo and counted: no blob bytes on a
//! repeated push, one manifest PUT per tag, mounts across repositories, chunked uploads.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use hoist_image::{LoadedImage, read_oci_layout};
use hoist_registry::{Client, ImageReference, UploadMode};
use hoist_testkit::{BaseImage, ImageSource, Registry, RegistryBuilder, skopeo_inspect_raw};

const USER: &str = "pusher";
const PASS: &str = "push-secret-4";

fn busybox() -> LoadedImage {
    let files = hoist_testkit::base_image(BaseImage::Busybox).expect("busybox builds");
    read_oci_layout(&files.layout, Some("latest")).expect("busybox layout reads")
}

fn destination(registry: &Registry, name: &str) -> ImageReference {
    registry.reference(name).parse().expect("valid reference")
}

fn skopeo_digest(registry: &Registry, name: &str) -> String {
    let raw =
        skopeo_inspect_raw(&ImageSource::in_registry(registry, name)).expect("skopeo inspect");
    hoist_testkit::sha256_digest(&raw)
}

async fn push_and_inspect(builder: RegistryBuilder) {
    let registry = builder.start().expect("registry starts");
    let image = busybox();
    let client = common::client_for(&registry);

    let outcome = client
        .push(
            &image,
            &[destination(&registry, "app/busybox:v1")],
            &BTreeMap::new(),
        )
        .await
        .expect("push succeeds");

    assert_eq!(
        outcome.digest,
        image.rendered.manifest_descriptor.digest.to_string()
    );
    assert_eq!(skopeo_digest(&registry, "app/busybox:v1"), outcome.digest);
    let stats = client.stats();
    assert_eq!(stats.blobs_uploaded, 2);
    assert_eq!(stats.manifest_puts, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_checks_downloads_and_manifests_use_oci_client() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let image = busybox();
    let reference = destination(&registry, "app/split:v1");
    common::client_for(&registry)
        .push(&image, std::slice::from_ref(&reference), &BTreeMap::new())
        .await
        .unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = hoist_registry::BlobCache::open(cache_dir.path()).unwrap();
    common::client_for(&registry)
        .pull(&reference, &hoist_registry::host_platform(), &cache)
        .await
        .unwrap();

    let oci = |method, path| common::count_requests_from(&registry, method, path, "hoist/");
    // Two blobs, each checked before and confirmed after its upload.
    assert_eq!(oci("HEAD", "/blobs/sha256:"), 4);
    assert_eq!(oci("PUT", "/manifests/v1"), 1);
    assert_eq!(oci("GET", "/blobs/sha256:"), 2);
    // Uploads and manifest reads stay on hoist's own requests.
    assert_eq!(oci("PUT", "/blobs/uploads/"), 0);
    assert_eq!(
        common::count_requests(&registry, "PUT", "/blobs/uploads/"),
        2
    );
    assert_eq!(oci("GET", "/manifests/"), 0);
    assert!(common::count_requests(&registry, "GET", "/manifests/") >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_registry_accepts_push() {
    push_and_inspect(Registry::builder()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_tls_registry_accepts_push() {
    push_and_inspect(Registry::builder().tls().htpasswd(USER, PASS)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_registry_accepts_push() {
    push_and_inspect(Registry::builder().tls().token(USER, PASS)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn second_push_sends_no_blob_bytes() {
    let registry = Registry::builder().start().unwrap();
    let image = busybox();
    let target = [destination(&registry, "app/busybox:v1")];
    common::client_for(&registry)
        .push(&image, &target, &BTreeMap::new())
        .await
        .unwrap();
    let uploads_before = common::count_requests(&registry, "POST", "/blobs/uploads/");

    let client = common::client_for(&registry);
    client
        .push(&image, &target, &BTreeMap::new())
        .await
        .unwrap();

    let stats = client.stats();
    assert_eq!(stats.blob_bytes_sent, 0);
    assert_eq!(stats.blobs_uploaded, 0);
    assert_eq!(stats.blobs_present, 2);
    assert_eq!(
        common::count_requests(&registry, "POST", "/blobs/uploads/"),
        uploads_before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_tags_cost_three_manifest_puts() {
    let registry = Registry::builder().start().unwrap();
    let image = busybox();
    let client = common::client_for(&registry);
    let tags = ["app/busybox:a", "app/busybox:b", "app/busybox:c"];
    let targets: Vec<ImageReference> = tags.iter().map(|tag| destination(&registry, tag)).collect();

    let outcome = client
        .push(&image, &targets, &BTreeMap::new())
        .await
        .unwrap();

    let stats = client.stats();
    assert_eq!(stats.manifest_puts, 3);
    assert_eq!(stats.blobs_uploaded, 2);
    assert_eq!(common::count_requests(&registry, "PUT", "/manifests/"), 3);
    assert_eq!(
        common::count_requests(&registry, "POST", "/blobs/uploads/"),
        2
    );
    for tag in tags {
        assert_eq!(skopeo_digest(&registry, tag), outcome.digest, "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_destination_gets_manifest() {
    let registry = Registry::builder().start().unwrap();
    let image = busybox();
    let digest = image.rendered.manifest_descriptor.digest.to_string();
    let client = common::client_for(&registry);

    let outcome = client
        .push(
            &image,
            &[destination(&registry, &format!("app/pinned@{digest}"))],
            &BTreeMap::new(),
        )
        .await
        .unwrap();

    assert_eq!(outcome.digest, digest);
    assert_eq!(
        common::count_requests(&registry, "PUT", &format!("/manifests/{digest}")),
        1
    );
    let stored = registry
        .client()
        .unwrap()
        .get_manifest("app/pinned", &digest)
        .unwrap();
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body_digest(), digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_destination_digest_sends_nothing() {
    let registry = Registry::builder().start().unwrap();
    let image = busybox();
    let actual = image.rendered.manifest_descriptor.digest.to_string();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let target = destination(&registry, &format!("app/pinned@{wrong}"));
    let requests_before = common::count_all_requests(&registry);
    let client = common::client_for(&registry);

    let error = client
        .push(
            &image,
            &[destination(&registry, "app/pinned:v1"), target.clone()],
            &BTreeMap::new(),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(error, hoist_registry::Error::DestinationDigest { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains(&target.to_string()), "{message}");
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&actual), "{message}");
    assert_eq!(common::count_all_requests(&registry), requests_before);
    assert_eq!(client.stats(), hoist_registry::TransferStats::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_and_digest_destination_sends_nothing() {
    let registry = Registry::builder().start().unwrap();
    let image = busybox();
    let digest = image.rendered.manifest_descriptor.digest.to_string();
    let target = ImageReference::new(registry.host(), "app/both", Some("v1"), Some(&digest));
    let requests_before = common::count_all_requests(&registry);

    let error = common::client_for(&registry)
        .push(&image, &[target], &BTreeMap::new())
        .await
        .unwrap_err();

    assert!(
        matches!(error, hoist_registry::Error::InvalidReference { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("both a tag and a digest"),
        "{error}"
    );
    assert_eq!(common::count_all_requests(&registry), requests_before);
}

/// Pushes to a registry on `[::1]` with default client options, so that the loopback
/// rule (HTTPS first, then plain HTTP) picks the scheme as it does for 127.0.0.1, and
/// pulls the image back.
#[tokio::test(flavor = "multi_thread")]
async fn ipv6_loopback_registry_takes_push() {
    let registry = Registry::builder().ipv6().start().unwrap();
    assert!(registry.host().starts_with("[::1]:"), "{}", registry.host());
    let image = busybox();
    let target = destination(&registry, "app/ipv6:v1");
    assert_eq!(target.registry(), registry.host());
    let client = Client::new(
        hoist_registry::ClientOptions::default(),
        hoist_registry::Credentials::Anonymous,
    );

    let outcome = client
        .push(&image, std::slice::from_ref(&target), &BTreeMap::new())
        .await
        .unwrap();

    let stored = registry
        .client()
        .unwrap()
        .get_manifest("app/ipv6", "v1")
        .unwrap();
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body_digest(), outcome.digest);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = hoist_registry::BlobCache::open(cache_dir.path()).unwrap();
    let pulled = client
        .pull(&target, &hoist_registry::host_platform(), &cache)
        .await
        .unwrap();
    assert_eq!(pulled.manifest.digest, outcome.digest);
    assert_eq!(pulled.image.layers().len(), image.image.layers().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_upload_is_complete() {
    let registry = Registry::builder()
        .tls()
        .htpasswd(USER, PASS)
        .start()
        .unwrap();
    let image = busybox();
    let mut options = common::options_for(&registry);
    options.upload = UploadMode::Chunked(256 * 1024);
    let client = Client::new(options, common::credentials_for(&registry));

    let outcome = client
        .push(
            &image,
            &[destination(&registry, "app/chunked:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap();

    let layer_size = image.image.layers()[0].size;
    assert!(layer_size > 256 * 1024, "the layer spans several chunks");
    assert!(common::count_requests(&registry, "PATCH", "/blobs/uploads/") >= 2);
    assert_eq!(skopeo_digest(&registry, "app/chunked:v1"), outcome.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn base_layer_is_mounted_across_repositories() {
    let registry = Registry::builder().tls().token(USER, PASS).start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let image = busybox();
    let base: ImageReference = pushed[0].reference.parse().unwrap();
    let mounts: BTreeMap<String, ImageReference> = image
        .image
        .layers()
        .iter()
        .map(|layer| (layer.digest.to_string(), base.clone()))
        .collect();
    let client = common::client_for(&registry);

    let outcome = client
        .push(&image, &[destination(&registry, "app/mounted:v1")], &mounts)
        .await
        .unwrap();

    let stats = client.stats();
    assert_eq!(stats.blobs_mounted, 1);
    // The config is already in the base repository but not in this one, and nothing
    // tells the client so, so it is the only upload.
    assert_eq!(stats.blobs_uploaded, 1);
    assert_eq!(stats.blob_bytes_sent, image.rendered.manifest.config.size);
    assert_eq!(skopeo_digest(&registry, "app/mounted:v1"), outcome.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_is_renewed_mid_session() {
    let registry = Registry::builder()
        .token(USER, PASS)
        .token_lifetime(Duration::from_secs(1))
        .exact_token_expiry()
        .start()
        .unwrap();
    let image = busybox();
    let client = common::client_for(&registry);
    client
        .push(
            &image,
            &[destination(&registry, "app/renew:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    let issued = registry.tokens_issued();

    tokio::time::sleep(Duration::from_millis(2100)).await;
    client
        .push(
            &image,
            &[destination(&registry, "app/renew:v2")],
            &BTreeMap::new(),
        )
        .await
        .unwrap();

    assert!(registry.tokens_issued() > issued);
    // skopeo needs its token for longer than a second on a loaded machine.
    registry.set_token_lifetime(Duration::from_secs(60));
    assert_eq!(
        skopeo_digest(&registry, "app/renew:v2"),
        image.rendered.manifest_descriptor.digest.to_string()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn declined_mount_falls_back_to_upload() {
    let registry = Registry::builder().start().unwrap();
    let image = busybox();
    let empty_source: ImageReference = registry.reference("nothing/here:1").parse().unwrap();
    let mounts: BTreeMap<String, ImageReference> = image
        .image
        .layers()
        .iter()
        .map(|layer| (layer.digest.to_string(), empty_source.clone()))
        .collect();
    let client = common::client_for(&registry);

    let outcome = client
        .push(
            &image,
            &[destination(&registry, "app/fallback:v1")],
            &mounts,
        )
        .await
        .unwrap();

    let stats = client.stats();
    assert_eq!(stats.blobs_mounted, 0);
    assert_eq!(stats.blobs_uploaded, 2);
    assert_eq!(skopeo_digest(&registry, "app/fallback:v1"), outcome.digest);
}

/// Records progress events as `(event, digest, bytes)`.
#[derive(Debug, Default)]
struct RecordedProgress {
    events: std::sync::Mutex<Vec<(&'static str, String, u64)>>,
}

impl hoist_registry::Progress for RecordedProgress {
    fn start(&self, digest: &str, size: u64, _direction: hoist_registry::Direction) {
        self.events
            .lock()
            .expect("progress lock")
            .push(("start", digest.to_owned(), size));
    }

    fn advance(&self, digest: &str, bytes: u64) {
        self.events
            .lock()
            .expect("progress lock")
            .push(("advance", digest.to_owned(), bytes));
    }

    fn finish(&self, digest: &str, success: bool) {
        self.events.lock().expect("progress lock").push((
            "finish",
            digest.to_owned(),
            u64::from(success),
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_reports_layer_progress() {
    let registry = Registry::builder().start().unwrap();
    let image = busybox();
    let progress = std::sync::Arc::new(RecordedProgress::default());
    let mut options = common::options_for(&registry);
    options.progress = Some(progress.clone());
    let client = Client::new(options, common::credentials_for(&registry));

    client
        .push(
            &image,
            &[destination(&registry, "app/progress:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap();

    let layer = &image.image.layers()[0];
    let digest = layer.digest.to_string();
    let events = progress.events.lock().unwrap();
    let of_layer = |kind: &str| {
        events
            .iter()
            .filter(|(event, blob, _)| *event == kind && *blob == digest)
            .map(|(_, _, bytes)| *bytes)
            .collect::<Vec<u64>>()
    };
    assert_eq!(of_layer("start"), [layer.size]);
    assert_eq!(of_layer("advance").iter().sum::<u64>(), layer.size);
    assert_eq!(of_layer("finish"), [1]);
}
