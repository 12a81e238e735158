//! Running external tools and stopping the long-running ones.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::error::{Error, Result};

/// How many bytes of a tool's standard error or log an error message keeps.
const TAIL_BYTES: usize = 3000;

/// Runs `command` to completion and returns its output, or an error with the
/// tail of its standard error when it fails.
pub(crate) fn run(command: &mut Command) -> Result<Output> {
    let description = describe(command);
    tracing::debug!(command = %description, "running");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: program_name(command),
            source,
        })?;
    if output.status.success() {
        return Ok(output);
    }
    Err(Error::CommandFailed {
        command: description,
        status: output.status,
        stderr_tail: tail(&String::from_utf8_lossy(&output.stderr)),
    })
}

/// Runs `command` with `input` on its standard input, as [`run`] does otherwise.
///
/// Used to hand passwords to tools without putting them on a command line.
pub(crate) fn run_with_input(command: &mut Command, input: &[u8]) -> Result<Output> {
    use std::io::Write;

    let description = describe(command);
    let program = program_name(command);
    let spawn_error = |source| Error::Spawn { program, source };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(crate::error::io_error(
            "write standard input of",
            &description,
        ))?;
    }
    let output = child
        .wait_with_output()
        .map_err(crate::error::io_error("wait for", &description))?;
    if output.status.success() {
        return Ok(output);
    }
    Err(Error::CommandFailed {
        command: description,
        status: output.status,
        stderr_tail: tail(&String::from_utf8_lossy(&output.stderr)),
    })
}

/// Returns the last [`TAIL_BYTES`] bytes of `text`, cut at a line start.
pub(crate) fn tail(text: &str) -> String {
    if text.len() <= TAIL_BYTES {
        return text.trim_end().to_owned();
    }
    let mut start = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    let from_line = cut.find('\n').map_or(cut, |newline| &cut[newline + 1..]);
    from_line.trim_end().to_owned()
}

/// Returns the tail of the file at `path`, or a note that it could not be read.
pub(crate) fn file_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes)),
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

fn program_name(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

/// Formats a command line for messages. Callers never put secrets into
/// arguments: passwords go through standard input or files.
fn describe(command: &Command) -> String {
    let mut words = vec![program_name(command)];
    words.extend(
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned()),
    );
    words.join(" ")
}

/// A request to the spawner thread: the command and where to send the result.
type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Starts `program` with `args` so that the kernel kills it when this test
/// process ends, even by SIGKILL, where no destructor runs.
///
/// `setpriv --pdeathsig KILL` arms the parent-death signal before it execs
/// the program. That signal fires when the *thread* that forked the child
/// exits, and the test harness runs every test on a thread of its own, so the
/// fork happens on one spawner thread that lives as long as the process.
pub(crate) fn spawn_tied_to_process(
    program: &str,
    args: &[&OsStr],
    configure: impl FnOnce(&mut Command),
) -> Result<Child> {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--", program]);
    command.args(args);
    configure(&mut command);

    let (reply_to, reply) = mpsc::channel();
    let sent = spawner()
        .lock()
        .map_err(|_| spawner_gone(program))?
        .send((command, reply_to));
    if sent.is_err() {
        return Err(spawner_gone(program));
    }
    reply
        .recv()
        .map_err(|_| spawner_gone(program))?
        .map_err(|source| Error::Spawn {
            program: format!("setpriv {program}"),
            source,
        })
}

fn spawner_gone(program: &str) -> Error {
    Error::Spawn {
        program: program.to_owned(),
        source: io::Error::other("the spawner thread has stopped"),
    }
}

fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        // The sender lives in a static and is never dropped, so `recv` blocks
        // until the process exits and the thread never ends before it.
        thread::Builder::new()
            .name("hoist-testkit-spawner".to_owned())
            .spawn(move || {
                while let Ok((mut command, reply_to)) = incoming.recv() {
                    // The requester blocks in `recv` until this reply
                    // arrives, so the send cannot fail.
                    let _ = reply_to.send(command.spawn());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|error| tracing::error!(%error, "cannot start the spawner thread"));
        Mutex::new(requests)
    })
}

/// Stops `child`: SIGTERM, then SIGKILL when it is still running after
/// `grace`, and reaps it in both cases so that no zombie remains.
pub(crate) fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = Pid::from_child(child);
    if let Err(error) = kill_process(pid, Signal::TERM) {
        tracing::warn!(pid = child.id(), %error, "SIGTERM failed");
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(error) => {
                tracing::warn!(pid = child.id(), %error, "waiting for the process failed");
                break;
            }
        }
    }
    tracing::warn!(pid = child.id(), "process ignored SIGTERM; sending SIGKILL");
    if let Err(error) = child.kill() {
        tracing::warn!(pid = child.id(), %error, "SIGKILL failed");
    }
    if let Err(error) = child.wait() {
        tracing::warn!(pid = child.id(), %error, "reaping the process failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_short_text() {
        assert_eq!(tail("a\nb\n"), "a\nb");
    }

    #[test]
    fn tail_starts_at_line_boundary() {
        let text = format!("{}\nlast line\n", "x".repeat(TAIL_BYTES * 2));
        assert_eq!(tail(&text), "last line");
    }

    #[test]
    fn run_reports_stderr_of_failure() {
        let error = run(Command::new("sh").args(["-c", "echo broken >&2; exit 3"]))
            .expect_err("exit 3 must fail");
        let message = error.to_string();
        assert!(message.contains("broken"), "{message}");
        assert!(message.contains("sh -c"), "{message}");
    }

    #[test]
    fn spawned_child_stops_on_term() {
        let mut child = spawn_tied_to_process("sleep", &[OsStr::new("30")], |_| {}).unwrap();
        let started = Instant::now();
        stop(&mut child, Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(child.try_wait().unwrap().is_some());
    }
}
