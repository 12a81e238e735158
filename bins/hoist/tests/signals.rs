//! A signal leaves no temporary directory of `hoist` behind.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn sigint_during_context_extraction_removes_it() {
    let home = support::temporary_dir();
    let kaniko_dir = home.path().join("work");
    std::fs::create_dir(&kaniko_dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join(".docker"))
        .env_remove("KANIKO_DIR")
        .args(["--context", "tar://stdin", "--no-push", "--kaniko-dir"])
        .arg(&kaniko_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hoist");
    // Half of a tar header: the extraction waits for the rest.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&[b'a'; 256]).unwrap();
    stdin.flush().unwrap();
    let extracting = wait_for(|| {
        entries(&kaniko_dir)
            .iter()
            .any(|n| n.starts_with("hoist-context-"))
    });
    assert!(extracting, "no context directory appeared");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().expect("wait for hoist");
    drop(stdin);
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert_eq!(entries(&kaniko_dir), Vec::<String>::new());
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read the work directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn wait_for(condition: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
