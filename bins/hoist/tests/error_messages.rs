//! A failed run prints one error line in which each cause appears once.

mod support;

use std::process::Output;

use support::{context, hoist};

/// Runs `hoist --no-push` on a context with `dockerfile` (`{REGISTRY}` replaced by the
/// registry's host) and `extra` flags.
fn run(dockerfile: &str, registry: &str, extra: &[&str]) -> Output {
    let home = support::temporary_dir();
    let dockerfile = dockerfile.replace("{REGISTRY}", registry);
    let dir = context(home.path(), &[("Dockerfile", &dockerfile)]);
    hoist(home.path())
        .arg("--no-push")
        .arg("--context")
        .arg(&dir)
        .args(extra)
        .output()
        .expect("run hoist")
}

/// Returns the lines of stderr that report the error.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("hoist: error: "))
        .collect()
}

/// Returns the pieces of an error line that occur more than once. The pieces are the
/// message of each cause, split at `: ` and at sentence ends.
fn repeated_pieces(line: &str) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut repeated = Vec::new();
    let message = line.trim_start_matches("hoist: error: ");
    for piece in message.split(": ").flat_map(|part| part.split(". ")) {
        let piece = piece.trim().trim_end_matches('.');
        if piece.is_empty() {
            continue;
        }
        if seen.contains(&piece) {
            repeated.push(piece.to_owned());
        } else {
            seen.push(piece);
        }
    }
    repeated
}

/// Checks the exit status, that stderr has one error line containing `expected`, and
/// that no piece of that line is repeated.
fn assert_error_reads_once(output: &Output, status: i32, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(status), "{stderr}");
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "expected one error line in:\n{stderr}");
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert_eq!(repeated_pieces(lines[0]), Vec::<String>::new(), "{stderr}");
}

#[test]
fn repeated_pieces_are_found() {
    let line = "hoist: error: Dockerfile:2: source \"x\" not found: source \"x\" not found";
    assert_eq!(repeated_pieces(line), ["source \"x\" not found"]);
    assert!(repeated_pieces("hoist: error: a: b. c: d").is_empty());
}

#[test]
fn missing_copy_source_reads_once() {
    let registry = support::plain_registry();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nCOPY missing.txt /missing.txt\n";
    let output = run(dockerfile, registry.host(), &[]);
    assert_error_reads_once(
        &output,
        1,
        "Dockerfile:2: source \"missing.txt\" not found in the build context",
    );
}

#[test]
fn failing_run_reads_once() {
    let registry = support::plain_registry();
    let dockerfile = "FROM {REGISTRY}/base/busybox:latest\nRUN echo before && exit 3\n";
    let output = run(dockerfile, registry.host(), &[]);
    assert_error_reads_once(&output, 1, "Dockerfile:2: RUN echo before && exit 3 failed");
}

#[test]
fn unreadable_context_tarball_reads_once() {
    let home = support::temporary_dir();
    let missing = home.path().join("missing.tar.gz");
    let context = format!("tar://{}", missing.display());
    let output = run("FROM scratch\n", "", &["--context", &context]);
    assert_error_reads_once(&output, 2, "cannot read the context tarball");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn unreachable_base_registry_reads_once() {
    // A loopback port that was free a moment ago, so no registry listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    let dockerfile = format!("FROM 127.0.0.1:{port}/absent:latest\n");
    let output = run(&dockerfile, "", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "expected one error line in:\n{stderr}");
    assert!(lines[0].contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert_eq!(repeated_pieces(lines[0]), Vec::<String>::new(), "{stderr}");
}

#[test]
fn oversized_environment_names_e2big() {
    let registry = support::plain_registry();
    let value = "x".repeat(60 * 1024);
    let dockerfile = format!(
        "FROM {{REGISTRY}}/base/busybox:latest\nENV A={value}\nENV B={value}\nENV C={value}\n\
         RUN true\n"
    );
    let output = run(&dockerfile, registry.host(), &[]);
    assert_error_reads_once(
        &output,
        1,
        "Dockerfile:5: RUN true: argument list or environment too long",
    );
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size: &str) -> Self {
        let dir = support::temporary_dir();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "hoist-test"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs on {}", dir.path().display());
        Self { dir }
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Extracts a 1 MiB context into a 64 KiB tmpfs, which needs root to mount.
#[test]
fn full_disk_during_extraction_is_run_failure() {
    let small = SmallFilesystem::mount("64k");
    let home = support::temporary_dir();
    let tarball = home.path().join("context.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&tarball).expect("create tarball"));
    let content = vec![b'x'; 1024 * 1024];
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, "big.bin", content.as_slice())
        .expect("append entry");
    builder.finish().expect("finish tarball");

    let context = format!("tar://{}", tarball.display());
    let kaniko_dir = small.dir.path().display().to_string();
    let output = run(
        "FROM scratch\n",
        "",
        &["--context", &context, "--kaniko-dir", &kaniko_dir],
    );
    assert_error_reads_once(&output, 1, "cannot extract the context tarball");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

#[test]
fn oversized_dockerfile_is_rejected() {
    let mut dockerfile = String::from("FROM scratch\n# ");
    dockerfile.push_str(&"x".repeat(17 * 1024 * 1024));
    dockerfile.push('\n');
    let output = run(&dockerfile, "", &[]);
    // Like a parse error, an unreadable Dockerfile fails the run with status 1.
    assert_error_reads_once(&output, 1, "file is larger than the limit");
}
