//! Every registry variant accepts both base images in all four manifest
//! forms and serves each manifest back under its pushed digest.

use hoist_testkit::{
    AuthKind, ManifestForm, PushedImage, Registry, RegistryBuilder, RegistryClient,
};

const USER: &str = "tester";
const PASS: &str = "s3cret-pass";

/// Pushes both base images and checks every manifest over HTTP.
fn check_push_and_fetch(builder: RegistryBuilder) {
    let registry = builder.start().expect("registry starts");
    let pushed = hoist_testkit::push_base_images(&registry).expect("base images push");
    assert_eq!(pushed.len(), 8);

    let client = registry.client().expect("client for the registry");
    for image in &pushed {
        check_manifest(&client, image);
    }
}

fn check_manifest(client: &RegistryClient, image: &PushedImage) {
    let response = client
        .get_manifest(&image.repository, &image.tag)
        .expect("manifest request");
    assert_eq!(response.status, 200, "{}", image.reference);
    assert_eq!(
        response.header("docker-content-digest"),
        Some(image.digest.as_str()),
        "{}",
        image.reference
    );
    assert_eq!(response.body_digest(), image.digest, "{}", image.reference);
    assert_eq!(
        response.header("content-type"),
        Some(image.form.media_type()),
        "{}",
        image.reference
    );
    assert_eq!(
        image.media_type,
        image.form.media_type(),
        "{}",
        image.reference
    );
}

#[test]
fn plain_anonymous_registry_serves_pushed_manifests() {
    check_push_and_fetch(Registry::builder());
}

#[test]
fn htpasswd_tls_registry_serves_pushed_manifests() {
    check_push_and_fetch(Registry::builder().tls().htpasswd(USER, PASS));
}

#[test]
fn htpasswd_plain_http_registry_serves_pushed_manifests() {
    check_push_and_fetch(Registry::builder().htpasswd(USER, PASS));
}

#[test]
fn tls_anonymous_registry_serves_pushed_manifests() {
    check_push_and_fetch(Registry::builder().tls());
}

#[test]
fn token_registry_serves_pushed_manifests() {
    let registry = Registry::builder().tls().token(USER, PASS).start().unwrap();
    let pushed =
        hoist_testkit::push_base_image(&registry, hoist_testkit::BaseImage::Busybox).unwrap();
    let client = registry.client().unwrap();
    let issued_before = registry.tokens_issued();
    for image in &pushed {
        check_manifest(&client, image);
    }
    assert_eq!(registry.tokens_issued(), issued_before + 4);
}

#[test]
fn token_registry_without_tls_serves_manifests() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let pushed = hoist_testkit::push_base_images(&registry).unwrap();
    let client = registry.client().unwrap();
    for image in &pushed {
        check_manifest(&client, image);
    }
}

#[test]
fn pushed_forms_keep_their_media_types() {
    let registry = Registry::builder().start().unwrap();
    let pushed =
        hoist_testkit::push_base_image(&registry, hoist_testkit::BaseImage::Busybox).unwrap();
    let forms: Vec<ManifestForm> = pushed.iter().map(|image| image.form).collect();
    assert_eq!(forms, ManifestForm::ALL);
    let tags: Vec<&str> = pushed.iter().map(|image| image.tag.as_str()).collect();
    assert_eq!(tags, ["latest", "latest-docker", "index", "index-docker"]);
}

#[test]
fn htpasswd_registry_rejects_wrong_password() {
    for builder in [
        Registry::builder().htpasswd(USER, PASS),
        Registry::builder().tls().htpasswd(USER, PASS),
    ] {
        let registry = builder.start().unwrap();
        assert_eq!(registry.auth_kind(), AuthKind::Htpasswd);
        let client = registry.client().unwrap();
        let wrong = client.with_credentials(Some((USER, "wrong")));
        assert_eq!(
            wrong.get("/v2/", &[]).unwrap().status,
            401,
            "{}",
            registry.url()
        );
        let anonymous = client.with_credentials(None);
        assert_eq!(
            anonymous.get("/v2/", &[]).unwrap().status,
            401,
            "{}",
            registry.url()
        );
        assert_eq!(
            client.get("/v2/", &[]).unwrap().status,
            200,
            "{}",
            registry.url()
        );
    }
}

#[test]
fn token_server_rejects_wrong_password() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let client = registry.client().unwrap();
    let wrong = client.with_credentials(Some((USER, "wrong")));
    assert_eq!(wrong.get("/v2/", &[]).unwrap().status, 401);
    assert_eq!(registry.tokens_issued(), 0);
    assert_eq!(client.get("/v2/", &[]).unwrap().status, 200);
    assert_eq!(registry.tokens_issued(), 1);
}

#[test]
fn plain_registry_needs_no_credentials() {
    let registry = Registry::builder().start().unwrap();
    assert_eq!(registry.auth_kind(), AuthKind::Anonymous);
    assert_eq!(registry.credentials(), None);
    assert_eq!(registry.ca_cert(), None);
    let response = registry.client().unwrap().get("/v2/", &[]).unwrap();
    assert_eq!(response.status, 200);
}

#[test]
fn client_cert_registry_serves_pushed_manifests() {
    let registry = Registry::builder()
        .require_client_cert()
        .htpasswd(USER, PASS)
        .start()
        .unwrap();
    let pushed =
        hoist_testkit::push_base_image(&registry, hoist_testkit::BaseImage::Busybox).unwrap();
    let client = registry.client().unwrap();
    for image in &pushed {
        check_manifest(&client, image);
    }
}

#[test]
fn client_cert_registry_rejects_bare_tls() {
    let registry = Registry::builder().require_client_cert().start().unwrap();
    assert!(registry.url().starts_with("https://"), "{}", registry.url());
    let with_cert = registry.client().unwrap().get("/v2/", &[]).unwrap();
    assert_eq!(with_cert.status, 200);

    let without_cert = RegistryClient::new(registry.url(), registry.ca_cert(), None).unwrap();
    let error = without_cert.get("/v2/", &[]).unwrap_err();
    let chain = error_chain(&error);
    assert!(chain.contains(registry.url()), "{chain}");
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
}

#[test]
fn client_cert_files_exist_only_when_required() {
    let registry = Registry::builder().require_client_cert().start().unwrap();
    for path in [
        registry.client_cert().unwrap(),
        registry.client_key().unwrap(),
        registry.client_ca_cert().unwrap(),
    ] {
        assert!(path.is_file(), "{}", path.display());
    }
    let cert_dir = registry.cert_dir().unwrap();
    for name in ["ca.crt", "client.cert", "client.key"] {
        assert!(cert_dir.join(name).is_file(), "{name}");
    }

    let plain_tls = Registry::builder().tls().start().unwrap();
    assert_eq!(plain_tls.client_cert(), None);
    assert_eq!(plain_tls.client_key(), None);
    assert!(!plain_tls.cert_dir().unwrap().join("client.key").exists());
}

/// Joins the messages of `error` and its sources.
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
