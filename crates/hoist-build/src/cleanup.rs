//! Cleanup on SIGINT and SIGTERM: the work directories of running builds,
//! the mounts under them and the sandbox processes of running RUN steps.
//!
//! A signal ends a process without running destructors, so a build's
//! temporary work directory and overlay mount would stay behind. A binary
//! calls [`install_signal_handler`] once. On the first SIGINT or SIGTERM,
//! a thread of its own marks the process as cancelled and kills the running
//! sandboxes. The build then fails at its next step and removes its work
//! directory itself. Whatever is still registered after a grace period is
//! unmounted and removed by that thread before the process exits with
//! status 128 + the signal number, as a shell reports it. A binary whose
//! build returns first exits with [`signal_exit_status`] itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::mount::UnmountFlags;
use rustix::process::{Pid, Signal};

/// How long a cancelled build may take to remove its own work directory
/// before the signal thread removes it.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

static CANCELLED: AtomicBool = AtomicBool::new(false);
/// The signal that cancelled the builds, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    work_dirs: Vec::new(),
    children: Vec::new(),
});
static RELEASED: Condvar = Condvar::new();

/// The work directories and sandbox processes of the running builds.
struct Registry {
    work_dirs: Vec<PathBuf>,
    children: Vec<u32>,
}

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while the lock was held leaves plain lists behind, which stay
    // usable.
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tells whether a signal cancelled the builds of this process.
pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// Returns the exit status for the signal that cancelled the builds, 128 +
/// its number, or `None` when no signal did.
pub fn signal_exit_status() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(128 + signal),
    }
}

/// Registers a work directory for removal on cancellation while the guard
/// lives. Builds register their own; a caller registers any other temporary
/// directory that a signal must not leave behind, such as an extracted
/// context.
#[derive(Debug)]
pub struct WorkDirGuard {
    path: PathBuf,
}

impl WorkDirGuard {
    /// Registers `path`; dropping the guard unregisters it but removes nothing.
    pub fn register(path: &Path) -> Self {
        registry().work_dirs.push(path.to_path_buf());
        Self {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for WorkDirGuard {
    fn drop(&mut self) {
        let mut registry = registry();
        if let Some(position) = registry.work_dirs.iter().position(|dir| *dir == self.path) {
            registry.work_dirs.swap_remove(position);
        }
        RELEASED.notify_all();
    }
}

/// Registers a running sandbox process, killed on cancellation while the
/// guard lives.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    pid: u32,
}

impl ChildGuard {
    /// Registers `pid`, and kills it at once when the builds are already
    /// cancelled, so that a process started during cancellation also ends.
    pub(crate) fn register(pid: u32) -> Self {
        registry().children.push(pid);
        if is_cancelled() {
            kill(pid);
        }
        Self { pid }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        registry().children.retain(|pid| *pid != self.pid);
    }
}

fn kill(pid: u32) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(error) = rustix::process::kill_process(pid, Signal::KILL) {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), %error, "failed to kill sandbox");
    }
}

/// Cancels the builds of this process: later steps fail, running sandboxes
/// are killed, and after `grace` the work directories still registered are
/// unmounted and removed. Returns the directories removed that way.
pub fn cancel_builds(grace: Duration) -> Vec<PathBuf> {
    CANCELLED.store(true, Ordering::SeqCst);
    let children = registry().children.clone();
    for pid in children {
        kill(pid);
    }

    let deadline = Instant::now() + grace;
    let mut registry = registry();
    while !registry.work_dirs.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        registry = RELEASED
            .wait_timeout(registry, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    let remaining = registry.work_dirs.clone();
    for dir in &remaining {
        remove_work_dir(dir);
    }
    remaining
}

/// Unmounts every mount under `dir`, deepest first, then removes `dir`.
fn remove_work_dir(dir: &Path) {
    for mount_point in mounts_under(dir) {
        if let Err(error) = rustix::mount::unmount(&mount_point, UnmountFlags::DETACH) {
            tracing::warn!(path = %mount_point.display(), %error, "failed to unmount");
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => tracing::info!(path = %dir.display(), "work directory removed"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %dir.display(), %error, "failed to remove work directory");
        }
    }
}

/// Returns the mount points of this process's mount namespace under `dir`,
/// deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    mounts.sort_by_key(|mount_point| std::cmp::Reverse(mount_point.components().count()));
    mounts
}

/// Decodes the octal escapes (`\040` for a space) of a mountinfo field.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes
            .get(index + 1..index + 4)
            .filter(|_| bytes[index] == b'\\');
        let value = escape
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match value {
            Some(value) => {
                decoded.push(value);
                index += 4;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Starts a thread that cancels the builds of this process on the first
/// SIGINT or SIGTERM, removes what they leave after [`GRACE_PERIOD`] and
/// exits with status 128 + the signal number.
pub fn install_signal_handler() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};

    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("hoist-signals".to_owned())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                tracing::warn!(signal, "signal received, cancelling the build");
                SIGNAL.store(signal, Ordering::SeqCst);
                cancel_builds(GRACE_PERIOD);
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/var/tmp/a\040b"), "/var/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo(r"/tail\04"), r"/tail\04");
    }

    #[test]
    fn dropped_guard_releases_work_dir() {
        let dir = PathBuf::from("/var/tmp/hoist-cleanup-guard-test");
        let guard = WorkDirGuard::register(&dir);
        assert!(registry().work_dirs.contains(&dir));
        drop(guard);
        assert!(!registry().work_dirs.contains(&dir));
    }
}
