//! The RUN instruction: its command line, environment and user, run in the
//! [`sandbox`](crate::sandbox), with its output logged line by line.

use std::path::PathBuf;

use hoist_dockerfile::instructions::{CommandLine, MountType, RunInstruction};
use hoist_dockerfile::parser::Heredoc;

use crate::sandbox::{Network, Pipe, RunRequest, SETUP_FAILED, Sandbox, SandboxError, StepMount};
use crate::user::{Identity, UserError, resolve_user};

/// `PATH` when the image sets none, as Docker and BuildKit use.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A failed RUN step, with the Dockerfile line it comes from.
///
/// Its message is `FILE:LINE: ` and the kind's message, and its source is the
/// kind's source, so that each cause appears once in a chain.
#[derive(Debug)]
pub struct RunError {
    /// The Dockerfile name.
    pub file: String,
    /// 1-based line of the RUN instruction.
    pub line: usize,
    /// The kind of failure.
    pub kind: RunErrorKind,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}:{}: {}", self.file, self.line, self.kind)
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// The kinds of [`RunError`].
#[derive(Debug, thiserror::Error)]
pub enum RunErrorKind {
    /// The command exited with a non-zero status.
    #[error("RUN {command} failed with exit code {code}")]
    Failed {
        /// The command as written.
        command: String,
        /// The exit code.
        code: i32,
    },
    /// The command was killed by a signal.
    #[error("RUN {command} was killed by signal {signal}")]
    Killed {
        /// The command as written.
        command: String,
        /// The signal number.
        signal: i32,
    },
    /// The sandbox helper could not set up the step. The reason is the
    /// helper's last output line.
    #[error("RUN {command}: the sandbox could not be set up: {reason}")]
    Setup {
        /// The command as written.
        command: String,
        /// The last line the helper wrote.
        reason: String,
    },
    /// The command line and environment do not fit in one argument of the
    /// sandbox's command line (E2BIG).
    #[error(
        "RUN {command}: argument list or environment too long: the sandbox receives the \
         command, its environment and mounts as one argument, which Linux limits to 128 KiB with 4 KiB pages"
    )]
    TooLong {
        /// The command as written.
        command: String,
    },
    /// A `RUN --mount` type that hoist does not implement yet.
    #[error("RUN --mount=type={mount_type} is not implemented yet")]
    MountNotImplemented {
        /// The mount type.
        mount_type: String,
    },
    /// `RUN --security=insecure`, which needs an entitlement that hoist
    /// does not grant.
    #[error("RUN --security=insecure is not allowed: hoist grants no entitlements")]
    InsecureNotAllowed,
    /// The `USER` of the step could not be resolved.
    #[error(transparent)]
    User(#[from] UserError),
    /// The sandbox could not be started.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// The state of the stage that a RUN step runs in.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The Dockerfile name, for errors.
    pub file: String,
    /// 1-based line of the instruction, for errors.
    pub line: usize,
    /// The prefix of every logged output line, such as `[build 2/5]`.
    pub step: String,
    /// The stage root.
    pub root: PathBuf,
    /// A directory outside the root for the step's private files.
    pub scratch: PathBuf,
    /// `SHELL`, `["/bin/sh", "-c"]` by default.
    pub shell: Vec<String>,
    /// The image's `ENV`, as `NAME=value`.
    pub env: Vec<String>,
    /// The build args in scope that have a value, as `(name, value)`. They
    /// reach the command's environment but never the image config.
    pub args: Vec<(String, String)>,
    /// `USER`, empty for root.
    pub user: String,
    /// `WORKDIR`, empty for `/`.
    pub workdir: String,
    /// The step's `--mount`s, prepared by [`crate::run_mounts`].
    pub mounts: Vec<StepMount>,
    /// Variables read from files, such as secrets, as `(name, file)`.
    pub file_env: Vec<(String, PathBuf)>,
}

/// Runs one RUN instruction in the sandbox, logging each output line at
/// `info` level with the step's prefix.
pub fn run_instruction(
    sandbox: &Sandbox,
    context: &RunContext,
    run: &RunInstruction,
) -> Result<(), RunError> {
    let error = |kind| RunError {
        file: context.file.clone(),
        line: context.line,
        kind,
    };
    check_flags(run).map_err(error)?;
    let identity = identity(context).map_err(|source| error(source.into()))?;
    let (argv, pipes) = command_argv(&context.shell, &run.command, &run.heredocs);
    let request = RunRequest {
        root: context.root.clone(),
        scratch: context.scratch.clone(),
        argv,
        env: environment(&context.env, &context.args, &identity),
        cwd: working_directory(&context.workdir),
        network: network(run),
        identity,
        pipes,
        mounts: context.mounts.clone(),
        file_env: context.file_env.clone(),
    };

    let mut last_line = String::new();
    let status = sandbox
        .run(&request, &mut |line| {
            tracing::info!(step = %context.step, "{line}");
            line.clone_into(&mut last_line);
        })
        .map_err(|source| error(sandbox_failure(source, &run.command)))?;
    let command = command_text(&run.command);
    match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(0), _) => Ok(()),
        (Some(SETUP_FAILED), _) if last_line.starts_with("hoist-sandbox:") => {
            Err(error(RunErrorKind::Setup {
                command,
                reason: last_line,
            }))
        }
        (Some(code), _) => Err(error(RunErrorKind::Failed { command, code })),
        (None, Some(signal)) => Err(error(RunErrorKind::Killed { command, signal })),
        (None, None) => Err(error(RunErrorKind::Killed { command, signal: 0 })),
    }
}

/// Maps a failure to start the sandbox to its kind, naming E2BIG, which the
/// spawn error alone reports as "Argument list too long".
fn sandbox_failure(error: SandboxError, command: &CommandLine) -> RunErrorKind {
    match &error {
        SandboxError::Spawn { source, .. }
            if source.kind() == std::io::ErrorKind::ArgumentListTooLong =>
        {
            RunErrorKind::TooLong {
                command: command_text(command),
            }
        }
        _ => error.into(),
    }
}

fn check_flags(run: &RunInstruction) -> Result<(), RunErrorKind> {
    // TODO: ssh mounts, which need an agent socket from the settings. A
    // step run without its mount would build something other than the
    // Dockerfile describes, so they are an error until then.
    if let Some(mount) = run
        .mounts
        .iter()
        .find(|mount| mount.mount_type == MountType::Ssh)
    {
        let mount_type = serde_json::to_value(mount.mount_type)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(RunErrorKind::MountNotImplemented { mount_type });
    }
    if run.security.as_deref() == Some("insecure") {
        return Err(RunErrorKind::InsecureNotAllowed);
    }
    Ok(())
}

fn identity(context: &RunContext) -> Result<Identity, UserError> {
    let user = if context.user.is_empty() {
        "0"
    } else {
        &context.user
    };
    resolve_user(&context.root, user)
}

fn network(run: &RunInstruction) -> Network {
    match run.network.as_deref() {
        Some("none") => Network::None,
        Some("host") => Network::Host,
        _ => Network::Default,
    }
}

fn working_directory(workdir: &str) -> String {
    if workdir.is_empty() {
        "/".to_owned()
    } else {
        workdir.to_owned()
    }
}

/// Builds the environment: the image's `ENV`, then the build args that
/// `ENV` does not set, then `PATH` and `HOME` when neither sets them.
pub fn environment(env: &[String], args: &[(String, String)], identity: &Identity) -> Vec<String> {
    let mut variables: Vec<String> = env.to_vec();
    let is_set = |variables: &[String], name: &str| {
        variables.iter().any(|variable| {
            variable
                .split_once('=')
                .map_or(variable.as_str(), |(n, _)| n)
                == name
        })
    };
    for (name, value) in args {
        if !is_set(&variables, name) {
            variables.push(format!("{name}={value}"));
        }
    }
    if !is_set(&variables, "PATH") {
        variables.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !is_set(&variables, "HOME") {
        variables.push(format!("HOME={}", identity.home));
    }
    variables
}

/// Builds the argument vector of a RUN command and the heredoc files it
/// runs, as BuildKit does:
///
/// - exec form runs as written;
/// - shell form runs as `SHELL` plus the command;
/// - a command that is only one heredoc runs its body: as a program from
///   `/dev/pipes/<name>` when it starts with `#!`, else as the shell's
///   command string;
/// - any other command with heredocs runs as one shell command string that
///   contains the heredocs, so the shell feeds them to the command.
pub fn command_argv(
    shell: &[String],
    command: &CommandLine,
    heredocs: &[Heredoc],
) -> (Vec<String>, Vec<Pipe>) {
    let text = match command {
        CommandLine::Exec(argv) => return (argv.clone(), Vec::new()),
        CommandLine::Shell(text) => text,
    };
    let with_shell = |script: String| {
        let mut argv = shell.to_vec();
        argv.push(script);
        argv
    };
    match heredocs {
        [] => (with_shell(text.clone()), Vec::new()),
        [heredoc] if is_only_heredoc(text) => {
            let body = heredoc.body();
            if body.starts_with("#!") {
                let program = format!("/dev/pipes/{}", heredoc.name);
                let pipe = Pipe {
                    name: heredoc.name.clone(),
                    content: body,
                };
                (vec![program], vec![pipe])
            } else {
                // NOTE: a quoted delimiter does not stop the shell from
                // expanding variables in the body here; BuildKit's handling
                // of that case has not been compared.
                (with_shell(body), Vec::new())
            }
        }
        _ => {
            let mut script = text.clone();
            for heredoc in heredocs {
                script.push('\n');
                script.push_str(&heredoc.content);
                script.push_str(&heredoc.name);
            }
            (with_shell(script), Vec::new())
        }
    }
}

/// Tells whether a shell-form command is a single heredoc marker, such as
/// `<<EOF`, `<<-EOF` or `<<'EOF'`, and nothing else.
fn is_only_heredoc(text: &str) -> bool {
    let text = text.trim();
    text.starts_with("<<") && !text.contains(char::is_whitespace)
}

/// Formats the command for errors, as written in the Dockerfile.
fn command_text(command: &CommandLine) -> String {
    match command {
        CommandLine::Shell(text) => text.clone(),
        CommandLine::Exec(argv) => serde_json::to_string(argv).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn_error(kind: std::io::ErrorKind) -> SandboxError {
        SandboxError::Spawn {
            program: PathBuf::from("unshare"),
            source: std::io::Error::from(kind),
        }
    }

    #[test]
    fn run_error_keeps_spawn_cause() {
        let error = RunError {
            file: "Dockerfile".to_owned(),
            line: 4,
            kind: spawn_error(std::io::ErrorKind::NotFound).into(),
        };
        assert_eq!(error.to_string(), "Dockerfile:4: failed to run unshare");
        let cause = std::error::Error::source(&error).expect("the spawn error");
        assert_eq!(cause.to_string(), "entity not found");
    }

    #[test]
    fn e2big_spawn_is_too_long() {
        let command = CommandLine::Shell("true".to_owned());
        let kind = sandbox_failure(
            spawn_error(std::io::ErrorKind::ArgumentListTooLong),
            &command,
        );
        assert!(matches!(kind, RunErrorKind::TooLong { ref command } if command == "true"));
        let kind = sandbox_failure(spawn_error(std::io::ErrorKind::NotFound), &command);
        assert!(matches!(kind, RunErrorKind::Sandbox(_)), "{kind}");
    }

    fn shell() -> Vec<String> {
        vec!["/bin/sh".to_owned(), "-c".to_owned()]
    }

    fn heredoc(name: &str, content: &str, chomp: bool) -> Heredoc {
        Heredoc {
            name: name.to_owned(),
            file_descriptor: 0,
            expand: true,
            chomp,
            content: content.to_owned(),
        }
    }

    #[test]
    fn shell_form_runs_through_shell() {
        let (argv, pipes) = command_argv(&shell(), &CommandLine::Shell("echo hi".into()), &[]);
        assert_eq!(argv, ["/bin/sh", "-c", "echo hi"]);
        assert!(pipes.is_empty());
    }

    #[test]
    fn exec_form_runs_as_written() {
        let command = CommandLine::Exec(vec!["echo".into(), "a b".into()]);
        let (argv, _) = command_argv(&shell(), &command, &[]);
        assert_eq!(argv, ["echo", "a b"]);
    }

    #[test]
    fn lone_heredoc_body_is_the_script() {
        let doc = heredoc("EOF", "\techo one\n\techo two\n", true);
        let (argv, pipes) = command_argv(&shell(), &CommandLine::Shell("<<-EOF".into()), &[doc]);
        assert_eq!(argv, ["/bin/sh", "-c", "echo one\necho two\n"]);
        assert!(pipes.is_empty());
    }

    #[test]
    fn shebang_heredoc_runs_as_program() {
        let doc = heredoc("SCRIPT", "#!/usr/bin/env python3\nprint(1)\n", false);
        let (argv, pipes) = command_argv(&shell(), &CommandLine::Shell("<<SCRIPT".into()), &[doc]);
        assert_eq!(argv, ["/dev/pipes/SCRIPT"]);
        assert_eq!(pipes[0].name, "SCRIPT");
        assert_eq!(pipes[0].content, "#!/usr/bin/env python3\nprint(1)\n");
    }

    #[test]
    fn heredoc_with_command_goes_to_shell() {
        let doc = heredoc("EOF", "print(1)\n", false);
        let command = CommandLine::Shell("python3 <<EOF".into());
        let (argv, _) = command_argv(&shell(), &command, &[doc]);
        assert_eq!(argv, ["/bin/sh", "-c", "python3 <<EOF\nprint(1)\nEOF"]);
    }

    #[test]
    fn env_wins_over_args() {
        let env = vec!["NAME=from-env".to_owned()];
        let args = vec![
            ("NAME".to_owned(), "from-arg".to_owned()),
            ("VERSION".to_owned(), "1".to_owned()),
        ];
        let variables = environment(&env, &args, &Identity::root());
        assert_eq!(
            variables,
            [
                "NAME=from-env",
                "VERSION=1",
                &format!("PATH={DEFAULT_PATH}"),
                "HOME=/root"
            ]
        );
    }

    #[test]
    fn image_path_and_home_are_kept() {
        let env = vec!["PATH=/bin".to_owned(), "HOME=/data".to_owned()];
        let variables = environment(&env, &[], &Identity::root());
        assert_eq!(variables, ["PATH=/bin", "HOME=/data"]);
    }
}
