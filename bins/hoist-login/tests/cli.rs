//! The `hoist-login` command line, run as a child process with a clean environment.

// Fixture helpers outside `#[test]` functions panic on setup failures too.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use predicates::prelude::*;
use serde_json::{Value, json};

/// A temporary home with a Docker config directory under it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("kaniko").join(".docker")
    }

    fn config_file(&self) -> PathBuf {
        self.config_dir().join("config.json")
    }

    fn write_config(&self, value: &Value) {
        fs::create_dir_all(self.config_dir()).unwrap();
        fs::write(
            self.config_file(),
            serde_json::to_vec_pretty(value).unwrap(),
        )
        .unwrap();
    }

    fn read_config(&self) -> Value {
        serde_json::from_slice(&fs::read(self.config_file()).unwrap()).unwrap()
    }

    /// `hoist-login` with only `HOME` and `DOCKER_CONFIG` set.
    fn command(&self) -> Command {
        let mut command = cargo_bin_cmd!("hoist-login");
        command
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("DOCKER_CONFIG", self.config_dir());
        command
    }
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_text_has_no_secret(text: &str, secret: &str) {
    assert!(
        !text.contains(secret),
        "output contains the secret:\n{text}"
    );
    let escaped = secret.escape_debug().to_string();
    assert!(
        !text.contains(&escaped),
        "output contains the secret:\n{text}"
    );
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn acr_example_matches_hand_written_file() {
    let fixture = Fixture::new();
    let existing = json!({
        "auths": {"other.example": {"auth": "b3RoZXI6cHc="}},
        "credHelpers": {"gcr.io": "gcloud"},
        "proxies": {"default": {"httpProxy": "http://proxy.example:3128"}},
        "x-unknown": [1, {"nested": true}]
    });
    fixture.write_config(&existing);
    let secret = "s3cr3t:with\"quote\\and\nnewline";

    let output = fixture
        .command()
        .env("ACR_REGISTRY_SERVER", "myregistry.azurecr.io")
        .env("ARM_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
        .env("ARM_CLIENT_SECRET", secret)
        .env("RUST_LOG", "trace")
        .args(["myregistry.azurecr.io", "--username-env", "ARM_CLIENT_ID"])
        .args(["--password-env", "ARM_CLIENT_SECRET"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", output_text(&output));
    let mut expected = existing;
    expected["auths"]["myregistry.azurecr.io"] = json!({
        "auth": STANDARD.encode(format!("11111111-2222-3333-4444-555555555555:{secret}"))
    });
    assert_eq!(fixture.read_config(), expected);
    assert_eq!(mode(&fixture.config_file()), 0o600);
    assert_text_has_no_secret(&output_text(&output), secret);
}

#[test]
fn new_config_dir_created_private() {
    let fixture = Fixture::new();

    fixture
        .command()
        .env("PASS", "pw")
        .args([
            "registry.example:5000",
            "-u",
            "ci",
            "--password-env",
            "PASS",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "auths key \"registry.example:5000\"",
        ));

    assert_eq!(mode(&fixture.config_dir()), 0o700);
    assert_eq!(mode(&fixture.config_file()), 0o600);
}

#[test]
fn concurrent_runs_keep_every_registry() {
    let fixture = Fixture::new();
    let registries: Vec<String> = (0..16).map(|n| format!("r{n}.example:5000")).collect();

    let children: Vec<_> = registries
        .iter()
        .map(|registry| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin!("hoist-login"))
                .env_clear()
                .env("HOME", fixture.dir.path().join("home"))
                .env("DOCKER_CONFIG", fixture.config_dir())
                .env("PASS", format!("pw-{registry}"))
                .args([registry, "-u", "ci", "--password-env", "PASS"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }

    let config = fixture.read_config();
    for registry in &registries {
        assert_eq!(
            config["auths"][registry]["auth"],
            STANDARD.encode(format!("ci:pw-{registry}")),
            "entry for {registry} lost: {config}"
        );
    }
}

#[test]
fn hard_secrets_round_trip() {
    let secrets = [
        "pa:ss:word".to_owned(),
        "quote\"inside".to_owned(),
        "back\\slash".to_owned(),
        "line\nbreak".to_owned(),
        "non-ASCII: päss wörd ✓ 密码".to_owned(),
        "y".repeat(200),
    ];

    for secret in secrets {
        let fixture = Fixture::new();
        let output = fixture
            .command()
            .env("PASS", &secret)
            .args([
                "registry.example",
                "--username",
                "ci",
                "--password-env",
                "PASS",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", output_text(&output));

        let file = fs::File::open(fixture.config_file()).unwrap();
        let credential =
            docker_credential::get_credential_from_reader(file, "registry.example").unwrap();

        assert_eq!(
            credential,
            docker_credential::DockerCredential::UsernamePassword("ci".into(), secret.clone())
        );
        assert_text_has_no_secret(&output_text(&output), &secret);
    }
}

#[test]
fn password_stdin_drops_one_newline() {
    let fixture = Fixture::new();

    fixture
        .command()
        .args(["registry.example", "-u", "ci", "--password-stdin"])
        .write_stdin("two\nlines\n")
        .assert()
        .success();

    let auth = fixture.read_config()["auths"]["registry.example"]["auth"].clone();
    assert_eq!(auth, json!(STANDARD.encode("ci:two\nlines")));
}

#[test]
fn password_flag_warns() {
    let fixture = Fixture::new();

    let output = fixture
        .command()
        .args(["registry.example", "-u", "ci", "--password", "visible-pw"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("process list"), "{stderr}");
    assert_text_has_no_secret(&output_text(&output), "visible-pw");
}

#[test]
fn missing_variable_named_in_error() {
    let fixture = Fixture::new();

    fixture
        .command()
        .env("ARM_CLIENT_ID", "id")
        .args(["registry.example", "--username-env", "ARM_CLIENT_ID"])
        .args(["--password-env", "ARM_CLIENT_SECRET"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "environment variable ARM_CLIENT_SECRET is not set",
        ));

    assert!(!fixture.config_file().exists());
}

#[test]
fn empty_username_rejected() {
    let fixture = Fixture::new();

    fixture
        .command()
        .env("ARM_CLIENT_ID", "")
        .env("PASS", "pw")
        .args(["registry.example", "--username-env", "ARM_CLIENT_ID"])
        .args(["--password-env", "PASS"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the user name from environment variable ARM_CLIENT_ID is empty",
        ));
}

#[test]
fn missing_username_rejected() {
    let fixture = Fixture::new();

    fixture
        .command()
        .env("PASS", "pw")
        .args(["registry.example", "--password-env", "PASS"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing user name"));
}

#[test]
fn invalid_json_left_untouched() {
    let fixture = Fixture::new();
    fs::create_dir_all(fixture.config_dir()).unwrap();
    fs::write(fixture.config_file(), "{\"auths\": ").unwrap();

    fixture
        .command()
        .env("PASS", "pw")
        .args(["registry.example", "-u", "ci", "--password-env", "PASS"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("invalid JSON"))
        .stderr(predicate::str::contains(
            fixture.config_file().display().to_string(),
        ));

    assert_eq!(
        fs::read_to_string(fixture.config_file()).unwrap(),
        "{\"auths\": "
    );
}

#[test]
fn config_option_overrides_environment() {
    let fixture = Fixture::new();
    let other = fixture.dir.path().join("other");

    fixture
        .command()
        .env("PASS", "pw")
        .args([
            "registry.example",
            "-u",
            "ci",
            "--password-env",
            "PASS",
            "--config",
        ])
        .arg(&other)
        .assert()
        .success();

    assert!(other.join("config.json").exists());
    assert!(!fixture.config_file().exists());
}

#[test]
fn logout_removes_only_that_registry() {
    let fixture = Fixture::new();
    fixture.write_config(&json!({
        "auths": {"https://registry.example/": {"auth": "YTpi"}, "keep.example": {"auth": "YTpi"}},
        "credsStore": ""
    }));

    fixture
        .command()
        .args(["--logout", "registry.example"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"https://registry.example/\""));

    assert_eq!(
        fixture.read_config(),
        json!({"auths": {"keep.example": {"auth": "YTpi"}}, "credsStore": ""})
    );
    assert_eq!(mode(&fixture.config_file()), 0o600);
}

#[test]
fn logout_with_credentials_rejected() {
    let fixture = Fixture::new();

    fixture
        .command()
        .args(["--logout", "registry.example", "-u", "ci"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn show_names_entry_and_user() {
    let fixture = Fixture::new();
    let secret = "shown-never-1234";
    fixture.write_config(&json!({
        "auths": {"registry.example:5000": {"auth": STANDARD.encode(format!("ci:{secret}"))}}
    }));

    let output = fixture
        .command()
        .args(["--show", "https://registry.example:5000/"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", output_text(&output));
    let text = output_text(&output);
    assert!(
        text.contains("auths entry \"registry.example:5000\""),
        "{text}"
    );
    assert!(text.contains("username: ci"), "{text}");
    assert!(text.contains("credential: password"), "{text}");
    assert_text_has_no_secret(&text, secret);
}

#[test]
fn show_names_helper_from_path() {
    let fixture = Fixture::new();
    let bin = fixture.dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-vault");
    fs::write(
        &helper,
        "#!/bin/sh\ncat >/dev/null\necho '{\"ServerURL\":\"x\",\"Username\":\"robot\",\"Secret\":\"helper-pw-99\"}'\n",
    )
    .unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    fixture.write_config(&json!({"credHelpers": {"registry.example": "vault"}}));

    let output = fixture
        .command()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args(["--show", "registry.example"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", output_text(&output));
    let text = output_text(&output);
    assert!(
        text.contains("credential helper docker-credential-vault"),
        "{text}"
    );
    assert!(text.contains("username: robot"), "{text}");
    assert_text_has_no_secret(&text, "helper-pw-99");
}

#[test]
fn show_without_credentials_says_anonymous() {
    let fixture = Fixture::new();

    fixture
        .command()
        .args(["--show", "registry.example"])
        .assert()
        .success()
        .stdout(predicate::str::contains("source: none"));
}

/// Returns the entries of `dir` other than `config.json`, such as leftover lock files.
fn entries_besides_config(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "config.json")
        .collect();
    names.sort();
    names
}

#[test]
fn closed_stdout_exits_quietly() {
    let fixture = Fixture::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hoist-login"))
        .env_clear()
        .env("DOCKER_CONFIG", fixture.config_dir())
        .env("PASS", "pw")
        .args(["registry.example", "-u", "ci", "--password-env", "PASS"])
        .stdout(writer)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert_eq!(stderr, "");
    assert_contains_entry(&fixture.read_config(), "registry.example");
}

fn assert_contains_entry(config: &Value, key: &str) {
    assert!(config["auths"][key]["auth"].is_string(), "{config}");
}

#[test]
fn login_leaves_no_lock_file() {
    let fixture = Fixture::new();

    fixture
        .command()
        .env("PASS", "pw")
        .args(["registry.example", "-u", "ci", "--password-env", "PASS"])
        .assert()
        .success();

    assert_eq!(
        entries_besides_config(&fixture.config_dir()),
        Vec::<String>::new()
    );
}

#[test]
fn odd_registry_names_rejected() {
    let cases = [
        ("../../etc", "the host is not a DNS name or an IP address"),
        ("", "it is empty"),
        ("registry .example", "whitespace"),
        (
            "ftp://registry.example",
            "scheme is not https:// or http://",
        ),
        (
            "registry.example:99999",
            "port is not a number from 1 to 65535",
        ),
        ("::1", "brackets"),
    ];

    for (name, reason) in cases {
        let fixture = Fixture::new();
        let output = fixture
            .command()
            .env("PASS", "pw")
            .args([name, "-u", "ci", "--password-env", "PASS"])
            .output()
            .unwrap();

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        let quoted = format!("invalid registry name {name:?}");
        assert!(stderr.contains(&quoted), "{name}: {stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
        assert!(!fixture.config_dir().exists(), "{name}: config written");
    }
}

#[test]
fn registry_name_control_characters_escaped() {
    let fixture = Fixture::new();

    let output = fixture
        .command()
        .args(["--show", "reg\u{1b}]0;x\u{7}istry"])
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(r"reg\u{1b}]0;x\u{7}istry"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn docker_login_registry_forms_accepted() {
    let fixture = Fixture::new();
    let names = [
        ("registry.example", "registry.example"),
        ("localhost:5000", "localhost:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("https://index.docker.io/v1/", "https://index.docker.io/v1/"),
        ("https://registry.example:8443/v2/", "registry.example:8443"),
    ];

    for (name, key) in names {
        fixture
            .command()
            .env("PASS", "pw")
            .args([name, "-u", "ci", "--password-env", "PASS"])
            .assert()
            .success();
        assert_contains_entry(&fixture.read_config(), key);
    }
}

#[test]
fn cred_helper_for_registry_warns() {
    let fixture = Fixture::new();
    fixture.write_config(&json!({"credHelpers": {"registry.example": "vault"}}));
    let secret = "helper-shadowed-pw";

    let output = fixture
        .command()
        .env("PASS", secret)
        .args(["registry.example", "-u", "ci", "--password-env", "PASS"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains("sends registry.example to docker-credential-vault"),
        "{stderr}"
    );
    assert!(
        stderr.contains("never use the stored auths entry"),
        "{stderr}"
    );
    assert_text_has_no_secret(&output_text(&output), secret);
    assert_contains_entry(&fixture.read_config(), "registry.example");
}

#[test]
fn creds_store_warns() {
    let fixture = Fixture::new();
    fixture.write_config(&json!({"credsStore": "desktop"}));

    let output = fixture
        .command()
        .env("PASS", "store-shadowed-pw")
        .args(["registry.example", "-u", "ci", "--password-env", "PASS"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("credsStore in") && stderr.contains("docker-credential-desktop"),
        "{stderr}"
    );
    assert!(stderr.contains("Docker reads registry.example"), "{stderr}");
    assert_text_has_no_secret(&output_text(&output), "store-shadowed-pw");
}

#[test]
fn other_registry_helper_does_not_warn() {
    let fixture = Fixture::new();
    fixture.write_config(&json!({"credHelpers": {"ecr.example": "ecr-login"}}));

    let output = fixture
        .command()
        .env("PASS", "pw")
        .args(["registry.example", "-u", "ci", "--password-env", "PASS"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", output_text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
