//! The RUN sandbox against a copy of the testkit's busybox root filesystem.

use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_build::sandbox::{Network, Pipe, RunRequest, Sandbox};
use hoist_build::user::{Identity, resolve_user};
use hoist_testkit::{BaseImage, base_image};

/// A busybox root and a scratch directory, side by side in one temporary
/// directory, so a test can check that nothing appears next to the root.
struct Stage {
    dir: tempfile::TempDir,
}

impl Stage {
    fn new() -> Self {
        let files = base_image(BaseImage::Busybox).expect("busybox base image");
        let dir = tempfile::Builder::new()
            .prefix("hoist-build-sandbox-")
            .tempdir_in("/var/tmp")
            .expect("temporary directory");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&files.rootfs)
            .arg(dir.path().join("root"))
            .status()
            .expect("run cp");
        assert!(status.success(), "cp -a of the busybox root failed");
        std::fs::create_dir(dir.path().join("scratch")).expect("create scratch");
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn request(&self, script: &str) -> RunRequest {
        RunRequest {
            root: self.root(),
            scratch: self.dir.path().join("scratch"),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cwd: "/".into(),
            identity: Identity::root(),
            network: Network::Default,
            pipes: Vec::new(),
            mounts: Vec::new(),
            file_env: Vec::new(),
        }
    }

    /// Entries of the temporary directory, which must stay `root` and
    /// `scratch`.
    fn siblings(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read temporary directory")
            .map(|entry| {
                entry
                    .expect("directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

fn sandbox() -> Sandbox {
    Sandbox::new(PathBuf::from(env!("CARGO_BIN_EXE_hoist-sandbox")))
}

/// Runs `request` and returns its exit code and output lines.
fn run(request: &RunRequest) -> (Option<i32>, Vec<String>) {
    let mut lines = Vec::new();
    let status = sandbox()
        .run(request, &mut |line| lines.push(line.to_owned()))
        .expect("run in sandbox");
    (status.code(), lines)
}

fn listing(root: &Path, relative: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(relative))
        .expect("read directory")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn output_streams_line_by_line() {
    let stage = Stage::new();
    let (code, lines) = run(&stage.request("echo one; echo two >&2; printf three"));
    assert_eq!(code, Some(0));
    assert_eq!(lines, ["one", "two", "three"]);
}

#[test]
fn exit_code_is_returned() {
    let stage = Stage::new();
    let (code, _) = run(&stage.request("exit 3"));
    assert_eq!(code, Some(3));
}

#[test]
fn command_is_pid_one_with_hostname() {
    let stage = Stage::new();
    let script = "echo $$; hostname; ls /proc > /tmp/pids; grep -c '^[0-9]' /tmp/pids";
    let (code, lines) = run(&stage.request(script));
    assert_eq!(code, Some(0));
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "buildkitsandbox");
    assert_eq!(lines[2], "2", "only sh and ls are visible: {lines:?}");
}

#[test]
fn environment_is_exactly_the_request() {
    let stage = Stage::new();
    let mut request = stage.request("env | sort");
    request.env.push("GREETING=hello world".into());
    let (code, lines) = run(&request);
    assert_eq!(code, Some(0));
    assert!(
        lines.contains(&"GREETING=hello world".to_owned()),
        "{lines:?}"
    );
    let names: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    for name in &names {
        assert!(
            ["GREETING", "PATH", "PWD", "SHLVL"].contains(name),
            "unexpected variable {name}: {lines:?}"
        );
    }
}

#[test]
fn exec_form_finds_program_in_image_path() {
    let stage = Stage::new();
    let mut request = stage.request("");
    request.argv = vec!["basename".into(), "/a/b".into()];
    let (code, lines) = run(&request);
    assert_eq!(code, Some(0));
    assert_eq!(lines, ["b"]);
}

#[test]
fn missing_program_exits_127() {
    let stage = Stage::new();
    let mut request = stage.request("");
    request.argv = vec!["no-such-program".into()];
    let (code, lines) = run(&request);
    assert_eq!(code, Some(127));
    assert!(lines[0].contains("no-such-program"), "{lines:?}");
}

#[test]
fn working_directory_is_created_and_entered() {
    let stage = Stage::new();
    let mut request = stage.request("pwd");
    request.cwd = "/work/dir".into();
    let (code, lines) = run(&request);
    assert_eq!(code, Some(0));
    assert_eq!(lines, ["/work/dir"]);
    assert!(stage.root().join("work/dir").is_dir());
}

#[test]
fn user_and_groups_come_from_image() {
    let stage = Stage::new();
    let root = stage.root();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .expect("write passwd");
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\naudio:x:29:app\n",
    )
    .expect("write group");
    let mut request = stage.request("id -u; id -g; id -G; touch /tmp/made-by-app");
    request.identity = resolve_user(&root, "app").expect("resolve app");
    let (code, lines) = run(&request);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(lines, ["1000", "1000", "1000 29"]);
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(root.join("tmp/made-by-app")).expect("stat file"),
    );
    assert_eq!(owner, 1000);
}

#[test]
fn minimal_dev_is_mounted() {
    let stage = Stage::new();
    let script = "ls /dev; head -c 4 /dev/zero | wc -c; echo x > /dev/null; \
                  test -d /dev/pts && test -d /dev/shm && echo dirs";
    let (code, lines) = run(&stage.request(script));
    assert_eq!(code, Some(0), "{lines:?}");
    for name in [
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ] {
        assert!(
            lines.contains(&name.to_owned()),
            "/dev lacks {name}: {lines:?}"
        );
    }
    assert!(lines.contains(&"4".to_owned()), "{lines:?}");
    assert!(lines.contains(&"dirs".to_owned()), "{lines:?}");
    assert!(listing(&stage.root(), "dev").is_empty());
}

#[test]
fn network_files_stay_out_of_root() {
    let stage = Stage::new();
    let (code, lines) = run(&stage.request("cat /etc/hosts; echo x >> /etc/hosts"));
    assert_ne!(
        code,
        Some(0),
        "the bound hosts file is read-only: {lines:?}"
    );
    assert!(
        lines.iter().any(|line| line.contains("localhost")),
        "{lines:?}"
    );
    assert_eq!(listing(&stage.root(), "etc"), ["group", "passwd"]);
}

#[test]
fn network_none_has_no_interfaces_up() {
    let stage = Stage::new();
    let mut request = stage.request("cat /proc/net/dev | tail -n +3 | cut -d: -f1");
    request.network = Network::None;
    let (code, lines) = run(&request);
    assert_eq!(code, Some(0), "{lines:?}");
    let interfaces: Vec<&str> = lines.iter().map(|line| line.trim()).collect();
    assert_eq!(interfaces, ["lo"]);
}

#[test]
fn heredoc_pipe_runs_as_program() {
    let stage = Stage::new();
    let mut request = stage.request("");
    request.argv = vec!["/dev/pipes/EOF".into()];
    request.pipes = vec![Pipe {
        name: "EOF".into(),
        content: "#!/bin/sh\necho from script\n".into(),
    }];
    let (code, lines) = run(&request);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(lines, ["from script"]);
}

#[test]
fn escapes_change_nothing_outside_root() {
    let stage = Stage::new();
    let script = "echo proc > /proc/1/root/../../escaped-proc; \
                  cd /../../..; echo dotdot > escaped-dotdot; \
                  mkdir -p /mnt/m; mount -t tmpfs none /mnt/m && echo mounted; \
                  mount --bind / /mnt/m && echo bound; \
                  mknod /tmp/disk b 253 0 && echo made-node; \
                  echo done";
    let (code, lines) = run(&stage.request(script));
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(lines.contains(&"done".to_owned()), "{lines:?}");
    for forbidden in ["mounted", "bound", "made-node"] {
        assert!(
            !lines.contains(&forbidden.to_owned()),
            "{forbidden}: {lines:?}"
        );
    }
    assert_eq!(stage.siblings(), ["root", "scratch"]);
    assert!(stage.root().join("escaped-proc").is_file());
    assert!(stage.root().join("escaped-dotdot").is_file());
    assert!(!stage.root().join("tmp/disk").exists());
}

#[test]
fn dotdot_walk_ends_at_stage_root() {
    let stage = Stage::new();
    let script = "cd /../../../../..; ls -a | sort | tr '\\n' ' '";
    let (code, lines) = run(&stage.request(script));
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines[0].contains("linuxrc"),
        "walked out of the root: {lines:?}"
    );
    assert!(
        !lines[0].contains("scratch"),
        "walked out of the root: {lines:?}"
    );
}

mod run_instruction {
    use super::*;
    use hoist_build::run::{RunContext, RunError, RunErrorKind, run_instruction};
    use hoist_dockerfile::instructions::{InstructionKind, RunInstruction, instructions};
    use hoist_dockerfile::parser::parse;

    fn context(stage: &Stage, line: usize) -> RunContext {
        RunContext {
            file: "Dockerfile".into(),
            line,
            step: "[1/1]".into(),
            root: stage.root(),
            scratch: stage.dir.path().join("scratch"),
            shell: vec!["/bin/sh".into(), "-c".into()],
            env: vec!["PATH=/bin:/usr/bin".into()],
            args: Vec::new(),
            user: String::new(),
            workdir: String::new(),
            mounts: Vec::new(),
            file_env: Vec::new(),
        }
    }

    /// Parses `dockerfile` and returns its first RUN instruction with its line.
    fn first_run(dockerfile: &str) -> (usize, RunInstruction) {
        let parsed = parse(dockerfile, "Dockerfile").expect("parse");
        instructions(&parsed)
            .expect("typed instructions")
            .into_iter()
            .find_map(|instruction| match instruction.kind {
                InstructionKind::Run(run) => Some((instruction.start_line, run)),
                _ => None,
            })
            .expect("a RUN instruction")
    }

    fn run_dockerfile(stage: &Stage, dockerfile: &str) -> Result<(), RunError> {
        let (line, run) = first_run(dockerfile);
        run_instruction(&sandbox(), &context(stage, line), &run)
    }

    #[test]
    fn failing_run_names_line_and_code() {
        let stage = Stage::new();
        let error = run_dockerfile(&stage, "FROM busybox\n\nRUN echo hi && exit 7\n")
            .expect_err("non-zero exit");
        assert_eq!(error.line, 3);
        assert!(matches!(error.kind, RunErrorKind::Failed { code: 7, .. }));
        assert_eq!(
            error.to_string(),
            "Dockerfile:3: RUN echo hi && exit 7 failed with exit code 7"
        );
    }

    #[test]
    fn lone_heredoc_runs_as_script() {
        let stage = Stage::new();
        let dockerfile = "FROM busybox\nRUN <<EOF\necho one > /one\necho two > /two\nEOF\n";
        run_dockerfile(&stage, dockerfile).expect("heredoc RUN");
        let one = std::fs::read_to_string(stage.root().join("one")).expect("read /one");
        assert_eq!(one, "one\n");
        assert!(stage.root().join("two").is_file());
    }

    #[test]
    fn heredoc_feeds_command_stdin() {
        let stage = Stage::new();
        let dockerfile = "FROM busybox\nRUN cat > /greeting <<EOF\nhello\nEOF\n";
        run_dockerfile(&stage, dockerfile).expect("heredoc RUN");
        let greeting = std::fs::read_to_string(stage.root().join("greeting")).expect("read");
        assert_eq!(greeting, "hello\n");
    }

    #[test]
    fn ssh_mount_is_an_error() {
        let stage = Stage::new();
        let dockerfile = "FROM busybox\nRUN --mount=type=ssh touch /made\n";
        let error = run_dockerfile(&stage, dockerfile).expect_err("ssh mount is not implemented");
        assert_eq!(error.line, 2);
        assert!(
            matches!(error.kind, RunErrorKind::MountNotImplemented { ref mount_type } if mount_type == "ssh"),
            "{error}"
        );
        assert!(!stage.root().join("made").exists());
    }

    #[test]
    fn unknown_user_is_an_error() {
        let stage = Stage::new();
        let (line, run) = first_run("FROM busybox\nUSER ghost\nRUN true\n");
        let mut context = context(&stage, line);
        context.user = "ghost".into();
        let error = run_instruction(&sandbox(), &context, &run).expect_err("unknown user");
        assert_eq!(error.line, 3);
        assert!(error.to_string().contains("\"ghost\""), "{error}");
    }

    #[test]
    fn args_and_env_reach_command() {
        let stage = Stage::new();
        let (line, run) = first_run("FROM busybox\nRUN echo \"$NAME $VERSION $HOME\" > /out\n");
        let mut context = context(&stage, line);
        context.env.push("NAME=env".into());
        context.args = vec![
            ("NAME".into(), "arg".into()),
            ("VERSION".into(), "2".into()),
        ];
        run_instruction(&sandbox(), &context, &run).expect("RUN");
        let out = std::fs::read_to_string(stage.root().join("out")).expect("read /out");
        assert_eq!(out, "env 2 /root\n");
    }

    #[test]
    fn oversized_environment_names_e2big() {
        let stage = Stage::new();
        let (line, run) = first_run("FROM busybox\nRUN true\n");
        let mut context = context(&stage, line);
        for name in ["FIRST", "SECOND"] {
            context
                .env
                .push(format!("{name}={}", "x".repeat(80 * 1024)));
        }
        let error = run_instruction(&sandbox(), &context, &run).expect_err("E2BIG");
        assert_eq!(error.line, 2);
        assert!(
            matches!(error.kind, RunErrorKind::TooLong { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with("Dockerfile:2: RUN true: argument list or environment too long"),
            "{message}"
        );
    }

    #[test]
    fn sandbox_setup_failure_is_reported() {
        let stage = Stage::new();
        std::fs::remove_dir(stage.root().join("proc")).expect("remove /proc");
        std::os::unix::fs::symlink("/missing", stage.root().join("proc")).expect("symlink");
        let error = run_dockerfile(&stage, "FROM busybox\nRUN true\n").expect_err("no /proc");
        assert!(matches!(error.kind, RunErrorKind::Setup { .. }), "{error}");
        assert!(error.to_string().contains("/proc"), "{error}");
    }
}
