//! Running a Docker credential helper (`docker-credential-<name> get`).
//!
//! The protocol: the server URL goes to the helper's standard input, and the helper prints
//! `{"ServerURL": ..., "Username": ..., "Secret": ...}`. A user name of `<token>` marks the
//! secret as an identity token. A helper that has no credential exits non-zero with the
//! message `credentials not found in native keychain`.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::credential::{Credential, Secret};

/// The message by which docker-credential-helpers report that they hold no credential.
const NOT_FOUND_MESSAGE: &str = "credentials not found in native keychain";

/// The user name by which a helper marks its secret as an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// The maximum output read from a helper; a credential is a few kilobytes at most.
const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// The maximum length of the helper's own message kept in an error.
const MAX_MESSAGE_CHARS: usize = 200;

/// How often a running helper is polled for its exit.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Time to wait for the end of the helper's output after it exited.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// A failure of a credential helper. It never contains the helper's standard output when
/// the helper succeeded, because that output contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The helper name from the config file cannot be part of a program name.
    #[error("invalid credential helper name \"{name}\": it must be non-empty and contain no `/`")]
    InvalidName {
        /// The name as configured.
        name: String,
    },

    /// The helper program is not on `PATH`.
    #[error("credential helper {program} not found on PATH")]
    NotFound {
        /// The program name, `docker-credential-<name>`.
        program: String,
    },

    /// The helper could not be started or talked to.
    #[error("failed to run credential helper {program}")]
    Io {
        /// The program name.
        program: String,
        /// The operating system's error.
        source: io::Error,
    },

    /// The helper did not exit in time and was killed.
    #[error("credential helper {program} did not exit within {seconds} s and was killed")]
    TimedOut {
        /// The program name.
        program: String,
        /// The time limit in seconds.
        seconds: u64,
    },

    /// The helper exited with a failure status.
    #[error("credential helper {program} failed ({status}): {message}")]
    Failed {
        /// The program name.
        program: String,
        /// The exit status.
        status: ExitStatus,
        /// The first line of the helper's error output, shortened.
        message: String,
    },

    /// The helper exited successfully but its output is not the expected JSON.
    #[error(
        "credential helper {program} printed invalid output ({reason}); \
         expected JSON with the fields Username and Secret"
    )]
    InvalidOutput {
        /// The program name.
        program: String,
        /// The parse error's kind and position, without quoting the output.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperResponse {
    username: String,
    secret: String,
}

/// Runs `docker-credential-<name> get` for `server` and returns its credential, or `None`
/// when the helper reports that it has none.
///
/// The helper is looked up in `path_var` as `PATH`, or in this process's `PATH` when it is
/// `None`.
pub(crate) fn get_credential(
    name: &str,
    server: &str,
    path_var: Option<&OsStr>,
    timeout: Duration,
) -> Result<Option<Credential>, HelperError> {
    // A `/` would turn the name into a path, and run a program outside `PATH`.
    if name.is_empty() || name.contains('/') {
        return Err(HelperError::InvalidName {
            name: name.to_owned(),
        });
    }
    let program = format!("docker-credential-{name}");
    let output = run(&program, server, path_var, timeout)?;

    if !output.status.success() {
        let message = helper_message(&output);
        if message.contains(NOT_FOUND_MESSAGE) {
            tracing::debug!(%program, server, "credential helper found no credential");
            return Ok(None);
        }
        return Err(HelperError::Failed {
            program,
            status: output.status,
            message,
        });
    }

    parse_response(&program, &output.stdout).map(Some)
}

struct HelperOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Starts the helper, sends it the server URL and collects its output within `timeout`.
fn run(
    program: &str,
    server: &str,
    path_var: Option<&OsStr>,
    timeout: Duration,
) -> Result<HelperOutput, HelperError> {
    let io_error = |source| HelperError::Io {
        program: program.to_owned(),
        source,
    };

    let mut command = Command::new(program);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path_var) = path_var {
        command.env("PATH", path_var);
    }
    tracing::debug!(%program, server, "running credential helper");
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            HelperError::NotFound {
                program: program.to_owned(),
            }
        } else {
            io_error(source)
        }
    })?;

    let stdout = PipeReader::spawn(child.stdout.take());
    let stderr = PipeReader::spawn(child.stderr.take());
    send_server(&mut child, server).map_err(io_error)?;
    let status = wait_with_timeout(&mut child, timeout)
        .map_err(io_error)?
        .ok_or_else(|| HelperError::TimedOut {
            program: program.to_owned(),
            seconds: timeout.as_secs(),
        })?;

    Ok(HelperOutput {
        status,
        stdout: stdout.finish(PIPE_GRACE),
        stderr: stderr.finish(PIPE_GRACE),
    })
}

/// Writes the server URL and closes standard input. A helper that exits without reading
/// its input closes the pipe, which is not an error.
fn send_server(child: &mut Child, server: &str) -> io::Result<()> {
    let Some(mut stdin) = child.stdin.take() else {
        return Ok(());
    };
    match stdin.write_all(server.as_bytes()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Output of one pipe, read on its own thread so that a helper that fills one pipe cannot
/// block on it while the other is read.
struct PipeReader {
    bytes: Arc<Mutex<Vec<u8>>>,
    finished: mpsc::Receiver<()>,
}

impl PipeReader {
    /// Starts reading `pipe` to its end, keeping at most [`MAX_OUTPUT_BYTES`].
    fn spawn(pipe: Option<impl Read + Send + 'static>) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = mpsc::channel();
        let buffer = Arc::clone(&bytes);
        thread::spawn(move || {
            if let Some(pipe) = pipe {
                read_into(pipe, &buffer);
            }
            let _ = done.send(());
        });
        Self { bytes, finished }
    }

    /// Returns what was read once the pipe ends, or after `grace` at the latest. A process
    /// that the helper left running in the background can keep the pipe open after the
    /// helper exited, so the end of the pipe may never come.
    fn finish(self, grace: Duration) -> Vec<u8> {
        if self.finished.recv_timeout(grace).is_err() {
            tracing::debug!("a credential helper's output pipe stayed open after it exited");
        }
        std::mem::take(&mut *lock(&self.bytes))
    }
}

/// Appends what `pipe` yields to `buffer` until the pipe ends or the buffer is full. A read
/// error keeps what was read so far, which the caller then parses.
fn read_into(mut pipe: impl Read, buffer: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 8192];
    loop {
        let count = match pipe.read(&mut chunk) {
            Ok(0) => return,
            Ok(count) => count,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut bytes = lock(buffer);
        let room = MAX_OUTPUT_BYTES.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..count.min(room)]);
        if bytes.len() >= MAX_OUTPUT_BYTES {
            return;
        }
    }
}

fn lock(buffer: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buffer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits for the child to exit, killing it after `timeout`. Returns `None` on timeout.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Returns the first non-empty line of the helper's error output (or of its standard
/// output, where docker-credential-helpers print their errors), shortened.
fn helper_message(output: &HelperOutput) -> String {
    let first_line = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(|line| line.chars().take(MAX_MESSAGE_CHARS).collect::<String>())
    };
    first_line(&output.stderr)
        .or_else(|| first_line(&output.stdout))
        .unwrap_or_else(|| "no error message".to_owned())
}

pub(crate) fn parse_response(program: &str, stdout: &[u8]) -> Result<Credential, HelperError> {
    let response: HelperResponse =
        serde_json::from_slice(stdout).map_err(|err| HelperError::InvalidOutput {
            program: program.to_owned(),
            reason: format!(
                "{:?} error at line {} column {}",
                err.classify(),
                err.line(),
                err.column()
            ),
        })?;
    if response.username == TOKEN_USERNAME {
        return Ok(Credential::IdentityToken {
            username: None,
            token: Secret::new(response.secret),
        });
    }
    Ok(Credential::basic(response.username, response.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_with_username_is_basic() {
        let credential =
            parse_response("docker-credential-x", br#"{"Username":"u","Secret":"s"}"#).unwrap();

        assert_eq!(credential, Credential::basic("u", "s"));
    }

    #[test]
    fn token_username_marks_identity_token() {
        let credential = parse_response(
            "docker-credential-x",
            br#"{"Username":"<token>","Secret":"s"}"#,
        )
        .unwrap();

        assert_eq!(
            credential,
            Credential::IdentityToken {
                username: None,
                token: Secret::new("s"),
            }
        );
    }

    #[test]
    fn wrong_types_do_not_quote_output() {
        let err = parse_response(
            "docker-credential-x",
            br#"{"Username":"u","Secret":55501234}"#,
        )
        .unwrap_err();
        let message = err.to_string();

        assert!(message.contains("docker-credential-x"), "{message}");
        assert!(!message.contains("55501234"), "{message}");
    }
}
