//! The sandbox helper: the code that runs inside the new namespaces, sets up
//! the stage root and replaces itself with the RUN command.
//!
//! `unshare(1)` starts the helper as PID 1 of a new PID namespace, in new
//! mount, UTS and IPC namespaces whose mounts are private, so nothing the
//! helper mounts reaches the builder's namespace. The helper then mounts
//! `/proc`, a `/dev` tmpfs and the network files into the root, moves into
//! it with `pivot_root` (the old root is detached, so `chroot` tricks cannot
//! reach it), switches user and capabilities, and `exec`s the command.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::{SandboxSpec, StepMountSource};

/// The exit status of the helper when the sandbox cannot be set up.
pub const SETUP_FAILED: i32 = 125;
/// The exit status when the command cannot be executed (as in `sh`).
const NOT_EXECUTABLE: i32 = 126;
/// The exit status when the command is not found (as in `sh`).
const NOT_FOUND: i32 = 127;

/// Host devices bind-mounted into the sandbox's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Returns the capabilities a root RUN step keeps: Docker's default set
/// without `CAP_MKNOD`. Docker can keep `CAP_MKNOD` because a device cgroup
/// blocks the nodes. The sandbox has no such cgroup, so a block device node
/// would give raw access to the builder's disks.
fn kept_capabilities() -> CapabilitySet {
    CapabilitySet::CHOWN
        | CapabilitySet::DAC_OVERRIDE
        | CapabilitySet::FSETID
        | CapabilitySet::FOWNER
        | CapabilitySet::NET_RAW
        | CapabilitySet::SETGID
        | CapabilitySet::SETUID
        | CapabilitySet::SETFCAP
        | CapabilitySet::SETPCAP
        | CapabilitySet::NET_BIND_SERVICE
        | CapabilitySet::SYS_CHROOT
        | CapabilitySet::KILL
        | CapabilitySet::AUDIT_WRITE
}

/// Runs the helper with the JSON spec in `args[0]` and never returns: it
/// either becomes the command or exits with [`SETUP_FAILED`],
/// `126` or `127` after writing the reason to stderr.
pub fn helper_main(args: &[OsString]) -> ! {
    let spec = match parse_spec(args) {
        Ok(spec) => spec,
        Err(message) => fail(SETUP_FAILED, &message),
    };
    // Read before `pivot_root`, which hides the builder's files.
    let file_env = match read_file_env(&spec) {
        Ok(file_env) => file_env,
        Err(message) => fail(SETUP_FAILED, &message),
    };
    if let Err(message) = set_up(&spec) {
        fail(SETUP_FAILED, &message);
    }
    let Some((program, args)) = spec.argv.split_first() else {
        fail(SETUP_FAILED, "the spec has an empty command");
    };
    let mut command = command(program, args, &spec);
    command.envs(file_env);
    let error = command.exec();
    let status = match error.kind() {
        io::ErrorKind::NotFound => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    };
    fail(status, &format!("failed to execute {program:?}: {error}"))
}

fn fail(status: i32, message: &str) -> ! {
    eprintln!("hoist-sandbox: {message}");
    std::process::exit(status)
}

fn parse_spec(args: &[OsString]) -> Result<SandboxSpec, String> {
    let [json] = args else {
        return Err(format!("expected one JSON argument, found {}", args.len()));
    };
    let json = json.to_str().ok_or("the spec is not valid UTF-8")?;
    serde_json::from_str(json).map_err(|error| format!("invalid spec: {error}"))
}

/// Prepares the root and the process, step by step.
fn set_up(spec: &SandboxSpec) -> Result<(), String> {
    let root = &spec.root;
    make_root_a_mount(root)?;
    let root_fd = open_directory(root)?;
    mount_proc(&root_fd)?;
    mount_dev(&root_fd, spec)?;
    mount_network_files(&root_fd, spec)?;
    mount_step_mounts(&root_fd, spec)?;
    drop(root_fd);

    enter_root(root)?;
    rustix::system::sethostname(spec.hostname.as_bytes())
        .map_err(|error| format!("failed to set the hostname {:?}: {error}", spec.hostname))?;
    enter_working_directory(&spec.cwd)?;
    switch_identity(spec)
}

fn make_root_a_mount(root: &Path) -> Result<(), String> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|error| format!("failed to make mounts private: {error}"))?;
    rustix::mount::mount_bind_recursive(root, root)
        .map_err(|error| format!("failed to bind {} onto itself: {error}", root.display()))
}

fn open_directory(path: &Path) -> Result<OwnedFd, String> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|error| format!("failed to open {}: {error}", path.display()))
}

/// Opens `relative` inside the root without letting `..` or symlinks leave
/// it, and returns the descriptor with its `/proc/self/fd` path, which a
/// mount can target without resolving the name again.
fn mount_target(root_fd: &OwnedFd, relative: &str) -> io::Result<(OwnedFd, PathBuf)> {
    let fd = rustix::fs::openat2(
        root_fd,
        relative,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    Ok((fd, path))
}

fn mount_error(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |error| format!("failed to mount {what}: {error}")
}

fn mount_errno(what: &str) -> impl Fn(rustix::io::Errno) -> String + '_ {
    move |error| format!("failed to mount {what}: {error}")
}

fn mount_proc(root_fd: &OwnedFd) -> Result<(), String> {
    let (_fd, target) = mount_target(root_fd, "proc").map_err(mount_error("/proc"))?;
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    rustix::mount::mount("proc", &target, "proc", flags, None).map_err(mount_errno("/proc"))
}

fn mount_dev(root_fd: &OwnedFd, spec: &SandboxSpec) -> Result<(), String> {
    let (_fd, target) = mount_target(root_fd, "dev").map_err(mount_error("/dev"))?;
    let flags = MountFlags::NOSUID | MountFlags::STRICTATIME;
    rustix::mount::mount("tmpfs", &target, "tmpfs", flags, c"mode=755,size=65536k")
        .map_err(mount_errno("/dev"))?;
    // As with any mount, only a name resolved after it reaches the tmpfs.
    let (_mounted_fd, mounted) = mount_target(root_fd, "dev").map_err(mount_error("/dev"))?;
    let dev = open_directory(&mounted)?;
    let dev_path = PathBuf::from(format!("/proc/self/fd/{}", dev.as_raw_fd()));

    for device in DEVICES {
        let node = dev_path.join(device);
        std::fs::File::create(&node).map_err(mount_error(device))?;
        let host = Path::new("/dev").join(device);
        rustix::mount::mount_bind(&host, &node).map_err(mount_errno(device))?;
    }
    mount_pts_and_shm(&dev_path)?;
    link_descriptors(&dev_path)?;
    write_pipes(&dev_path, spec)
}

fn mount_pts_and_shm(dev_path: &Path) -> Result<(), String> {
    let pts = dev_path.join("pts");
    std::fs::create_dir(&pts).map_err(mount_error("/dev/pts"))?;
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    let options = c"newinstance,ptmxmode=0666,mode=0620,gid=5";
    rustix::mount::mount("devpts", &pts, "devpts", flags, options)
        .map_err(mount_errno("/dev/pts"))?;
    std::os::unix::fs::symlink("pts/ptmx", dev_path.join("ptmx"))
        .map_err(mount_error("/dev/ptmx"))?;

    let shm = dev_path.join("shm");
    std::fs::create_dir(&shm).map_err(mount_error("/dev/shm"))?;
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    rustix::mount::mount("shm", &shm, "tmpfs", flags, c"mode=1777,size=65536k")
        .map_err(mount_errno("/dev/shm"))
}

fn link_descriptors(dev_path: &Path) -> Result<(), String> {
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, dev_path.join(name))
            .map_err(|error| format!("failed to link /dev/{name}: {error}"))?;
    }
    Ok(())
}

/// Writes the heredoc scripts that the command runs as files, under
/// `/dev/pipes`, which is on the `/dev` tmpfs and so never in a layer.
fn write_pipes(dev_path: &Path, spec: &SandboxSpec) -> Result<(), String> {
    if spec.pipes.is_empty() {
        return Ok(());
    }
    let pipes = dev_path.join("pipes");
    let write_error = |error: io::Error| format!("failed to write /dev/pipes: {error}");
    std::fs::create_dir(&pipes).map_err(write_error)?;
    for pipe in &spec.pipes {
        if pipe.name.is_empty() || pipe.name.contains('/') || pipe.name.starts_with('.') {
            return Err(format!("invalid heredoc file name {:?}", pipe.name));
        }
        let path = pipes.join(&pipe.name);
        std::fs::write(&path, &pipe.content).map_err(write_error)?;
        let permissions = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&path, permissions).map_err(write_error)?;
    }
    Ok(())
}

/// Binds the builder's `resolv.conf` and `hosts` copies over the image's
/// files, read-only. A target the image lacks (a dangling symlink, say) is
/// skipped: the parent created stubs for missing files.
fn mount_network_files(root_fd: &OwnedFd, spec: &SandboxSpec) -> Result<(), String> {
    let files = [
        ("etc/resolv.conf", &spec.resolv_conf),
        ("etc/hosts", &spec.hosts),
    ];
    for (relative, source) in files {
        let what = format!("/{relative}");
        let (_fd, target) = match mount_target(root_fd, relative) {
            Ok(found) => found,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(mount_error(&what)(error)),
        };
        rustix::mount::mount_bind(source, &target).map_err(mount_errno(&what))?;
        // The first descriptor names the file under the new mount, so the
        // read-only remount needs a descriptor opened after the bind.
        let (_mounted_fd, mounted) = mount_target(root_fd, relative).map_err(mount_error(&what))?;
        let flags = MountFlags::BIND | MountFlags::RDONLY;
        rustix::mount::mount_remount(&mounted, flags, "").map_err(mount_errno(&what))?;
    }
    Ok(())
}

/// Reads the values of the variables that the spec takes from files. The
/// message names the variable, never the value.
fn read_file_env(spec: &SandboxSpec) -> Result<Vec<(String, String)>, String> {
    spec.file_env
        .iter()
        .map(|(name, path)| {
            let value = std::fs::read(path)
                .map_err(|error| format!("failed to read the value of {name}: {error}"))?;
            Ok((name.clone(), String::from_utf8_lossy(&value).into_owned()))
        })
        .collect()
}

/// Makes the `RUN --mount`s in order, each target resolved inside the root
/// and each source inside its tree.
fn mount_step_mounts(root_fd: &OwnedFd, spec: &SandboxSpec) -> Result<(), String> {
    for mount in &spec.mounts {
        let what = format!("/{}", mount.target.display());
        let relative = mount.target.to_string_lossy();
        let (_target_fd, target) = mount_target(root_fd, &relative).map_err(mount_error(&what))?;
        match &mount.source {
            StepMountSource::Tmpfs { size } => mount_tmpfs(&target, *size, &what)?,
            StepMountSource::Tree {
                tree,
                path,
                scratch,
            } => {
                let tree_fd = open_directory(tree)?;
                let source_path = path.to_string_lossy();
                let (_source_fd, source) =
                    mount_target(&tree_fd, &source_path).map_err(mount_error(&what))?;
                match scratch {
                    None => rustix::mount::mount_bind_recursive(&source, &target)
                        .map_err(mount_errno(&what))?,
                    Some(scratch) => mount_discarding_overlay(&source, scratch, &target, &what)?,
                }
            }
        }
        if mount.readonly {
            let (_mounted_fd, mounted) =
                mount_target(root_fd, &relative).map_err(mount_error(&what))?;
            let flags = MountFlags::BIND | MountFlags::RDONLY;
            rustix::mount::mount_remount(&mounted, flags, "").map_err(mount_errno(&what))?;
        }
    }
    Ok(())
}

fn mount_tmpfs(target: &Path, size: Option<u64>, what: &str) -> Result<(), String> {
    let options = match size {
        Some(size) => format!("mode=1777,size={size}"),
        None => "mode=1777".to_owned(),
    };
    let options = std::ffi::CString::new(options).map_err(|error| error.to_string())?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV;
    rustix::mount::mount("tmpfs", target, "tmpfs", flags, options.as_c_str())
        .map_err(mount_errno(what))
}

/// Mounts `lower` at `target` through an overlay whose upper and work
/// directories are in `scratch`, so writes land there and are discarded.
fn mount_discarding_overlay(
    lower: &Path,
    scratch: &Path,
    target: &Path,
    what: &str,
) -> Result<(), String> {
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    for directory in [&upper, &work] {
        std::fs::create_dir_all(directory).map_err(mount_error(what))?;
    }
    let paths = [lower, &upper, &work];
    if let Some(path) = paths
        .iter()
        .find(|path| path.to_string_lossy().contains([',', ':', '\\']))
    {
        return Err(format!(
            "failed to mount {what}: overlay path {} contains ',', ':' or '\\'",
            path.display()
        ));
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let options = std::ffi::CString::new(options).map_err(|error| error.to_string())?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        options.as_c_str(),
    )
    .map_err(mount_errno(what))
}

/// Makes the root the process's `/` with `pivot_root` and detaches the old
/// root, so no path leads back to the builder's filesystem.
fn enter_root(root: &Path) -> Result<(), String> {
    let pivot_error = |error: rustix::io::Errno| format!("failed to pivot into the root: {error}");
    rustix::process::chdir(root).map_err(pivot_error)?;
    rustix::process::pivot_root(".", ".").map_err(pivot_error)?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(pivot_error)?;
    rustix::process::chdir("/").map_err(pivot_error)
}

/// Changes to the working directory, creating it first when the image lacks
/// it, as runc does.
fn enter_working_directory(cwd: &str) -> Result<(), String> {
    let directory_error = |error: io::Error| format!("failed to enter {cwd:?}: {error}");
    std::fs::create_dir_all(cwd).map_err(directory_error)?;
    std::env::set_current_dir(cwd).map_err(directory_error)
}

fn switch_identity(spec: &SandboxSpec) -> Result<(), String> {
    let identity = &spec.identity;
    let id_error = |error: rustix::io::Errno| {
        format!(
            "failed to switch to uid {} gid {}: {error}",
            identity.uid, identity.gid
        )
    };
    let kept = kept_capabilities();
    for capability in CapabilitySet::all().difference(kept).iter() {
        match rustix::thread::remove_capability_from_bounding_set(capability) {
            // The running kernel may know fewer capabilities than rustix.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(error) => return Err(format!("failed to drop a capability: {error}")),
        }
    }
    let groups: Vec<rustix::fs::Gid> = identity
        .groups
        .iter()
        .map(|gid| rustix::fs::Gid::from_raw(*gid))
        .collect();
    rustix::thread::set_thread_groups(&groups).map_err(id_error)?;
    rustix::thread::set_thread_gid(rustix::fs::Gid::from_raw(identity.gid)).map_err(id_error)?;
    rustix::thread::set_thread_uid(rustix::fs::Uid::from_raw(identity.uid)).map_err(id_error)?;
    if identity.uid == 0 {
        let sets = CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: CapabilitySet::empty(),
        };
        rustix::thread::set_capabilities(None, sets)
            .map_err(|error| format!("failed to set capabilities: {error}"))?;
    }
    Ok(())
}

fn command(program: &str, args: &[String], spec: &SandboxSpec) -> Command {
    let mut command = Command::new(program);
    command.args(args).env_clear();
    for variable in &spec.env {
        match variable.split_once('=') {
            Some((name, value)) => command.env(name, value),
            None => command.env(variable, ""),
        };
    }
    command
}
