//! SIGINT and SIGTERM during a long RUN: the build process exits with
//! 128 + the signal number, its work directory is gone, nothing stays
//! mounted under it, and the RUN's processes are killed.
//!
//! The test starts a copy of this binary that builds with
//! `cleanup::install_signal_handler` installed, and signals it once its RUN
//! is running. A test harness would share the signal handler between tests,
//! so this file has its own `main`.

mod support;

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use hoist_build::cleanup::{install_signal_handler, mounts_under, signal_exit_status};
use rustix::process::{Pid, Signal, kill_process};
use support::{build_with, settings, source, temporary_dir};

/// The first argument that makes this binary the build to interrupt.
const CHILD_ARGUMENT: &str = "--interrupted-build";

/// A sleep no other process on the machine is likely to run.
const SLEEP: &str = "sleep 613";

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(CHILD_ARGUMENT) {
        let work_parent = args.next().expect("work parent argument");
        run_interrupted_build(Path::new(&work_parent));
    }
    for (signal, name) in [(Signal::INT, "SIGINT"), (Signal::TERM, "SIGTERM")] {
        println!("test signal_removes_work_dir ({name}) ...");
        signal_removes_work_dir(signal);
        println!("test signal_removes_work_dir ({name}) ... ok");
    }
}

fn run_interrupted_build(work_parent: &Path) -> ! {
    install_signal_handler().expect("install signal handler");
    let dockerfile = format!("FROM busybox\nRUN touch /started && {SLEEP}\n");
    let result = build_with(&dockerfile, &settings(work_parent, None), &source(&[]));
    drop(result);
    match signal_exit_status() {
        Some(status) => std::process::exit(status),
        None => {
            eprintln!("build ended without a signal");
            std::process::exit(1);
        }
    }
}

fn signal_removes_work_dir(signal: Signal) {
    let work = temporary_dir();
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .arg(CHILD_ARGUMENT)
        .arg(work.path())
        .spawn()
        .expect("start build");

    wait_for_file(work.path(), "started", &mut child);
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32")).expect("pid");
    kill_process(pid, signal).expect("send signal");
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));

    let expected = 128 + signal.as_raw();
    assert_eq!(status.code(), Some(expected), "{status}");
    let left: Vec<_> = std::fs::read_dir(work.path())
        .expect("read work parent")
        .collect();
    assert!(left.is_empty(), "work parent still contains {left:?}");
    let mounts = mounts_under(work.path());
    assert!(mounts.is_empty(), "still mounted: {mounts:?}");
    assert!(
        wait_until(Duration::from_secs(10), || !process_running(SLEEP)),
        "{SLEEP} still runs"
    );
}

/// Waits until a file named `name` exists somewhere under `dir`, failing
/// when `child` exits first or after two minutes.
fn wait_for_file(dir: &Path, name: &str, child: &mut Child) {
    let found = wait_until(Duration::from_secs(120), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("build exited before its RUN started: {status}");
        }
        contains_file(dir, name)
    });
    assert!(found, "no {name} under {}", dir.display());
}

fn contains_file(dir: &Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        entry.file_name() == name || (is_dir && contains_file(&path, name))
    })
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for build") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("build still runs {timeout:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    condition()
}

/// Tells whether a process whose command line is `command` runs.
fn process_running(command: &str) -> bool {
    let expected: Vec<u8> = command.replace(' ', "\0").into_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|cmdline| cmdline.strip_suffix(b"\0").unwrap_or(&cmdline) == expected)
    })
}
