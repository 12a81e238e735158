//! The `hoist-dockerfile` command: checks a Dockerfile, prints its typed
//! instructions and stage graph as JSON, or dumps its raw parse tree in
//! BuildKit's format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::{Dockerfile, parse};
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
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        /// Builds this stage instead of the last one.
        #[arg(long)]
        target: Option<String>,
        /// Platform to build for, as `os/arch[/variant]` (default: this machine's).
        #[arg(long)]
        platform: Option<String>,
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
        } => print_json(&file, &build_args, target, platform.as_deref()),
        Command::Dump { file } => {
            let text = read_text(&file)?;
            match parse(&text, &file.display().to_string()) {
                Ok(dockerfile) => {
                    print!("{}", dockerfile.dump());
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => Ok(report(&error)),
            }
        }
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not valid UTF-8", path.display()))
}

/// Prints a Dockerfile error as `FILE:LINE: message` and returns exit code 1.
fn report(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("{error}");
    ExitCode::FAILURE
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let text = read_text(path)?;
    let name = path.display().to_string();
    let dockerfile = match parse(&text, &name) {
        Ok(dockerfile) => dockerfile,
        Err(error) => return Ok(report(&error)),
    };
    let typed = match instructions(&dockerfile) {
        Ok(typed) => typed,
        Err(error) => return Ok(report(&error)),
    };
    let options = build_options(&[], None, None)?;
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
    build_args: &[String],
    target: Option<String>,
    platform: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let text = read_text(path)?;
    let name = path.display().to_string();
    let dockerfile: Dockerfile = match parse(&text, &name) {
        Ok(dockerfile) => dockerfile,
        Err(error) => return Ok(report(&error)),
    };
    let typed = match instructions(&dockerfile) {
        Ok(typed) => typed,
        Err(error) => return Ok(report(&error)),
    };
    let options = build_options(build_args, target, platform)?;
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
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}

fn build_options(
    build_args: &[String],
    target: Option<String>,
    platform: Option<&str>,
) -> anyhow::Result<BuildOptions> {
    let mut values = BTreeMap::new();
    for pair in build_args {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("invalid --build-arg {pair:?}: expected NAME=VALUE");
        };
        values.insert(name.to_owned(), value.to_owned());
    }
    let host = host_platform();
    let target_platform = match platform {
        Some(specifier) => parse_platform(specifier)?,
        None => host.clone(),
    };
    Ok(BuildOptions {
        build_args: values,
        target,
        target_platform,
        build_platform: host,
    })
}

fn parse_platform(specifier: &str) -> anyhow::Result<Platform> {
    let parts: Vec<&str> = specifier.split('/').collect();
    let (os, architecture, variant) = match parts[..] {
        [os, architecture] => (os, architecture, ""),
        [os, architecture, variant] => (os, architecture, variant),
        _ => bail!("invalid --platform {specifier:?}: expected os/arch or os/arch/variant"),
    };
    if os.is_empty() || architecture.is_empty() {
        bail!("invalid --platform {specifier:?}: expected os/arch or os/arch/variant");
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
