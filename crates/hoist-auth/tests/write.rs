//! Writing credential files: merging, modes, atomicity and the round trip through readers.

// Fixture helpers outside `#[test]` functions panic on setup failures too.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{assert_contains, assert_error_has_no_secret, assert_no_secret, capture_logs};
use hoist_auth::{ConfigEditor, Credential, Environment, Error, Keychain, Secret, Source};
use proptest::prelude::*;
use serde_json::Value;

/// A config file as Docker writes it, with members hoist must keep byte for byte: numbers
/// whose text `serde_json` would change, escapes, and nested unknown keys.
const EXISTING_CONFIG: &str = "{\n\
\t\"auths\": {\n\
\t\t\"https://index.docker.io/v1/\": {\n\
\t\t\t\"auth\": \"aHViOnB3\"\n\
\t\t},\n\
\t\t\"other.example:5000\": {\"auth\": \"b3RoZXI6cHc=\", \"email\": \"x@example.org\"}\n\
\t},\n\
\t\"credHelpers\": {\n\
\t\t\"123456789012.dkr.ecr.us-east-1.amazonaws.com\": \"ecr-login\"\n\
\t},\n\
\t\"credsStore\": \"\",\n\
\t\"proxies\": {\"default\": {\"httpProxy\": \"http://proxy.example:3128\", \"noProxy\": \"*.internal\"}},\n\
\t\"psFormat\": \"table {{.ID}}\\t{{.Names}}\",\n\
\t\"x-numbers\": [1.50, 1e3, -0.0, 12345678901234567890123],\n\
\t\"x-escapes\": \"caf\\u00e9 \\/ \\ud83d\\ude00\"\n\
}";

fn temp_config() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".docker").join("config.json");
    (dir, path)
}

fn write_existing(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn login(path: &Path, registry: &str, username: &str, password: &str) -> String {
    let mut editor = ConfigEditor::open(path).unwrap();
    let key = editor
        .set_basic_auth(registry, username, &Secret::new(password))
        .unwrap();
    editor.save().unwrap();
    key
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn top_level_keys(value: &Value) -> Vec<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn merge_keeps_other_members_verbatim() {
    let (_dir, path) = temp_config();
    write_existing(&path, EXISTING_CONFIG);

    login(&path, "registry.example:5000", "ci", "pw");
    let written = fs::read_to_string(&path).unwrap();

    let untouched = [
        "\"credHelpers\": {\n\t\t\"123456789012.dkr.ecr.us-east-1.amazonaws.com\": \"ecr-login\"\n\t}",
        "\"credsStore\": \"\"",
        "\"proxies\": {\"default\": {\"httpProxy\": \"http://proxy.example:3128\", \"noProxy\": \"*.internal\"}}",
        "\"psFormat\": \"table {{.ID}}\\t{{.Names}}\"",
        "\"x-numbers\": [1.50, 1e3, -0.0, 12345678901234567890123]",
        "\"x-escapes\": \"caf\\u00e9 \\/ \\ud83d\\ude00\"",
        "\"https://index.docker.io/v1/\": {\n\t\t\t\"auth\": \"aHViOnB3\"\n\t\t}",
        "\"other.example:5000\": {\"auth\": \"b3RoZXI6cHc=\", \"email\": \"x@example.org\"}",
    ];
    for member in untouched {
        assert_contains(&written, member);
    }
}

#[test]
fn merge_keeps_member_order() {
    let (_dir, path) = temp_config();
    write_existing(&path, EXISTING_CONFIG);
    let before = read_json(&path);

    login(&path, "registry.example:5000", "ci", "pw");
    let after = read_json(&path);

    assert_eq!(top_level_keys(&after), top_level_keys(&before));
    let auth_keys: Vec<&String> = after["auths"].as_object().unwrap().keys().collect();
    assert_eq!(
        auth_keys,
        [
            "https://index.docker.io/v1/",
            "other.example:5000",
            "registry.example:5000"
        ]
    );
}

#[test]
fn acr_login_adds_only_auth() {
    let (_dir, path) = temp_config();
    write_existing(&path, EXISTING_CONFIG);
    let mut expected = read_json(&path);

    login(
        &path,
        "myregistry.azurecr.io",
        "client-id",
        "client:secret\"",
    );

    let encoded = STANDARD.encode("client-id:client:secret\"");
    expected["auths"]["myregistry.azurecr.io"] = serde_json::json!({ "auth": encoded });
    assert_eq!(read_json(&path), expected);
}

#[test]
fn new_file_has_only_the_entry() {
    let (_dir, path) = temp_config();

    let key = login(&path, "docker.io", "hubuser", "pw");

    assert_eq!(key, "https://index.docker.io/v1/");
    assert_eq!(
        read_json(&path),
        serde_json::json!({"auths": {"https://index.docker.io/v1/": {"auth": "aHVidXNlcjpwdw=="}}})
    );
}

#[test]
fn existing_entry_updated_under_its_key() {
    let (_dir, path) = temp_config();
    write_existing(
        &path,
        r#"{"auths": {"https://registry.example/": {"email": "a@example.org", "identitytoken": "old", "auth": "b2xkOm9sZA=="}}}"#,
    );

    let key = login(&path, "registry.example", "new", "pw");

    assert_eq!(key, "https://registry.example/");
    assert_eq!(
        read_json(&path),
        serde_json::json!({"auths": {"https://registry.example/": {
            "email": "a@example.org",
            "auth": STANDARD.encode("new:pw"),
        }}})
    );
}

#[test]
fn file_mode_0600_after_every_write() {
    let (_dir, path) = temp_config();

    login(&path, "a.example", "u", "p");
    assert_eq!(mode(&path), 0o600);

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    login(&path, "b.example", "u", "p");
    assert_eq!(mode(&path), 0o600);

    let mut editor = ConfigEditor::open(&path).unwrap();
    editor.remove("a.example").unwrap();
    editor.save().unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn new_directory_gets_mode_0700() {
    let (dir, _) = temp_config();
    let path = dir.path().join("a").join("b").join("config.json");

    login(&path, "a.example", "u", "p");

    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a").join("b")), 0o700);
}

#[test]
fn failed_rename_keeps_old_file() {
    let (_dir, path) = temp_config();
    write_existing(&path, EXISTING_CONFIG);

    let mut editor = ConfigEditor::open(&path).unwrap();
    editor
        .set_basic_auth("registry.example", "u", &Secret::new("new-secret"))
        .unwrap();
    let (result, logs) =
        capture_logs(|| editor.save_with(|_, _| Err(io::Error::other("simulated crash"))));
    let err = result.unwrap_err();

    assert!(matches!(err, Error::Write { .. }), "{err:?}");
    assert_contains(&err.to_string(), "rename the temporary file");
    assert_contains(&err.to_string(), &path.display().to_string());
    assert_eq!(fs::read_to_string(&path).unwrap(), EXISTING_CONFIG);
    let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary file left behind: {leftovers:?}"
    );
    let debug = format!("{editor:?}");
    assert_error_has_no_secret("new-secret", &err);
    assert_no_secret("new-secret", "logs and Debug output", &[&logs, &debug]);
    assert_no_secret(&STANDARD.encode("u:new-secret"), "Debug output", &[&debug]);
}

#[test]
fn concurrent_logins_all_kept() {
    let (_dir, path) = temp_config();
    let registries: Vec<String> = (0..16).map(|n| format!("r{n}.example:5000")).collect();

    std::thread::scope(|scope| {
        for registry in &registries {
            let path = &path;
            scope.spawn(move || login(path, registry, "u", registry));
        }
    });

    let auths = read_json(&path)["auths"].clone();
    for registry in &registries {
        assert_eq!(
            auths[registry]["auth"],
            STANDARD.encode(format!("u:{registry}")),
            "entry for {registry} lost: {auths}"
        );
    }
}

#[test]
fn open_editor_blocks_second_writer() {
    let (_dir, path) = temp_config();
    let mut first = ConfigEditor::open(&path).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();

    std::thread::scope(|scope| {
        let second_path = &path;
        scope.spawn(move || {
            let editor = ConfigEditor::open(second_path).unwrap();
            sender.send(()).unwrap();
            drop(editor);
        });
        let waited = receiver.recv_timeout(std::time::Duration::from_millis(300));
        assert!(
            waited.is_err(),
            "second editor opened while the first held the lock"
        );

        first
            .set_basic_auth("a.example", "u", &Secret::new("p"))
            .unwrap();
        first.save().unwrap();
        drop(first);
        receiver
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
    });
}

/// Returns the names in `dir` other than `keep`, such as leftover lock and temporary files.
fn other_entries(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !keep.contains(&name.as_str()))
        .collect();
    names.sort();
    names
}

#[test]
fn lock_file_private_while_held() {
    let (_dir, path) = temp_config();
    let lock = path.with_file_name(format!("config.json{}", hoist_auth::LOCK_SUFFIX));

    let editor = ConfigEditor::open(&path).unwrap();

    assert!(lock.is_file(), "no lock file at {}", lock.display());
    assert_eq!(mode(&lock), 0o600);
    drop(editor);
    assert!(!lock.exists(), "lock file left at {}", lock.display());
}

#[test]
fn write_leaves_only_config_file() {
    let (_dir, path) = temp_config();

    login(&path, "a.example", "u", "p");
    login(&path, "b.example", "u", "p");

    assert_eq!(
        other_entries(path.parent().unwrap(), &["config.json"]),
        Vec::<String>::new()
    );
}

#[test]
fn failed_write_leaves_no_lock_or_temp_file() {
    let (_dir, path) = temp_config();
    write_existing(&path, EXISTING_CONFIG);

    let mut editor = ConfigEditor::open(&path).unwrap();
    editor
        .set_basic_auth("registry.example", "u", &Secret::new("p"))
        .unwrap();
    let result = editor.save_with(|_, _| Err(io::Error::other("simulated crash")));
    drop(editor);

    assert!(result.is_err());
    assert_eq!(
        other_entries(path.parent().unwrap(), &["config.json"]),
        Vec::<String>::new()
    );
}

#[test]
fn rejected_file_leaves_no_lock_file() {
    let (_dir, path) = temp_config();
    write_existing(&path, "[1, 2]");

    let result = ConfigEditor::open(&path);

    assert!(result.is_err());
    assert_eq!(
        other_entries(path.parent().unwrap(), &["config.json"]),
        Vec::<String>::new()
    );
}

#[test]
fn lock_file_beside_symlink_target() {
    let (dir, path) = temp_config();
    let target = dir.path().join("secret-mount").join("config.json");
    write_existing(&target, "{}");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(&target, &path).unwrap();

    let editor = ConfigEditor::open(&path).unwrap();

    assert!(target.with_file_name("config.json.lock").is_file());
    assert!(!path.with_file_name("config.json.lock").exists());
    drop(editor);
    assert!(!target.with_file_name("config.json.lock").exists());
}

#[test]
fn write_through_dangling_symlink() {
    let (dir, path) = temp_config();
    let target = dir.path().join("secret-mount").join("config.json");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink("../secret-mount/config.json", &path).unwrap();

    login(&path, "a.example", "u", "p");

    let link = fs::symlink_metadata(&path).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    assert_contains(&fs::read_to_string(&target).unwrap(), "a.example");
    assert_eq!(mode(&target), 0o600);
    assert_eq!(
        other_entries(target.parent().unwrap(), &["config.json"]),
        Vec::<String>::new()
    );
}

#[test]
fn write_through_chain_of_symlinks() {
    let (dir, path) = temp_config();
    let target = dir.path().join("b").join("config.json");
    let middle = dir.path().join("a").join("config.json");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::create_dir_all(middle.parent().unwrap()).unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(&target, &middle).unwrap();
    symlink(&middle, &path).unwrap();

    login(&path, "a.example", "u", "p");

    assert!(
        fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::symlink_metadata(&middle)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_contains(&fs::read_to_string(&target).unwrap(), "a.example");
}

#[test]
fn symlink_loop_is_rejected() {
    let (_dir, path) = temp_config();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let other = path.with_file_name("other.json");
    symlink(&other, &path).unwrap();
    symlink(&path, &other).unwrap();

    let err = ConfigEditor::open(&path).unwrap_err();

    assert!(matches!(err, Error::Write { .. }), "{err:?}");
    assert_contains(&err.to_string(), "follow the symbolic links");
}

#[test]
fn write_follows_symlink() {
    let (dir, path) = temp_config();
    let target = dir.path().join("secret-mount").join("config.json");
    write_existing(&target, "{}");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(&target, &path).unwrap();

    login(&path, "a.example", "u", "p");

    assert!(
        fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_contains(&fs::read_to_string(&target).unwrap(), "a.example");
}

#[test]
fn helper_for_names_cred_helper_then_store() {
    let (_dir, path) = temp_config();
    write_existing(
        &path,
        r#"{"credHelpers": {"ecr.example": "ecr-login"}, "credsStore": "pass"}"#,
    );

    let editor = ConfigEditor::open(&path).unwrap();

    assert_eq!(
        editor.helper_for("https://ecr.example/v2/"),
        Some(Source::Helper {
            path: path.clone(),
            name: "ecr-login".to_owned()
        })
    );
    assert_eq!(
        editor.helper_for("other.example"),
        Some(Source::Store {
            path: path.clone(),
            name: "pass".to_owned()
        })
    );
}

#[test]
fn helper_for_without_helpers_is_none() {
    let (_dir, path) = temp_config();
    write_existing(
        &path,
        r#"{"credHelpers": {"ecr.example": ""}, "credsStore": ""}"#,
    );

    let editor = ConfigEditor::open(&path).unwrap();

    assert_eq!(editor.helper_for("ecr.example"), None);
    assert_eq!(editor.helper_for("other.example"), None);
}

#[test]
fn logout_removes_every_matching_key() {
    let (_dir, path) = temp_config();
    write_existing(
        &path,
        r#"{"auths": {"r.example": {}, "https://r.example/v2/": {}, "r.example:5000": {}}, "x": 1}"#,
    );

    let mut editor = ConfigEditor::open(&path).unwrap();
    let removed = editor.remove("https://r.example").unwrap();
    editor.save().unwrap();

    assert_eq!(removed, ["r.example", "https://r.example/v2/"]);
    assert_eq!(
        read_json(&path),
        serde_json::json!({"auths": {"r.example:5000": {}}, "x": 1})
    );
}

#[test]
fn logout_without_auths_changes_nothing() {
    let (_dir, path) = temp_config();
    write_existing(&path, r#"{"credsStore": "pass"}"#);

    let mut editor = ConfigEditor::open(&path).unwrap();

    assert!(editor.remove("r.example").unwrap().is_empty());
    assert_eq!(
        editor.to_bytes().unwrap(),
        b"{\n\t\"credsStore\": \"pass\"\n}\n"
    );
}

#[test]
fn invalid_json_is_never_overwritten() {
    let (_dir, path) = temp_config();
    write_existing(&path, "{\"auths\": {\"r\": {\"auth\": \"c2VjcmV0\"}");

    let err = ConfigEditor::open(&path).unwrap_err();

    assert!(matches!(err, Error::InvalidJson { .. }), "{err:?}");
    assert_contains(&err.to_string(), &path.display().to_string());
}

#[test]
fn wrongly_typed_members_rejected_on_open() {
    let (_dir, path) = temp_config();
    for text in [r#"{"auths": ["r.example"]}"#, r#"{"credHelpers": "pass"}"#] {
        write_existing(&path, text);

        let err = ConfigEditor::open(&path).unwrap_err();

        assert!(matches!(err, Error::InvalidJson { .. }), "{text}: {err:?}");
        assert_contains(&err.to_string(), &path.display().to_string());
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }
}

#[test]
fn invalid_inputs_rejected_clearly() {
    let (_dir, path) = temp_config();
    let mut editor = ConfigEditor::open(&path).unwrap();
    let password = Secret::new("p");

    let cases = [
        (
            editor.set_basic_auth("r.example", "", &password),
            "user name: it is empty",
        ),
        (
            editor.set_basic_auth("r.example", "a:b", &password),
            "contains `:`",
        ),
        (
            editor.set_basic_auth("r.example", "ci-user\n", &password),
            "contains a control character",
        ),
        (
            editor.set_basic_auth("r.example", "u", &Secret::new("")),
            "password is empty",
        ),
        (
            editor.set_basic_auth("", "u", &password),
            "invalid registry name \"\"",
        ),
        (
            editor.set_basic_auth("https:///", "u", &password),
            "no host name",
        ),
        (
            editor.set_basic_auth("r example", "u", &password),
            "whitespace",
        ),
        (
            editor.set_basic_auth("../../etc", "u", &password),
            "invalid registry name \"../../etc\": the host is not a DNS name",
        ),
        (
            editor.set_basic_auth("ftp://r.example", "u", &password),
            "scheme",
        ),
    ];

    for (result, expected) in cases {
        let err = result.unwrap_err();
        assert_contains(&err.to_string(), expected);
    }
}

/// Secrets that a hand-written `echo` of JSON would break.
fn hard_secrets() -> Vec<String> {
    vec![
        "pa:ss:word".to_owned(),
        "quote\"inside".to_owned(),
        "back\\slash\\".to_owned(),
        "line\nbreak\r\n".to_owned(),
        "non-ASCII: päss wörd ✓ 密码".to_owned(),
        "x".repeat(200),
        "all: \" \\ \n ü ' $HOME `id` {}".to_owned(),
    ]
}

#[test]
fn round_trip_through_both_readers() {
    for secret in hard_secrets() {
        let (_dir, path) = temp_config();

        let ((), logs) = capture_logs(|| {
            login(&path, "registry.example:5000", "ci-user", &secret);
        });

        let file = fs::File::open(&path).unwrap();
        let theirs =
            docker_credential::get_credential_from_reader(file, "registry.example:5000").unwrap();
        assert_eq!(
            theirs,
            docker_credential::DockerCredential::UsernamePassword("ci-user".into(), secret.clone()),
        );

        let env = Environment::default();
        let keychain = Keychain::new(vec![path.clone()], &env);
        let ((ours, debug), read_logs) = capture_logs(|| {
            let ours = keychain
                .credential("https://registry.example:5000/")
                .unwrap();
            let debug = format!("{ours:?}");
            (ours, debug)
        });
        assert_eq!(ours, Some(Credential::basic("ci-user", secret.as_str())));

        assert_no_secret(
            &secret,
            "logs and Debug output",
            &[&logs, &read_logs, &debug],
        );
    }
}

#[test]
fn docker_hub_entry_readable_by_docker_credential() {
    let (_dir, path) = temp_config();

    login(&path, "index.docker.io", "hubuser", "hub:pw");

    for name in [
        "https://index.docker.io/v1/",
        "docker.io",
        "index.docker.io",
    ] {
        let file = fs::File::open(&path).unwrap();
        let theirs = docker_credential::get_credential_from_reader(file, name).unwrap();
        assert_eq!(
            theirs,
            docker_credential::DockerCredential::UsernamePassword(
                "hubuser".into(),
                "hub:pw".into()
            ),
            "{name}"
        );
    }
}

#[test]
fn reader_errors_hold_no_secret() {
    let secret = "918273645-quote\"-colon:";
    let (_dir, path) = temp_config();
    let env = Environment::default();
    let keychain = Keychain::new(vec![path.clone()], &env);
    let encoded_without_colon = STANDARD.encode(secret.replace(':', ""));
    let files = [
        format!(
            r#"{{"auths": {{"r.example": {{"password": {}}}}}}}"#,
            918273645
        ),
        format!(r#"{{"auths": {{"r.example": {{"auth": "{secret}"}}}}}}"#).replace('"', "'"),
        format!(r#"{{"auths": {{"r.example": {{"auth": "{encoded_without_colon}"}}}}}}"#),
        format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}!"}}}}}}"#,
            STANDARD.encode(secret)
        ),
    ];

    for text in files {
        write_existing(&path, &text);
        let (result, logs) = capture_logs(|| keychain.credential("r.example"));
        let err = result.unwrap_err();

        assert_contains(&err.to_string(), &path.display().to_string());
        assert_error_has_no_secret("918273645", &err);
        assert_no_secret("918273645", "logs", &[&logs]);
    }
}

proptest! {
    // Each case writes and fsyncs a file, so the default 256 cases would take seconds.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_credential_round_trips(
        username in "[^:\\p{Cc}]{1,40}",
        password in any::<String>().prop_filter("non-empty", |p| !p.is_empty()),
    ) {
        let (_dir, path) = temp_config();
        login(&path, "registry.example", &username, &password);

        let keychain = Keychain::new(vec![path.clone()], &Environment::default());
        let credential = keychain.credential("registry.example").unwrap();

        prop_assert_eq!(credential, Some(Credential::basic(username, password)));
    }
}
