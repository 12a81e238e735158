//! The RUN sandbox: a command run with a stage root as `/`.
//!
//! [`Sandbox::run`] starts `unshare(1)` from util-linux, which creates new
//! mount, PID, UTS and IPC namespaces (and a network namespace for
//! `--network=none`) and runs the sandbox helper in them as PID 1. The
//! helper ([`helper_main`], built as the `hoist-sandbox` binary) mounts
//! `/proc`, a minimal `/dev` and the builder's `resolv.conf` and `hosts`,
//! enters the root with `pivot_root`, switches to the step's user and
//! `exec`s the command. No `unsafe` code is involved: the namespaces come
//! from `unshare(1)`, and everything else is a plain system call.
//!
//! Mount points that the image lacks are created before the step and
//! removed after it, so they stay out of its layer. The mounts themselves
//! live only in the helper's mount namespace and vanish with it.

mod helper;
mod stubs;

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde::{Deserialize, Serialize};

use crate::user::Identity;
pub use helper::{SETUP_FAILED, helper_main};
pub use stubs::MountPointStubs;
pub(crate) use stubs::is_directory_in;

/// The name of the helper binary that [`Sandbox::locate`] looks for.
pub const HELPER_NAME: &str = "hoist-sandbox";

/// The hostname inside the sandbox, as BuildKit sets it.
const HOSTNAME: &str = "buildkitsandbox";

/// The `hosts` file given to steps when the builder has none.
const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// A failure to run a command in the sandbox. A command that runs and
/// exits non-zero is not a failure here: the caller gets its status.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The helper binary was not found.
    #[error("sandbox helper {HELPER_NAME} not found next to {executable}")]
    HelperNotFound {
        /// The running executable, whose directory was searched.
        executable: PathBuf,
    },
    /// The mount point stubs could not be created in the root.
    #[error("failed to prepare mount points in {root}")]
    Stubs {
        /// The stage root.
        root: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The builder's network files could not be copied for the step.
    #[error("failed to copy {path} into the sandbox's scratch directory")]
    NetworkFile {
        /// The file copied.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `unshare` could not be started or waited for.
    #[error("failed to run {program}")]
    Spawn {
        /// The program started.
        program: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The network of a RUN step (`RUN --network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The builder's network, as BuildKit's default.
    #[default]
    Default,
    /// No network: an empty network namespace with only a loopback device,
    /// which is down.
    None,
    /// The builder's network.
    Host,
}

/// A file written to `/dev/pipes/<name>` inside the sandbox before the
/// command starts, for heredoc scripts that run as programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipe {
    /// The file name.
    pub name: String,
    /// The contents.
    pub content: String,
}

/// A `RUN --mount` as the helper makes it, before it enters the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMount {
    /// The mount point, relative to the root. It is resolved inside the
    /// root, so `..` and symlinks cannot lead out of it.
    pub target: PathBuf,
    /// The mounted source.
    pub source: StepMountSource,
    /// Whether the mount is read-only.
    pub readonly: bool,
}

/// The source of a [`StepMount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepMountSource {
    /// An empty tmpfs, limited to `size` bytes when given.
    Tmpfs {
        /// The size limit in bytes.
        size: Option<u64>,
    },
    /// `path` inside the directory `tree`, resolved without leaving `tree`.
    /// With `scratch`, a directory is mounted through an overlay whose
    /// upper and work directories are in `scratch`, so writes reach neither
    /// the source nor the layer.
    Tree {
        /// The directory the path is resolved in, such as the context.
        tree: PathBuf,
        /// The path inside `tree`.
        path: PathBuf,
        /// The directory for discarded writes.
        scratch: Option<PathBuf>,
    },
}

/// The helper's input, passed as JSON in its only argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxSpec {
    pub(crate) root: PathBuf,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) identity: Identity,
    pub(crate) hostname: String,
    pub(crate) resolv_conf: PathBuf,
    pub(crate) hosts: PathBuf,
    pub(crate) pipes: Vec<Pipe>,
    pub(crate) mounts: Vec<StepMount>,
    /// Environment variables read from files by the helper, so that their
    /// values never appear in a command line.
    pub(crate) file_env: Vec<(String, PathBuf)>,
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The stage root, which becomes `/`.
    pub root: PathBuf,
    /// A directory outside the root for the step's private files.
    pub scratch: PathBuf,
    /// The command and its arguments. A program without `/` is looked up
    /// in the `PATH` of `env`, inside the root.
    pub argv: Vec<String>,
    /// The environment, as `NAME=value` strings.
    pub env: Vec<String>,
    /// The working directory inside the root; created when missing.
    pub cwd: String,
    /// The user and groups to run as.
    pub identity: Identity,
    /// The network.
    pub network: Network,
    /// Files for `/dev/pipes`.
    pub pipes: Vec<Pipe>,
    /// The `RUN --mount`s, in order.
    pub mounts: Vec<StepMount>,
    /// Environment variables whose values the helper reads from host
    /// files, such as secrets, as `(name, file)`.
    pub file_env: Vec<(String, PathBuf)>,
}

/// Runs commands in stage roots through the sandbox helper.
#[derive(Debug, Clone)]
pub struct Sandbox {
    helper: PathBuf,
    unshare: PathBuf,
}

impl Sandbox {
    /// Creates a sandbox that runs `helper` (a binary that calls
    /// [`helper_main`]).
    pub fn new(helper: PathBuf) -> Self {
        Self {
            helper,
            unshare: PathBuf::from("unshare"),
        }
    }

    /// Finds `hoist-sandbox` in the directory of the running executable or
    /// its parent (where Cargo puts binaries when a test runs from
    /// `target/*/deps`).
    pub fn locate() -> Result<Self, SandboxError> {
        let executable = std::env::current_exe().unwrap_or_default();
        let found = executable
            .ancestors()
            .skip(1)
            .take(2)
            .map(|directory| directory.join(HELPER_NAME))
            .find(|candidate| candidate.is_file());
        match found {
            Some(helper) => Ok(Self::new(helper)),
            None => Err(SandboxError::HelperNotFound { executable }),
        }
    }

    /// Runs `request` and passes each line of its combined stdout and
    /// stderr to `on_line` as it arrives. Returns the exit status of the
    /// command, or [`SETUP_FAILED`] when the helper could not set up.
    pub fn run(
        &self,
        request: &RunRequest,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<ExitStatus, SandboxError> {
        let targets: Vec<(PathBuf, bool)> = request
            .mounts
            .iter()
            .map(|mount| (mount.target.clone(), mount.mounts_directory()))
            .collect();
        let stubs = MountPointStubs::create_with(&request.root, &targets).map_err(|source| {
            SandboxError::Stubs {
                root: request.root.clone(),
                source,
            }
        })?;
        let spec = self.spec(request)?;
        let status = self.spawn_and_stream(request, &spec, on_line);
        drop(stubs);
        status
    }

    fn spec(&self, request: &RunRequest) -> Result<SandboxSpec, SandboxError> {
        let resolv_conf = copy_network_file(
            Path::new("/etc/resolv.conf"),
            &request.scratch.join("resolv.conf"),
            "",
        )?;
        let hosts = copy_network_file(
            Path::new("/etc/hosts"),
            &request.scratch.join("hosts"),
            DEFAULT_HOSTS,
        )?;
        Ok(SandboxSpec {
            root: request.root.clone(),
            argv: request.argv.clone(),
            env: request.env.clone(),
            cwd: request.cwd.clone(),
            identity: request.identity.clone(),
            hostname: HOSTNAME.to_owned(),
            resolv_conf,
            hosts,
            pipes: request.pipes.clone(),
            mounts: request.mounts.clone(),
            file_env: request.file_env.clone(),
        })
    }

    fn spawn_and_stream(
        &self,
        request: &RunRequest,
        spec: &SandboxSpec,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<ExitStatus, SandboxError> {
        let spawn_error = |source| SandboxError::Spawn {
            program: self.unshare.clone(),
            source,
        };
        let json = serde_json::to_string(spec).map_err(|error| spawn_error(error.into()))?;
        let (reader, writer) = io::pipe().map_err(spawn_error)?;
        let mut command = Command::new(&self.unshare);
        command.args(unshare_args(request.network));
        // TODO: pass the spec through a pipe. As one argument it must fit in
        // MAX_ARG_STRLEN (32 pages), which a large ENV exceeds with E2BIG.
        command
            .arg("--")
            .arg(&self.helper)
            .arg(json)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(writer.try_clone().map_err(spawn_error)?)
            .stderr(writer);
        let mut child = command.spawn().map_err(spawn_error)?;
        let _registered = crate::cleanup::ChildGuard::register(child.id());
        // The command's end of the pipe must be closed here, so that the
        // reader sees the end of the output when the sandbox exits.
        drop(command);

        let streamed = stream_lines(reader, on_line);
        let status = child.wait().map_err(spawn_error)?;
        streamed.map_err(spawn_error)?;
        Ok(status)
    }
}

impl StepMount {
    /// Tells whether the mount point is a directory: every mount but one of
    /// a file that is not a directory.
    fn mounts_directory(&self) -> bool {
        match &self.source {
            StepMountSource::Tmpfs { .. } => true,
            StepMountSource::Tree { tree, path, .. } => is_directory_in(tree, path),
        }
    }
}

/// Returns the `unshare(1)` options: new namespaces, the helper forked as
/// PID 1 and killed when `unshare` dies, and private mount propagation.
fn unshare_args(network: Network) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--mount",
        "--uts",
        "--ipc",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    if network == Network::None {
        args.push("--net".into());
    }
    args
}

/// Copies the builder's `source` to `copy`, so that a step reads the
/// builder's file but cannot change it. Writes `fallback` when the builder
/// has no such file.
fn copy_network_file(source: &Path, copy: &Path, fallback: &str) -> Result<PathBuf, SandboxError> {
    let copy_error = |source_error| SandboxError::NetworkFile {
        path: source.to_path_buf(),
        source: source_error,
    };
    let content = match std::fs::read(source) {
        Ok(content) => content,
        Err(error) if error.kind() == io::ErrorKind::NotFound => fallback.as_bytes().to_vec(),
        Err(error) => return Err(copy_error(error)),
    };
    std::fs::write(copy, content).map_err(copy_error)?;
    Ok(copy.to_path_buf())
}

/// Reads `reader` to its end and passes each line, without its line end,
/// to `on_line`. Invalid UTF-8 is replaced, so any output is shown.
fn stream_lines(reader: io::PipeReader, on_line: &mut dyn FnMut(&str)) -> io::Result<()> {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        on_line(text.trim_end_matches(['\n', '\r']));
    }
}
