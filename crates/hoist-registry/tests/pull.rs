//! Pulls from testkit registries: every manifest form of both base images, each blob
//! verified, and a corrupted blob rejected with nothing kept.

mod common;

use hoist_image::ManifestDocument;
use hoist_registry::{BlobCache, Error, ImageReference, host_platform};
use hoist_testkit::{BaseImage, ManifestForm, PushedImage, Registry, RegistryBuilder};

const USER: &str = "puller";
const PASS: &str = "pull-secret-9";

fn reference(image: &PushedImage) -> ImageReference {
    image.reference.parse().expect("testkit reference parses")
}

/// Pulls every pushed form and checks digests, platform choice and the cache contents.
async fn pull_every_form(builder: RegistryBuilder) {
    let registry = builder.start().expect("registry starts");
    let pushed = hoist_testkit::push_base_images(&registry).expect("base images push");
    let client = common::client_for(&registry);
    let cache_dir = tempfile::tempdir().expect("temporary directory");
    let cache = BlobCache::open(cache_dir.path()).expect("cache opens");

    for image in &pushed {
        let pulled = client
            .pull(&reference(image), &host_platform(), &cache)
            .await
            .unwrap_or_else(|error| panic!("pull {}: {error}", image.reference));
        assert_eq!(pulled.resolved_digest, image.digest, "{}", image.reference);
        let is_index = matches!(
            image.form,
            ManifestForm::OciIndex | ManifestForm::DockerList
        );
        assert_eq!(
            pulled.manifest.digest != image.digest,
            is_index,
            "{}",
            image.reference
        );
        assert!(matches!(
            pulled.manifest.document,
            ManifestDocument::Image(_)
        ));
        for layer in pulled.image.layers() {
            let bytes = std::fs::read(layer.blob.path()).expect("layer in cache");
            assert_eq!(
                hoist_testkit::sha256_digest(&bytes),
                layer.digest.to_string(),
                "{}",
                image.reference
            );
            assert_eq!(bytes.len() as u64, layer.size, "{}", image.reference);
        }
        assert!(
            cache
                .path(&pulled.manifest.digest)
                .expect("sha256")
                .is_file()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_registry_pulls_every_form() {
    pull_every_form(Registry::builder()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_tls_registry_pulls_every_form() {
    pull_every_form(Registry::builder().tls().htpasswd(USER, PASS)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_registry_pulls_every_form() {
    pull_every_form(Registry::builder().tls().token(USER, PASS)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_token_registry_pulls() {
    let registry = Registry::builder().anonymous_token().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let client = common::client_for(&registry);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(cache_dir.path()).unwrap();

    let pulled = client
        .pull(&reference(&pushed[0]), &host_platform(), &cache)
        .await
        .unwrap();

    assert_eq!(pulled.manifest.digest, pushed[0].digest);
    assert!(registry.tokens_issued() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_blob_is_rejected() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let client = common::client_for(&registry);
    let manifest = client.fetch_manifest(&reference(&pushed[0])).await.unwrap();
    let ManifestDocument::Image(manifest) = manifest.document else {
        panic!("the latest tag is an image manifest");
    };
    let layer = &manifest.layers[0];
    let hex = layer
        .digest
        .to_string()
        .trim_start_matches("sha256:")
        .to_owned();
    let data = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let cache_dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(cache_dir.path()).unwrap();
    let error = client
        .pull(&reference(&pushed[0]), &host_platform(), &cache)
        .await
        .unwrap_err();

    assert!(matches!(error, Error::BlobMismatch { .. }), "{error}");
    assert!(error.to_string().contains(&hex), "{error}");
    let kept: Vec<_> = std::fs::read_dir(cache_dir.path().join("blobs/sha256"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_wins_over_tag_on_pull() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let oci = pushed.iter().find(|image| image.form == ManifestForm::Oci);
    let docker = pushed
        .iter()
        .find(|image| image.form == ManifestForm::Docker);
    let (oci, docker) = (oci.unwrap(), docker.unwrap());
    assert_ne!(oci.digest, docker.digest);
    let both: ImageReference = format!("{}@{}", oci.reference, docker.digest)
        .parse()
        .unwrap();
    let client = common::client_for(&registry);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(cache_dir.path()).unwrap();
    let tag_path = format!("/manifests/{}", oci.tag);
    let tag_requests = common::count_requests(&registry, "GET", &tag_path);

    let pulled = client.pull(&both, &host_platform(), &cache).await.unwrap();

    assert_eq!(pulled.manifest.digest, docker.digest);
    assert_eq!(pulled.resolved_digest, docker.digest);
    assert_eq!(
        pulled.reference.to_string(),
        format!("{}/{}@{}", registry.host(), oci.repository, docker.digest)
    );
    assert_eq!(
        common::count_requests(&registry, "GET", &tag_path),
        tag_requests
    );
}

/// Puts `manifest` of `media_type` under `name` (`repository:tag`) in an anonymous
/// registry.
async fn put_manifest(registry: &Registry, name: &str, media_type: &str, manifest: &[u8]) {
    let (repository, tag) = name.split_once(':').expect("name is repository:tag");
    let response = reqwest::Client::new()
        .put(format!(
            "{}/v2/{repository}/manifests/{tag}",
            registry.url()
        ))
        .header("Content-Type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .expect("manifest PUT");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_declared_layer_fails_before_download() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let client = common::client_for(&registry);
    let original = client.fetch_manifest(&reference(&pushed[0])).await.unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&original.bytes).unwrap();
    let huge: u64 = 1 << 62;
    manifest["layers"][0]["size"] = huge.into();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let media_type = original.content_type.as_deref().unwrap();
    let edited = serde_json::to_vec(&manifest).unwrap();
    put_manifest(&registry, "base/busybox:huge", media_type, &edited).await;
    let target: ImageReference = registry.reference("base/busybox:huge").parse().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(cache_dir.path()).unwrap();
    let blob_path = format!("/blobs/{layer}");
    let blob_requests = common::count_requests(&registry, "GET", &blob_path);

    let error = client
        .pull(&target, &host_platform(), &cache)
        .await
        .unwrap_err();

    let Error::InsufficientSpace {
        digest,
        size,
        available,
        ..
    } = &error
    else {
        panic!("expected InsufficientSpace, got {error}");
    };
    assert_eq!(digest, &layer);
    assert_eq!(*size, huge);
    let message = error.to_string();
    assert!(message.contains(&layer), "{message}");
    assert!(message.contains(&huge.to_string()), "{message}");
    assert!(message.contains(&available.to_string()), "{message}");
    assert_eq!(
        common::count_requests(&registry, "GET", &blob_path),
        blob_requests
    );
    let cached = cache_dir
        .path()
        .join("blobs/sha256")
        .join(&layer["sha256:".len()..]);
    assert!(!cached.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_names_registry() {
    let registry = Registry::builder().htpasswd(USER, PASS).start().unwrap();
    let credentials = hoist_registry::Credentials::Fixed(std::collections::BTreeMap::from([(
        registry.host().to_owned(),
        hoist_auth::Credential::basic(USER, "wrong-password-7"),
    )]));
    let client = hoist_registry::Client::new(common::options_for(&registry), credentials);
    let target: ImageReference = registry.reference("base/busybox:latest").parse().unwrap();

    let error = client.fetch_manifest(&target).await.unwrap_err();

    let message = error.to_string();
    assert!(
        matches!(error, Error::Unauthorized { status: 401, .. }),
        "{message}"
    );
    assert!(message.contains(registry.host()), "{message}");
    assert!(!message.contains("wrong-password-7"), "{message}");
    assert!(message.contains("check the credentials"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_login_is_named() {
    let registry = Registry::builder().htpasswd(USER, PASS).start().unwrap();
    let client = hoist_registry::Client::new(
        common::options_for(&registry),
        hoist_registry::Credentials::Anonymous,
    );
    let target: ImageReference = registry.reference("base/busybox:latest").parse().unwrap();

    let error = client.fetch_manifest(&target).await.unwrap_err();

    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::Unauthorized {
                status: 401,
                sent_credentials: false,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("no credentials were found"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tag_reports_status() {
    let registry = Registry::builder().start().unwrap();
    let client = common::client_for(&registry);
    let target: ImageReference = registry.reference("nothing/here:1").parse().unwrap();

    let error = client.fetch_manifest(&target).await.unwrap_err();

    assert!(
        matches!(error, Error::Status { status: 404, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("nothing/here"), "{error}");
}

/// Returns a refresh token from the registry's token server, as `docker login` stores it
/// in `identitytoken` for registries such as Azure Container Registry.
async fn refresh_token(registry: &Registry) -> String {
    let realm = registry.token_realm().expect("token registry");
    let response = reqwest::Client::new()
        .get(format!(
            "{realm}?service=hoist-testkit-registry&offline_token=true"
        ))
        .basic_auth(USER, Some(PASS))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("token body")).expect("token JSON");
    body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}

fn identity_token_client(registry: &Registry, token: &str) -> hoist_registry::Client {
    let credential = hoist_auth::Credential::IdentityToken {
        username: None,
        token: hoist_auth::Secret::new(token),
    };
    let credentials = hoist_registry::Credentials::Fixed(std::collections::BTreeMap::from([(
        registry.host().to_owned(),
        credential,
    )]));
    hoist_registry::Client::new(common::options_for(registry), credentials)
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_token_is_exchanged() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let token = refresh_token(&registry).await;
    let client = identity_token_client(&registry, &token);

    let manifest = client.fetch_manifest(&reference(&pushed[0])).await.unwrap();

    assert_eq!(manifest.digest, pushed[0].digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_identity_token_is_rejected() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let client = identity_token_client(&registry, "not-a-known-refresh-token");
    let target: ImageReference = registry.reference("base/busybox:latest").parse().unwrap();

    let error = client.fetch_manifest(&target).await.unwrap_err();

    let message = error.to_string();
    assert!(
        matches!(error, Error::Unauthorized { status: 401, .. }),
        "{message}"
    );
    assert!(!message.contains("not-a-known-refresh-token"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_serves_before_origin() {
    let origin = Registry::builder().start().unwrap();
    let mirror = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&mirror, BaseImage::Busybox).unwrap();
    let mut options = common::options_for(&origin);
    options
        .transport
        .insecure_registries
        .insert(mirror.host().to_owned());
    options.registry_mirrors = std::collections::BTreeMap::from([(
        origin.host().to_owned(),
        vec![mirror.host().to_owned()],
    )]);
    let client = hoist_registry::Client::new(options, hoist_registry::Credentials::Anonymous);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(cache_dir.path()).unwrap();
    let target: ImageReference = origin.reference("base/busybox:latest").parse().unwrap();

    let pulled = client
        .pull(&target, &host_platform(), &cache)
        .await
        .unwrap();

    assert_eq!(pulled.manifest.digest, pushed[0].digest);
    assert_eq!(pulled.reference.registry(), mirror.host());
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_mirror_falls_back_to_origin() {
    let origin = Registry::builder().start().unwrap();
    let mirror = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&origin, BaseImage::Busybox).unwrap();
    let mut options = common::options_for(&origin);
    options
        .transport
        .insecure_registries
        .insert(mirror.host().to_owned());
    options.registry_mirrors = std::collections::BTreeMap::from([(
        origin.host().to_owned(),
        vec![mirror.host().to_owned()],
    )]);
    let target: ImageReference = origin.reference("base/busybox:latest").parse().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(cache_dir.path()).unwrap();

    let client =
        hoist_registry::Client::new(options.clone(), hoist_registry::Credentials::Anonymous);
    let pulled = client
        .pull(&target, &host_platform(), &cache)
        .await
        .unwrap();
    assert_eq!(pulled.manifest.digest, pushed[0].digest);

    options.mirror_fallback = false;
    let strict = hoist_registry::Client::new(options, hoist_registry::Credentials::Anonymous);
    let error = strict
        .pull(&target, &host_platform(), &cache)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Status { status: 404, .. }),
        "{error}"
    );
    assert!(error.to_string().contains(mirror.host()), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_registry_falls_back_to_http() {
    let registry = Registry::builder().start().unwrap();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox).unwrap();
    let client = hoist_registry::Client::new(
        hoist_registry::ClientOptions::default(),
        hoist_registry::Credentials::Anonymous,
    );

    let manifest = client.fetch_manifest(&reference(&pushed[0])).await.unwrap();

    assert_eq!(manifest.digest, pushed[0].digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_loopback_tls_is_reported() {
    let registry = Registry::builder().tls().start().unwrap();
    let client = hoist_registry::Client::new(
        hoist_registry::ClientOptions::default(),
        hoist_registry::Credentials::Anonymous,
    );
    let reference: ImageReference = registry.reference("base/busybox:latest").parse().unwrap();

    let error = client.fetch_manifest(&reference).await.unwrap_err();

    assert!(matches!(error, Error::Tls { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(registry.host()), "{message}");
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_loopback_port_is_connection_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let options = hoist_registry::ClientOptions {
        retry: hoist_registry::RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let client = hoist_registry::Client::new(options, hoist_registry::Credentials::Anonymous);
    let reference: ImageReference = format!("127.0.0.1:{port}/base/busybox:latest")
        .parse()
        .unwrap();

    let error = client.fetch_manifest(&reference).await.unwrap_err();

    assert!(matches!(error, Error::Request { .. }), "{error}");
    let chain = format!("{:?}", message_chain(&error));
    assert!(chain.contains("Connection refused"), "{chain}");
    assert!(!chain.contains("TLS"), "{chain}");
}

/// Returns an error's message and the messages of its causes.
fn message_chain(error: &dyn std::error::Error) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_tls_registry_is_named() {
    let registry = Registry::builder().tls().start().unwrap();
    let mut options = common::options_for(&registry);
    options.transport.insecure_registries =
        std::collections::BTreeSet::from([registry.host().to_owned()]);
    let client = hoist_registry::Client::new(options, hoist_registry::Credentials::Anonymous);
    let reference: ImageReference = registry.reference("base/busybox:latest").parse().unwrap();

    let error = client.fetch_manifest(&reference).await.unwrap_err();

    let message = error.to_string();
    assert!(matches!(error, Error::PlainHttpToTls { .. }), "{message}");
    assert!(
        message.contains("remove it from --insecure-registry"),
        "{message}"
    );
}
