//! A config written by `hoist-login` authenticates a real push: skopeo reads
//! it through `--authfile` and pushes to a registry with htpasswd auth over
//! TLS.

use std::path::Path;

use assert_cmd::cargo::cargo_bin_cmd;
use hoist_testkit::{BaseImage, ImageSource, Registry, RegistryAccess, base_image, skopeo_push};

const USER: &str = "ci-user";
// Characters that break a config.json written with `echo` in a job script.
const PASSWORD: &str = r#"pa:ss "quoted" \back wörd"#;

fn login(config_dir: &Path, registry: &Registry, password: &str) {
    cargo_bin_cmd!("hoist-login")
        .env_clear()
        .env("REG_USER", USER)
        .env("REG_PASS", password)
        .arg(registry.host())
        .args(["--username-env", "REG_USER", "--password-env", "REG_PASS"])
        .arg("--config")
        .arg(config_dir)
        .assert()
        .success();
}

fn push_with_config(config_dir: &Path, registry: &Registry) -> hoist_testkit::Result<String> {
    let busybox = base_image(BaseImage::Busybox)?;
    let access = RegistryAccess {
        cert_dir: registry.cert_dir().map(Path::to_path_buf),
        auth_file: Some(config_dir.join("config.json")),
    };
    skopeo_push(
        &ImageSource::in_layout(&busybox.layout, BaseImage::Busybox.manifest_tag()),
        &registry.reference("login/busybox:v1"),
        &access,
        &[],
    )
}

#[test]
fn written_config_authenticates_skopeo_push() {
    let registry = Registry::builder()
        .tls()
        .htpasswd(USER, PASSWORD)
        .start()
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join(".docker");
    login(&config_dir, &registry, PASSWORD);

    let digest = push_with_config(&config_dir, &registry).unwrap();

    assert!(digest.starts_with("sha256:"), "digest {digest}");
    let pushed = registry
        .client()
        .unwrap()
        .get_manifest("login/busybox", "v1")
        .unwrap();
    assert_eq!(pushed.status, 200);
    assert_eq!(pushed.body_digest(), digest);
}

#[test]
fn wrong_password_config_fails_push() {
    let registry = Registry::builder()
        .tls()
        .htpasswd(USER, PASSWORD)
        .start()
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join(".docker");
    login(&config_dir, &registry, "not-the-password");

    let error = push_with_config(&config_dir, &registry).unwrap_err();

    let message = error.to_string();
    assert!(message.contains("unauthorized"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
}
