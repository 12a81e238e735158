//! Pulls and pushes against a registry that requires a client certificate
//! (distribution's `http.tls.clientcas`), and the errors of a missing or broken one.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_image::{LoadedImage, read_oci_layout};
use hoist_registry::{
    BlobCache, Client, Credentials, Error, ImageReference, TransportOptions, host_platform,
};
use hoist_testkit::{BaseImage, ImageSource, Registry, skopeo_inspect_raw};

fn client_cert_registry() -> Registry {
    Registry::builder()
        .require_client_cert()
        .start()
        .expect("registry starts")
}

/// Returns a client that trusts the registry's CA and presents `cert` with `key`.
fn client_with(registry: &Registry, cert: &Path, key: &Path) -> Client {
    let mut options = common::options_for(registry);
    options.transport.client_certificates.insert(
        registry.host().to_owned(),
        (cert.to_path_buf(), key.to_path_buf()),
    );
    Client::new(options, Credentials::Anonymous)
}

/// Returns a client that presents the registry's own client certificate.
fn client_for(registry: &Registry) -> Client {
    let cert = registry.client_cert().expect("client certificate");
    let key = registry.client_key().expect("client key");
    client_with(registry, cert, key)
}

fn busybox() -> LoadedImage {
    let files = hoist_testkit::base_image(BaseImage::Busybox).expect("busybox builds");
    read_oci_layout(&files.layout, Some("latest")).expect("busybox layout reads")
}

fn destination(registry: &Registry, name: &str) -> ImageReference {
    registry.reference(name).parse().expect("valid reference")
}

async fn push_busybox(client: &Client, registry: &Registry) -> Result<String, Error> {
    let target = [destination(registry, "mtls/busybox:v1")];
    let outcome = client.push(&busybox(), &target, &BTreeMap::new()).await?;
    Ok(outcome.digest)
}

/// Joins the messages of `error` and its sources, as `anyhow`'s `{:#}` prints them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Writes a new P-256 key, valid PEM that belongs to no certificate of the registry.
fn unrelated_key(dir: &Path) -> PathBuf {
    let path = dir.join("unrelated.key");
    let status = Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
        .arg(&path)
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl genpkey failed");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_presents_client_certificate() {
    let registry = client_cert_registry();
    let pushed = hoist_testkit::push_base_image(&registry, BaseImage::Busybox)
        .expect("skopeo pushes with the client certificate");
    let cache_dir = tempfile::tempdir().expect("temporary directory");
    let cache = BlobCache::open(cache_dir.path()).expect("cache opens");

    for image in &pushed {
        let reference: ImageReference = image.reference.parse().expect("reference parses");
        let pulled = client_for(&registry)
            .pull(&reference, &host_platform(), &cache)
            .await
            .unwrap_or_else(|error| panic!("pull {}: {}", image.reference, error_chain(&error)));
        assert_eq!(pulled.resolved_digest, image.digest, "{}", image.reference);
        for layer in pulled.image.layers() {
            assert!(layer.blob.path().is_file(), "{}", image.reference);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_presents_client_certificate() {
    let registry = client_cert_registry();
    let client = client_for(&registry);

    let digest = push_busybox(&client, &registry)
        .await
        .unwrap_or_else(|error| panic!("push: {}", error_chain(&error)));

    let raw = skopeo_inspect_raw(&ImageSource::in_registry(&registry, "mtls/busybox:v1"))
        .expect("skopeo reads with the client certificate");
    assert_eq!(hoist_testkit::sha256_digest(&raw), digest);
    assert_eq!(client.stats().manifest_puts, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_without_client_cert_fails() {
    let registry = client_cert_registry();
    let client = Client::new(common::options_for(&registry), Credentials::Anonymous);

    let error = push_busybox(&client, &registry)
        .await
        .expect_err("the registry rejects a client without a certificate");

    let chain = error_chain(&error);
    assert!(chain.contains(registry.host()), "{chain}");
    assert_eq!(common::count_requests(&registry, "PUT", "/manifests/"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_with_foreign_cert_fails() {
    let registry = client_cert_registry();
    hoist_testkit::push_base_image(&registry, BaseImage::Busybox).expect("busybox pushes");
    let other = client_cert_registry();
    let client = client_with(
        &registry,
        other.client_cert().expect("client certificate"),
        other.client_key().expect("client key"),
    );
    let cache_dir = tempfile::tempdir().expect("temporary directory");
    let cache = BlobCache::open(cache_dir.path()).expect("cache opens");

    let error = client
        .pull(
            &destination(&registry, "base/busybox:latest"),
            &host_platform(),
            &cache,
        )
        .await
        .expect_err("the registry rejects a certificate of another CA");

    let chain = error_chain(&error);
    assert!(chain.contains(registry.host()), "{chain}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_client_cert_error_names_tls() {
    let registry = client_cert_registry();
    let client = Client::new(common::options_for(&registry), Credentials::Anonymous);

    let error = push_busybox(&client, &registry)
        .await
        .expect_err("the registry rejects a client without a certificate");

    let chain = error_chain(&error);
    assert!(matches!(error, Error::Tls { .. }), "{chain}");
    assert!(chain.contains(registry.host()), "{chain}");
    assert!(chain.contains("fatal alert: BadCertificate"), "{chain}");
    assert!(chain.contains("--registry-client-cert"), "{chain}");
}

/// Sends `GET /v2/` with the HTTP client of `options` and returns the error chain.
async fn handshake_error(options: &TransportOptions, registry: &Registry) -> String {
    let http = options
        .http_client(registry.host())
        .expect("HTTP client builds");
    let error = http
        .get(format!("{}/v2/", registry.url()))
        .send()
        .await
        .expect_err("the handshake fails");
    error_chain(&error)
}

#[tokio::test(flavor = "multi_thread")]
async fn transport_without_cert_gets_alert() {
    let registry = client_cert_registry();
    let options = common::options_for(&registry).transport;

    let chain = handshake_error(&options, &registry).await;

    assert!(chain.contains(registry.host()), "{chain}");
    assert!(chain.contains("fatal alert: BadCertificate"), "{chain}");
}

#[tokio::test(flavor = "multi_thread")]
async fn transport_with_foreign_cert_gets_alert() {
    let registry = client_cert_registry();
    let other = client_cert_registry();
    let mut options = common::options_for(&registry).transport;
    let foreign = (
        other
            .client_cert()
            .expect("client certificate")
            .to_path_buf(),
        other.client_key().expect("client key").to_path_buf(),
    );
    options
        .client_certificates
        .insert(registry.host().to_owned(), foreign);

    let chain = handshake_error(&options, &registry).await;

    assert!(chain.contains(registry.host()), "{chain}");
    assert!(chain.contains("fatal alert: BadCertificate"), "{chain}");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_of_other_certificate_names_files() {
    let registry = client_cert_registry();
    let dir = tempfile::tempdir().expect("temporary directory");
    let key = unrelated_key(dir.path());
    let cert = registry.client_cert().expect("client certificate");
    let client = client_with(&registry, cert, &key);
    let probes = common::count_requests(&registry, "GET", "/v2/");

    let error = push_busybox(&client, &registry)
        .await
        .expect_err("a key that does not match the certificate is rejected");

    let message = error.to_string();
    assert!(matches!(error, Error::Transport { .. }), "{message}");
    assert!(message.contains(registry.host()), "{message}");
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(message.contains(&cert.display().to_string()), "{message}");
    let requests = common::count_requests(&registry, "GET", "/v2/");
    assert_eq!(
        requests, probes,
        "no request is sent with a broken identity"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn key_file_without_key_names_file() {
    let registry = client_cert_registry();
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert = registry.client_cert().expect("client certificate");
    let not_a_key = dir.path().join("not-a.key");
    std::fs::write(&not_a_key, "this is no PEM key\n").expect("write the file");
    let missing = dir.path().join("missing.key");

    for key in [&not_a_key, &missing, &cert.to_path_buf()] {
        let client = client_with(&registry, cert, key);
        let error = push_busybox(&client, &registry)
            .await
            .expect_err("an unusable key file is rejected");

        let message = error.to_string();
        assert!(matches!(error, Error::Transport { .. }), "{message}");
        assert!(message.contains(registry.host()), "{message}");
        assert!(message.contains(&key.display().to_string()), "{message}");
    }
}
