//! The `hoist-testbed` command: runs the builder-image example's test bed (a
//! registry with htpasswd auth over TLS and a release server, both on
//! loopback) until a signal or the end of standard input stops it, for shell
//! scripts such as `scripts/main-job.sh`.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, Sender};

use clap::{Args, Parser, Subcommand};
use hoist_testkit::release_server::{
    DEFAULT_TERRAFORM_VERSION, DEFAULT_TFLINT_VERSION, ReleaseServer,
};
use hoist_testkit::testbed::{DEFAULT_USER, StateFiles, Testbed};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Runs the test bed of hoist's builder-image example on loopback.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the registry and the release server, write the env file, print
    /// "ready", and run until SIGTERM, SIGINT or SIGHUP arrives or standard
    /// input is closed.
    ///
    /// The registry is CNCF distribution (docker-registry) with htpasswd auth
    /// over TLS, with a CA made for this run. It contains base/busybox and
    /// base/debian:bookworm. The password is random per run and is only
    /// written to a 0600 file in the state directory, never printed. The env
    /// file, DIR/testbed.env, sets HOIST_TESTBED_REGISTRY, _CA_CERT,
    /// _CERT_DIR, _USER, _PASSWORD_FILE, _AUTH_FILE, _RELEASES_URL,
    /// _TERRAFORM_VERSION, _TFLINT_VERSION and _PID. On stop, the state files
    /// are removed.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Directory for the env file, the password file, the CA certificate and
    /// the auth file; created when missing.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,

    /// Registry user name.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_USER)]
    user: String,

    /// Terraform version of the served zip.
    #[arg(long, value_name = "VERSION", default_value = DEFAULT_TERRAFORM_VERSION)]
    terraform_version: String,

    /// TFLint version (release tag) of the served zip.
    #[arg(long, value_name = "VERSION", default_value = DEFAULT_TFLINT_VERSION)]
    tflint_version: String,

    /// Serve stand-in scripts that print the version even when terraform or
    /// tflint is on PATH.
    #[arg(long)]
    stand_ins: bool,

    /// Keep running when standard input is closed; stop on signals only.
    #[arg(long)]
    ignore_stdin: bool,
}

/// The cause of a stop.
enum StopReason {
    Signal(i32),
    StdinClosed,
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hoist-testbed: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Sends log events to standard error, in color only on a terminal;
/// `RUST_LOG` sets the level, info by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn serve(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Listening starts before the test bed does, so that a stop request
    // during the start (which can take minutes the first time) is kept and
    // acted on as soon as the start is done, with everything cleaned up.
    let stop_requests = listen_for_stop(args.ignore_stdin)?;

    let testbed = start_testbed(args)?;
    let result = match stop_requests.try_recv() {
        // A stop requested during the start ends the run before "ready".
        Ok(reason) => {
            log_stop(&reason);
            Ok(())
        }
        Err(_) => announce_and_wait(&testbed, &args.state_dir, &stop_requests),
    };
    remove_state(&StateFiles::in_dir(&args.state_dir));
    drop(testbed);
    tracing::info!("test bed stopped");
    result
}

/// Writes the state files, prints "ready" and waits for a stop request.
fn announce_and_wait(
    testbed: &Testbed,
    state_dir: &Path,
    stop_requests: &Receiver<StopReason>,
) -> Result<(), Box<dyn std::error::Error>> {
    let files = testbed.write_state(state_dir)?;
    announce_ready(&files)?;
    let reason = stop_requests.recv().unwrap_or(StopReason::StdinClosed);
    log_stop(&reason);
    Ok(())
}

fn log_stop(reason: &StopReason) {
    match reason {
        StopReason::Signal(signal) => {
            tracing::info!(signal, "stopping the test bed on a signal");
        }
        StopReason::StdinClosed => {
            tracing::info!("stopping the test bed: standard input was closed");
        }
    }
}

fn start_testbed(args: &ServeArgs) -> hoist_testkit::Result<Testbed> {
    let mut releases = ReleaseServer::builder()
        .terraform_version(&args.terraform_version)
        .tflint_version(&args.tflint_version);
    if args.stand_ins {
        releases = releases.stand_ins();
    }
    Testbed::builder()
        .user(&args.user)
        .releases(releases)
        .start()
}

fn announce_ready(files: &StateFiles) -> std::io::Result<()> {
    tracing::info!(env_file = %files.env.display(), "test bed ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")?;
    stdout.flush()
}

fn remove_state(files: &StateFiles) {
    if let Err(error) = files.remove() {
        tracing::warn!(%error, "removing the state files failed");
    }
}

/// Starts threads that report SIGTERM, SIGINT, SIGHUP and, unless
/// `ignore_stdin`, the end of standard input.
fn listen_for_stop(ignore_stdin: bool) -> std::io::Result<Receiver<StopReason>> {
    let (sender, receiver) = mpsc::channel();
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let signal_sender = sender.clone();
    std::thread::Builder::new()
        .name("stop-signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = signal_sender.send(StopReason::Signal(signal));
            }
        })?;
    if !ignore_stdin {
        std::thread::Builder::new()
            .name("stop-on-stdin".to_owned())
            .spawn(move || wait_for_stdin_end(&sender))?;
    }
    Ok(receiver)
}

/// Reads standard input, discarding it, until it ends or fails.
fn wait_for_stdin_end(sender: &Sender<StopReason>) {
    let mut stdin = std::io::stdin().lock();
    let mut buffer = [0u8; 4096];
    loop {
        match stdin.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(%error, "reading standard input failed; treating it as closed");
                break;
            }
        }
    }
    let _ = sender.send(StopReason::StdinClosed);
}
