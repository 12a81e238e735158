//! Pushes through the testkit's fault-injecting proxy: every push either completes with a
//! correct image or fails with no tag pointing at an incomplete one.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use hoist_image::{LoadedImage, read_oci_layout};
use hoist_registry::{Client, ImageReference, UploadMode};
use hoist_testkit::{BaseImage, Fault, FaultProxy, ImageSource, Registry, skopeo_inspect_raw};

fn busybox() -> LoadedImage {
    let files = hoist_testkit::base_image(BaseImage::Busybox).expect("busybox builds");
    read_oci_layout(&files.layout, Some("latest")).expect("busybox layout reads")
}

/// Returns a client that reaches the proxy over plain HTTP with the registry's credentials.
fn client_through(proxy: &FaultProxy, registry: &Registry, upload: UploadMode) -> Client {
    let mut options = common::options_for(registry);
    options
        .transport
        .insecure_registries
        .insert(proxy.host().to_owned());
    options.upload = upload;
    let credentials = match registry.credentials() {
        Some((user, pass)) => hoist_registry::Credentials::Fixed(BTreeMap::from([(
            proxy.host().to_owned(),
            hoist_auth::Credential::basic(user, pass),
        )])),
        None => hoist_registry::Credentials::Anonymous,
    };
    Client::new(options, credentials)
}

fn through(proxy: &FaultProxy, name: &str) -> ImageReference {
    format!("{}/{name}", proxy.host())
        .parse()
        .expect("valid reference")
}

fn stored_digest(registry: &Registry, name: &str) -> Option<String> {
    skopeo_inspect_raw(&ImageSource::in_registry(registry, name))
        .ok()
        .map(|raw| hoist_testkit::sha256_digest(&raw))
}

#[tokio::test(flavor = "multi_thread")]
async fn push_survives_transient_faults() {
    let registry = Registry::builder().start().unwrap();
    let proxy = FaultProxy::start(&registry).unwrap();
    proxy.inject("HEAD", "/blobs/", 1, Fault::Status(503));
    proxy.inject("POST", "/blobs/uploads/", 1, Fault::Status(429));
    proxy.inject("PUT", "/blobs/uploads/", 1, Fault::Close);
    proxy.inject("PUT", "/manifests/", 1, Fault::Status(500));
    let image = busybox();
    let client = client_through(&proxy, &registry, UploadMode::Monolithic);

    let outcome = client
        .push(
            &image,
            &[through(&proxy, "faulty/app:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap();

    assert_eq!(proxy.faults_injected(), 4);
    assert!(client.stats().retries >= 4, "{:?}", client.stats());
    assert_eq!(
        stored_digest(&registry, "faulty/app:v1"),
        Some(outcome.digest)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_push_survives_reset_and_stall() {
    let registry = Registry::builder().start().unwrap();
    let proxy = FaultProxy::start(&registry).unwrap();
    proxy.inject("PATCH", "/blobs/uploads/", 2, Fault::Close);
    proxy.inject(
        "PATCH",
        "/blobs/uploads/",
        4,
        Fault::Stall(Duration::from_millis(300)),
    );
    let image = busybox();
    let client = client_through(&proxy, &registry, UploadMode::Chunked(128 * 1024));

    let outcome = client
        .push(
            &image,
            &[through(&proxy, "faulty/chunked:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap();

    assert_eq!(proxy.faults_injected(), 2);
    assert_eq!(
        stored_digest(&registry, "faulty/chunked:v1"),
        Some(outcome.digest)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_failure_leaves_no_tag() {
    let registry = Registry::builder().start().unwrap();
    let proxy = FaultProxy::start(&registry).unwrap();
    for nth in 1..=10 {
        proxy.inject("PUT", "/blobs/uploads/", nth, Fault::Status(500));
    }
    let image = busybox();
    let client = client_through(&proxy, &registry, UploadMode::Monolithic);

    let error = client
        .push(
            &image,
            &[through(&proxy, "faulty/never:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap_err();

    assert!(error.to_string().contains("500"), "{error}");
    assert_eq!(client.stats().manifest_puts, 0);
    let manifest_puts = proxy
        .requests()
        .iter()
        .filter(|(request, _)| request.starts_with("PUT") && request.contains("/manifests/"))
        .count();
    assert_eq!(manifest_puts, 0);
    assert_eq!(stored_digest(&registry, "faulty/never:v1"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_mid_push_is_renewed() {
    let registry = Registry::builder()
        .token("faulty", "fault-pass-2")
        .start()
        .unwrap();
    let proxy = FaultProxy::start(&registry).unwrap();
    proxy.inject("PUT", "/blobs/uploads/", 1, Fault::ExpireToken);
    proxy.inject("PUT", "/manifests/", 1, Fault::ExpireToken);
    let image = busybox();
    let client = client_through(&proxy, &registry, UploadMode::Monolithic);

    let outcome = client
        .push(
            &image,
            &[through(&proxy, "faulty/token:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap();

    assert_eq!(proxy.faults_injected(), 2);
    assert_eq!(
        stored_digest(&registry, "faulty/token:v1"),
        Some(outcome.digest)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_second_repository_tags_nothing() {
    let registry = Registry::builder().start().unwrap();
    let proxy = FaultProxy::start(&registry).unwrap();
    for nth in 1..=10 {
        proxy.inject("PUT", "/blobs/uploads/", nth, Fault::Status(500));
    }
    let image = busybox();
    let client = client_through(&proxy, &registry, UploadMode::Monolithic);
    let direct: ImageReference = registry
        .reference("multi/first:v1")
        .parse()
        .expect("valid reference");

    let error = client
        .push(
            &image,
            &[direct, through(&proxy, "multi/second:v1")],
            &BTreeMap::new(),
        )
        .await
        .unwrap_err();

    assert!(error.to_string().contains("500"), "{error}");
    assert_eq!(client.stats().manifest_puts, 0);
    assert_eq!(common::count_requests(&registry, "PUT", "/manifests/"), 0);
    assert_eq!(stored_digest(&registry, "multi/first:v1"), None);
    assert_eq!(stored_digest(&registry, "multi/second:v1"), None);
}
