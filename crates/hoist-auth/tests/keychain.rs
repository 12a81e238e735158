//! Resolving a registry's credential across files and credential helpers.

// Fixture helpers outside `#[test]` functions panic on setup failures too.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    assert_contains, assert_error_has_no_secret, assert_no_secret, capture_logs,
    message_with_causes,
};
use hoist_auth::{Credential, Environment, Error, HelperError, Keychain, Secret, Source};

/// A temporary directory with a `bin` directory for helper scripts and a config file path.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("docker").join("config.json")
    }

    fn write_config(&self, text: &str) -> PathBuf {
        let path = self.config();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// Installs `docker-credential-<name>` as a shell script with `body`; the server URL
    /// the helper was given is in `$server`.
    fn helper(&self, name: &str, body: &str) {
        let path = self
            .dir
            .path()
            .join("bin")
            .join(format!("docker-credential-{name}"));
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = get ] || {{ echo \"unexpected action $1\" >&2; exit 9; }}\n\
             server=$(cat)\n{body}\n"
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// An environment whose `PATH` holds only the helper directory and the system's.
    fn env(&self) -> Environment {
        let path = format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display());
        Environment::from_vars([("PATH", OsString::from(path))])
    }

    fn keychain(&self) -> Keychain {
        Keychain::new(vec![self.config()], &self.env()).helper_timeout(Duration::from_secs(10))
    }
}

#[test]
fn cred_helpers_entry_runs_helper() {
    let fixture = Fixture::new();
    fixture.helper(
        "test",
        r#"printf '{"ServerURL":"%s","Username":"user-for-%s","Secret":"s3cr:et"}' "$server" "$server""#,
    );
    let path = fixture.write_config(r#"{"credHelpers": {"r.example:5000": "test"}}"#);

    let resolved = fixture
        .keychain()
        .resolve("https://r.example:5000/")
        .unwrap()
        .unwrap();

    assert_eq!(
        resolved.source,
        Source::Helper {
            path,
            name: "test".into()
        }
    );
    assert_eq!(
        resolved.credential,
        Some(Credential::basic("user-for-r.example:5000", "s3cr:et"))
    );
}

#[test]
fn creds_store_answers_other_registries() {
    let fixture = Fixture::new();
    fixture.helper(
        "store",
        r#"printf '{"ServerURL":"%s","Username":"from-store","Secret":"pw"}' "$server""#,
    );
    let path = fixture.write_config(r#"{"auths": {"r.example": {}}, "credsStore": "store"}"#);

    let resolved = fixture.keychain().resolve("r.example").unwrap().unwrap();

    assert_eq!(
        resolved.source,
        Source::Store {
            path,
            name: "store".into()
        }
    );
    assert_eq!(
        resolved.credential,
        Some(Credential::basic("from-store", "pw"))
    );
}

#[test]
fn docker_hub_helper_gets_index_url() {
    let fixture = Fixture::new();
    fixture.helper(
        "store",
        r#"printf '{"ServerURL":"%s","Username":"%s","Secret":"pw"}' "$server" "$server""#,
    );
    fixture.write_config(r#"{"credsStore": "store"}"#);

    let credential = fixture.keychain().credential("docker.io").unwrap().unwrap();

    assert_eq!(credential.username(), Some("https://index.docker.io/v1/"));
}

#[test]
fn helper_token_username_gives_identity_token() {
    let fixture = Fixture::new();
    fixture.helper(
        "acr",
        r#"echo '{"ServerURL":"x","Username":"<token>","Secret":"refresh"}'"#,
    );
    fixture.write_config(r#"{"credHelpers": {"acr.example": "acr"}}"#);

    let credential = fixture.keychain().credential("acr.example").unwrap();

    assert_eq!(
        credential,
        Some(Credential::IdentityToken {
            username: None,
            token: Secret::new("refresh")
        })
    );
}

#[test]
fn helper_without_credential_is_anonymous() {
    let fixture = Fixture::new();
    fixture.helper(
        "empty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    fixture.write_config(r#"{"credsStore": "empty"}"#);

    let resolved = fixture.keychain().resolve("r.example").unwrap().unwrap();

    assert_eq!(resolved.credential, None);
}

#[test]
fn failing_helper_gives_clear_error() {
    let fixture = Fixture::new();
    fixture.helper("broken", "echo 'vault is sealed' >&2; exit 3");
    let path = fixture.write_config(r#"{"credHelpers": {"r.example": "broken"}}"#);

    let (result, logs) = capture_logs(|| fixture.keychain().credential("r.example"));
    let err = result.unwrap_err();
    let message = message_with_causes(&err);

    assert!(
        matches!(
            err,
            Error::Helper {
                source: HelperError::Failed { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_contains(&message, "docker-credential-broken");
    assert_contains(&message, "vault is sealed");
    assert_contains(&message, "exit status: 3");
    assert_contains(&message, "r.example");
    assert_contains(&message, &path.display().to_string());
    assert!(!logs.contains("vault is sealed"), "{logs}");
}

#[test]
fn garbage_output_gives_clear_error() {
    let secret = "garbage-secret-4711";
    let fixture = Fixture::new();
    fixture.helper(
        "garbage",
        &format!(r#"echo 'Username: bob, Secret: {secret}'; echo '{{"Username": 4711}}'"#),
    );
    fixture.write_config(r#"{"credsStore": "garbage"}"#);

    let (result, logs) = capture_logs(|| fixture.keychain().credential("r.example"));
    let err = result.unwrap_err();

    assert!(
        matches!(
            err,
            Error::Helper {
                source: HelperError::InvalidOutput { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_contains(
        &message_with_causes(&err),
        "docker-credential-garbage printed invalid output",
    );
    assert_error_has_no_secret(secret, &err);
    assert_no_secret(secret, "logs", &[&logs]);
}

#[test]
fn wrong_json_fields_give_clear_error() {
    let fixture = Fixture::new();
    fixture.helper("partial", r#"echo '{"ServerURL":"x","Username":"u"}'"#);
    fixture.write_config(r#"{"credsStore": "partial"}"#);

    let err = fixture.keychain().credential("r.example").unwrap_err();

    assert_contains(
        &message_with_causes(&err),
        "expected JSON with the fields Username and Secret",
    );
}

#[test]
fn missing_helper_named_in_error() {
    let fixture = Fixture::new();
    fixture.write_config(r#"{"credHelpers": {"r.example": "absent"}}"#);

    let err = fixture.keychain().credential("r.example").unwrap_err();

    assert!(
        matches!(
            err,
            Error::Helper {
                source: HelperError::NotFound { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_contains(
        &message_with_causes(&err),
        "docker-credential-absent not found on PATH",
    );
}

#[test]
fn helper_name_with_slash_rejected() {
    let fixture = Fixture::new();
    fixture.helper("x", "echo '{\"Username\":\"u\",\"Secret\":\"s\"}'");
    fixture.write_config(r#"{"credsStore": "x/../../bin/docker-credential-x"}"#);

    let err = fixture.keychain().credential("r.example").unwrap_err();

    assert!(
        matches!(
            err,
            Error::Helper {
                source: HelperError::InvalidName { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn hanging_helper_times_out() {
    let fixture = Fixture::new();
    fixture.helper("slow", "exec sleep 30");
    fixture.write_config(r#"{"credsStore": "slow"}"#);
    let keychain = fixture
        .keychain()
        .helper_timeout(Duration::from_millis(200));

    let err = keychain.credential("r.example").unwrap_err();

    assert!(
        matches!(
            err,
            Error::Helper {
                source: HelperError::TimedOut { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn helper_background_process_does_not_block() {
    let fixture = Fixture::new();
    // The background `sleep` inherits the helper's output pipes and keeps them open.
    fixture.helper(
        "daemon",
        r#"sleep 30 &
printf '{"ServerURL":"%s","Username":"u","Secret":"pw"}' "$server""#,
    );
    fixture.write_config(r#"{"credsStore": "daemon"}"#);
    let started = std::time::Instant::now();

    let credential = fixture.keychain().credential("r.example").unwrap();

    assert_eq!(credential, Some(Credential::basic("u", "pw")));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the lookup took {:?}",
        started.elapsed()
    );
}

#[test]
fn helper_secret_never_logged() {
    let secret = "helper-secret-\"quoted\"-8812";
    let fixture = Fixture::new();
    fixture.helper(
        "test",
        r#"echo '{"ServerURL":"x","Username":"u","Secret":"helper-secret-\"quoted\"-8812"}'"#,
    );
    fixture.write_config(r#"{"credsStore": "test"}"#);

    let (result, logs) = capture_logs(|| fixture.keychain().resolve("r.example"));
    let resolved = result.unwrap().unwrap();

    assert_eq!(
        resolved.credential.as_ref().unwrap().secret().expose(),
        secret
    );
    assert_no_secret(
        secret,
        "logs and Debug output",
        &[&logs, &format!("{resolved:?}")],
    );
}

#[test]
fn first_file_with_answer_wins() {
    let fixture = Fixture::new();
    let docker = fixture.write_config(r#"{"auths": {"a.example": {"auth": "YTpkb2NrZXI="}}}"#);
    let podman = fixture.dir.path().join("auth.json");
    fs::write(
        &podman,
        r#"{"auths": {"a.example": {"auth": "YTpwb2RtYW4="}, "b.example": {"auth": "Yjpwb2RtYW4="}}}"#,
    )
    .unwrap();
    let keychain = Keychain::new(vec![docker, podman.clone()], &fixture.env());

    let a = keychain.credential("a.example").unwrap();
    let b = keychain.resolve("b.example").unwrap().unwrap();

    assert_eq!(a, Some(Credential::basic("a", "docker")));
    assert_eq!(b.credential, Some(Credential::basic("b", "podman")));
    assert_eq!(
        b.source,
        Source::FileEntry {
            path: podman,
            key: "b.example".into()
        }
    );
}

#[test]
fn environment_selects_docker_then_podman() {
    let dir = tempfile::tempdir().unwrap();
    let env = Environment::from_vars([
        ("DOCKER_CONFIG", dir.path().join("kaniko")),
        ("REGISTRY_AUTH_FILE", dir.path().join("auth.json")),
        ("HOME", dir.path().join("home")),
    ]);

    let keychain = Keychain::from_environment(&env);

    assert_eq!(
        keychain.files(),
        [
            dir.path().join("kaniko/config.json"),
            dir.path().join("auth.json")
        ]
    );
}

#[test]
fn missing_files_mean_no_credential() {
    let fixture = Fixture::new();

    assert_eq!(fixture.keychain().resolve("r.example").unwrap(), None);
}

#[test]
fn unreadable_file_named_in_error() {
    let fixture = Fixture::new();
    // A directory in place of the file fails to read even for root, unlike a chmod.
    fs::create_dir_all(fixture.config()).unwrap();

    let err = fixture.keychain().credential("r.example").unwrap_err();

    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert_contains(&err.to_string(), &fixture.config().display().to_string());
}

#[test]
fn invalid_json_named_in_error() {
    let fixture = Fixture::new();
    let path = fixture.write_config("{\"auths\": {\n  \"r.example\": {\"auth\": }\n}}");

    let err = fixture.keychain().credential("r.example").unwrap_err();

    assert_contains(&err.to_string(), &path.display().to_string());
    assert_contains(&err.to_string(), "line 2");
}

#[test]
fn podman_repository_key_matches_host() {
    let fixture = Fixture::new();
    let path: &Path =
        &fixture.write_config(r#"{"auths": {"quay.example/team": {"auth": "dTpw"}}}"#);

    let resolved = fixture.keychain().resolve("quay.example").unwrap().unwrap();

    assert_eq!(resolved.credential, Some(Credential::basic("u", "p")));
    assert_eq!(
        resolved.source,
        Source::FileEntry {
            path: path.to_owned(),
            key: "quay.example/team".into()
        }
    );
}

#[test]
#[should_panic(expected = "contains the secret")]
fn leak_check_catches_debug_escaped_secret() {
    let secret = "quote\"inside";

    assert_no_secret(secret, "Debug output", &[&format!("{secret:?}")]);
}

#[test]
fn endless_or_special_config_is_rejected() {
    let fixture = Fixture::new();
    let path = fixture.config();
    fs::create_dir_all(path.parent().unwrap()).unwrap();

    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let result = fixture.keychain().resolve("r.example");
    assert!(
        format!("{result:?}").contains("not a regular file"),
        "{result:?}"
    );

    fs::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let result = fixture.keychain().resolve("r.example");
    assert!(
        format!("{result:?}").contains("not a regular file"),
        "{result:?}"
    );

    fs::remove_file(&path).unwrap();
    let padding = " ".repeat(usize::try_from(hoist_auth::MAX_CONFIG_BYTES).unwrap());
    fs::write(&path, format!("{{}}{padding}")).unwrap();
    let result = fixture.keychain().resolve("r.example");
    assert!(
        format!("{result:?}").contains("larger than the limit"),
        "{result:?}"
    );
}
