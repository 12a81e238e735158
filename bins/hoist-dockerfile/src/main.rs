//! The `hoist-dockerfile` command: checks a Dockerfile, prints its typed
//! instructions and stage graph as JSON, or dumps its raw parse tree in
//! BuildKit's format.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::{Dockerfile, parse};
use hoist_dockerfile::read::read_dockerfile;
use hoist_dockerfile::stages::{BuildOptions, Platform, resolve};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks FILE; prints `FILE:LINE: message` and exits 1 on the first error.
    Check {
        /// The Dockerfile.
        file: PathBuf,
    },
    /// Prints the typed instructions with expanded values and the stage graph
    /// as JSON.
    Json {
        /// The Dockerfile.
        file: PathBuf,
        /// Sets a build argument, as `NAME=VALUE`; repeatable.
        #[arg(long = "build-arg", value_name = "NAME=VALUE", value_parser = parse_build_arg)]
        build_args: Vec<(String, String)>,
        /// Builds this stage instead of the last one.
        #[arg(long)]
        target: Option<String>,
        /// Platform to build for, as `os/arch[/variant]` (default: this machine's).
        #[arg(long, value_parser = parse_platform)]
        platform: Option<Platform>,
    },
    /// Prints the raw parse tree in BuildKit's dump format, one line per
    /// instruction.
    Dump {
        /// The Dockerfile.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hoist-dockerfile: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Check { file } => check(&file),
        Command::Json {
            file,
            build_args,
            target,
            platform,
        } => print_json(&file, &build_args, target, platform),
        Command::Dump { file } => {
            let text = read_dockerfile(&file)?;
            match parse(&text, &file.display().to_string()) {
                Ok(dockerfile) => write_output(&dockerfile.dump()),
                Err(error) => Ok(report(&error)),
            }
        }
    }
}

/// Writes `text` to standard output. A closed pipe, as in `dump F | head -1`,
/// ends the command successfully and quietly, as it does for other Unix
/// filters.
fn write_output(text: &str) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if error.kind() == ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error).context("failed to write to standard output"),
    }
}

/// Prints a Dockerfile error as `FILE:LINE: message`, followed by its causes, and returns
/// exit code 1. Library errors leave their causes out of their own message, so each is
/// printed once.
fn report(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        message.push_str(": ");
        message.push_str(&error.to_string());
        cause = error.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let text = read_dockerfile(path)?;
    let name = path.display().to_string();
    let dockerfile = match parse(&text, &name) {
        Ok(dockerfile) => dockerfile,
        Err(error) => return Ok(report(&error)),
    };
    let typed = match instructions(&dockerfile) {
        Ok(typed) => typed,
        Err(error) => return Ok(report(&error)),
    };
    let options = build_options(&[], None, None);
    if let Err(error) = resolve(&name, dockerfile.escape, &typed, &options) {
        return Ok(report(&error));
    }
    for warning in &dockerfile.warnings {
        eprintln!("{name}:{}: warning: {}", warning.line, warning.message);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(
    path: &Path,
    build_args: &[(String, String)],
    target: Option<String>,
    platform: Option<Platform>,
) -> anyhow::Result<ExitCode> {
    let text = read_dockerfile(path)?;
    let name = path.display().to_string();
    let dockerfile: Dockerfile = match parse(&text, &name) {
        Ok(dockerfile) => dockerfile,
        Err(error) => return Ok(report(&error)),
    };
    let typed = match instructions(&dockerfile) {
        Ok(typed) => typed,
        Err(error) => return Ok(report(&error)),
    };
    let options = build_options(build_args, target, platform);
    let plan = match resolve(&name, dockerfile.escape, &typed, &options) {
        Ok(plan) => plan,
        Err(error) => return Ok(report(&error)),
    };
    let output = serde_json::json!({
        "file": name,
        "directives": dockerfile.directives,
        "parser_warnings": dockerfile.warnings,
        "plan": plan,
    });
    let mut text = serde_json::to_string_pretty(&output)?;
    text.push('\n');
    write_output(&text)
}

fn build_options(
    build_args: &[(String, String)],
    target: Option<String>,
    platform: Option<Platform>,
) -> BuildOptions {
    let host = host_platform();
    BuildOptions {
        build_args: build_args.iter().cloned().collect::<BTreeMap<_, _>>(),
        target,
        target_platform: platform.unwrap_or_else(|| host.clone()),
        build_platform: host,
    }
}

/// Parses a `--build-arg` value as `NAME=VALUE` with a non-empty name. clap
/// reports an error as a usage error, with exit code 2.
fn parse_build_arg(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        Some(_) => Err("the name is empty: expected NAME=VALUE".to_owned()),
        None => Err("missing '=': expected NAME=VALUE".to_owned()),
    }
}

/// Parses a `--platform` value. clap reports an error as a usage error, with
/// exit code 2.
fn parse_platform(specifier: &str) -> Result<Platform, String> {
    const EXPECTED: &str = "expected os/arch or os/arch/variant";
    let parts: Vec<&str> = specifier.split('/').collect();
    let (os, architecture, variant) = match parts[..] {
        [os, architecture] => (os, architecture, ""),
        [os, architecture, variant] => (os, architecture, variant),
        _ => return Err(EXPECTED.to_owned()),
    };
    if os.is_empty() || architecture.is_empty() {
        return Err(EXPECTED.to_owned());
    }
    Ok(Platform {
        os: os.to_owned(),
        architecture: architecture.to_owned(),
        variant: variant.to_owned(),
    })
}

/// Returns the platform this binary runs on, in OCI terms.
fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", ""),
        "x86" => ("386", ""),
        "aarch64" => ("arm64", ""),
        "arm" => ("arm", "v7"),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", ""),
        other => (other, ""),
    };
    Platform {
        os: std::env::consts::OS.to_owned(),
        architecture: architecture.to_owned(),
        variant: variant.to_owned(),
    }
}
