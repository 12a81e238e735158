//! Input meant to make `hoist-dockerfile` hang, fill memory or panic: an
//! amplifying file, endless devices, FIFOs and a closed output pipe.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::predicate;

/// Address-space limit, in KiB, for the amplifying file: far below the
/// gigabytes that the file would take without a limit on total expansion.
const ADDRESS_SPACE_KIB: u64 = 512 * 1024;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hoist-dockerfile"))
}

fn command() -> Command {
    Command::new(binary())
}

fn write_dockerfile(directory: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = directory.path().join("Dockerfile");
    std::fs::write(&path, text).expect("temporary file is writable");
    path
}

/// Returns a file in which `$a` grows to 1 MiB by doubling, then 100,000
/// lines that each expand it.
fn amplifying_dockerfile() -> String {
    let mut text = format!("FROM scratch\nARG a={}\n", "a".repeat(64));
    text.push_str(&"ARG a=$a$a\n".repeat(14));
    text.push_str(&"LABEL l=$a\n".repeat(100_000));
    text
}

fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn amplifying_file_fails_in_bounded_memory() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(&directory, &amplifying_dockerfile());

    // The shell limits its own address space and then runs the checker in
    // its place, so that an allocation past the limit aborts the checker.
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" check \"$1\""
        ))
        .arg(binary())
        .arg(&file)
        .timeout(Duration::from_secs(120))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{}:78: expanded values in the build total more than 67108864 bytes",
            file.display()
        )));
}

#[test]
fn endless_device_is_rejected() {
    command()
        .args(["check", "/dev/zero"])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "/dev/zero: file is larger than the limit of 16777216 bytes",
        ));
}

#[test]
fn fifo_without_writer_does_not_block() {
    let directory = tempfile::tempdir().unwrap();
    let fifo = directory.path().join("Dockerfile");
    make_fifo(&fifo);

    command()
        .arg("check")
        .arg(&fifo)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("file with no instructions"));
}

#[test]
fn piped_standard_input_is_read() {
    command()
        .args(["check", "/dev/stdin"])
        .write_stdin("FROM scratch\nLABEL a=b\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .success();
}

#[test]
fn dump_to_closed_pipe_exits_quietly() {
    let directory = tempfile::tempdir().unwrap();
    // About 1 MiB of output, far more than a pipe buffers, so the checker
    // is still writing when the reader is gone.
    let text = format!("FROM scratch\n{}", "RUN echo one line\n".repeat(50_000));
    let file = write_dockerfile(&directory, &text);
    let mut child = std::process::Command::new(binary())
        .arg("dump")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();

    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn json_to_closed_pipe_exits_quietly() {
    let directory = tempfile::tempdir().unwrap();
    let text = format!("FROM scratch\n{}", "LABEL one=label\n".repeat(50_000));
    let file = write_dockerfile(&directory, &text);
    let mut child = std::process::Command::new(binary())
        .args(["json", "--platform", "linux/amd64"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();

    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn write_error_exits_with_message() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(&directory, "FROM scratch\n");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens");

    let output = std::process::Command::new(binary())
        .arg("dump")
        .arg(&file)
        .stdout(full)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to write to standard output"),
        "{stderr}"
    );
}

#[test]
fn terminal_escapes_not_printed() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(
        &directory,
        "FROM scratch\nFOO\u{1b}]0;pwned\u{7}\u{1b}[2K\n",
    );

    let output = command().arg("check").arg(&file).output().unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown instruction: FOO\\u{1b}]0;pwned\\u{7}\\u{1b}[2K"),
        "{stderr}"
    );
    assert!(!output.stderr.contains(&0x1b), "{stderr:?}");
    assert!(!output.stderr.contains(&0x07), "{stderr:?}");
}
