//! The `hoist-testbed` binary: it announces "ready" once the env file names a
//! working registry and release server, keeps the password out of its
//! output, and cleans up on every kind of stop.

// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoist_testkit::RegistryClient;
use hoist_testkit::testbed::StateFiles;

/// The maximum time a stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

struct Started {
    child: Child,
    state: PathBuf,
    stderr: PathBuf,
    _work: tempfile::TempDir,
}

/// Starts `hoist-testbed serve` with `extra` options and waits for "ready".
fn start(extra: &[&str], stdin: Stdio) -> Started {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let stderr = work.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist-testbed"))
        .args(["serve", "--stand-ins", "--state-dir"])
        .arg(&state)
        .args(extra)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n", "{}", fs::read_to_string(&stderr).unwrap());
    Started {
        child,
        state,
        stderr,
        _work: work,
    }
}

/// Returns the value of `name` after sourcing the env file with `sh`.
fn env_value(state: &Path, name: &str) -> String {
    let env_file = StateFiles::in_dir(state).env;
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(". \"$0\" && printf %s \"${name}\""))
        .arg(&env_file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let started = Instant::now();
    while started.elapsed() < STOP_TIMEOUT {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("hoist-testbed did not stop within {STOP_TIMEOUT:?}");
}

#[test]
fn env_file_names_working_services() {
    let mut started = start(&[], Stdio::piped());
    let registry = env_value(&started.state, "HOIST_TESTBED_REGISTRY");
    let ca_cert = env_value(&started.state, "HOIST_TESTBED_CA_CERT");
    let user = env_value(&started.state, "HOIST_TESTBED_USER");
    let password_file = env_value(&started.state, "HOIST_TESTBED_PASSWORD_FILE");
    let releases = env_value(&started.state, "HOIST_TESTBED_RELEASES_URL");
    let password = fs::read_to_string(&password_file).unwrap();
    let mode = fs::metadata(&password_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(user, "hoist-ci");
    assert!(password.len() >= 32, "password of {} bytes", password.len());

    let url = format!("https://{registry}");
    let client = RegistryClient::new(&url, Some(Path::new(&ca_cert)), Some((&user, &password)));
    let client = client.unwrap();
    assert_eq!(client.get("/v2/", &[]).unwrap().status, 200);
    let manifest = client.get_manifest("base/debian", "bookworm").unwrap();
    assert_eq!(manifest.status, 200);
    let anonymous = client.with_credentials(None);
    assert_eq!(anonymous.get("/v2/", &[]).unwrap().status, 401);
    let zip = ureq::get(format!(
        "{releases}/terraform/1.12.2/terraform_1.12.2_linux_amd64.zip"
    ))
    .call()
    .unwrap();
    assert_eq!(zip.status(), 200);

    drop(started.child.stdin.take());
    let status = wait_for_exit(&mut started.child);
    assert!(status.success(), "{status}");
    let leftovers: Vec<_> = fs::read_dir(&started.state).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(client.get("/v2/", &[]).is_err(), "registry still answers");
    let log = fs::read_to_string(&started.stderr).unwrap();
    assert!(!log.contains(&password), "password in the log");
    assert!(log.contains("standard input was closed"), "{log}");
}

#[test]
fn sigterm_stops_when_stdin_ignored() {
    let mut started = start(&["--ignore-stdin"], Stdio::null());
    let env_file = StateFiles::in_dir(&started.state).env;
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        env_file.exists(),
        "stopped although --ignore-stdin was given"
    );

    let pid = rustix::process::Pid::from_child(&started.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = wait_for_exit(&mut started.child);

    assert!(status.success(), "{status}");
    assert!(!env_file.exists());
    let log = fs::read_to_string(&started.stderr).unwrap();
    assert!(log.contains("signal=15"), "{log}");
}

#[test]
fn sigterm_during_start_skips_ready() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let stderr = work.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist-testbed"))
        .args(["serve", "--stand-ins", "--state-dir"])
        .arg(&state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // The registry starts after the signal handlers are in place and before
    // the base images are pushed, so the signal arrives during the start.
    let started = Instant::now();
    while !fs::read_to_string(&stderr)
        .unwrap()
        .contains("registry started")
    {
        assert!(
            started.elapsed() < STOP_TIMEOUT,
            "the registry did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = wait_for_exit(&mut child);

    assert!(status.success(), "{status}");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, "");
    assert!(!StateFiles::in_dir(&state).env.exists());
}

#[test]
fn invalid_version_fails_with_message() {
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hoist-testbed"))
        .args(["serve", "--tflint-version", "v1/..", "--state-dir"])
        .arg(work.path().join("state"))
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("invalid release version \"v1/..\""),
        "{stderr}"
    );
}
