//! What `hoist-push` writes to standard output and standard error when the output pipe is
//! closed or the source is not an image.

use std::process::Command;

use hoist_testkit::{BaseImage, Registry};

/// Returns a `hoist-push` command with an empty home, so no credentials apply, and only error
/// logs.
fn push_command(home: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist-push"));
    command
        .env("HOME", home)
        .env("RUST_LOG", "error")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE");
    command
}

#[test]
fn closed_stdout_exits_quietly() {
    let registry = Registry::builder().start().unwrap();
    let files = hoist_testkit::base_image(BaseImage::Busybox).unwrap();
    let home = tempfile::tempdir().unwrap();
    let digest_file = home.path().join("digest");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);

    let output = push_command(home.path())
        .arg(&files.layout)
        .args(["--source-ref", "latest"])
        .args(["--destination", &registry.reference("pipe/app:v1")])
        .args(["--insecure-registry", registry.host()])
        .arg("--digest-file")
        .arg(&digest_file)
        .stdout(writer)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert_eq!(stderr, "");
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
}

/// Returns `len` bytes of a fixed pseudo-random sequence, which contains control bytes and
/// invalid UTF-8.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    let mut next = || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        state.to_be_bytes()[1]
    };
    (0..len).map(|_| next()).collect()
}

#[test]
fn random_bytes_error_is_printable() {
    let registry = Registry::builder().start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let source = home.path().join("noise.bin");
    std::fs::write(&source, noise(4096)).unwrap();

    let output = push_command(home.path())
        .arg(&source)
        .args(["--destination", &registry.reference("noise/app:v1")])
        .args(["--insecure-registry", registry.host()])
        .output()
        .unwrap();

    let stderr = String::from_utf8(output.stderr).expect("standard error is UTF-8");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "hoist-push: reading the docker-archive {path}: {path} is not a valid tar archive: ",
        path = source.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr:?}");
    let message = stderr.strip_suffix('\n').unwrap_or(&stderr);
    assert!(!message.chars().any(char::is_control), "{stderr:?}");
    assert!(output.stdout.is_empty());
}
