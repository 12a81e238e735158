//! The `hoist` command: Kaniko's executor without a daemon. It validates every flag,
//! checks push access, builds the Dockerfile, writes the requested outputs and pushes
//! the image to every destination.

mod args;
mod logging;
mod options;
mod publish;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser as _;
use hoist_auth::{Environment, Keychain};
use hoist_build::bases::{PlannedBuild, plan_build};
use hoist_build::context::{self, ContextError, PreparedContext};
use hoist_build::output::{self, CreationTime};
use hoist_build::sandbox::Sandbox;
use hoist_build::source::{RegistrySource, RegistrySourceOptions};
use hoist_build::stage::{BuildOutput, BuildSettings};
use hoist_dockerfile::stages::{BuildOptions, Platform as PlanPlatform};
use hoist_registry::{Client, ClientOptions, Credentials, RetryPolicy};

use crate::args::Args;
use crate::logging::{LogSettings, report};
use crate::options::{KanikoEnvironment, Options};

/// Exit status of a usage error: an invalid flag, destination or input path.
const USAGE_ERROR: u8 = 2;

/// A failed run and the exit status it maps to.
enum Failure {
    /// Bad flags or inputs, found before anything was built (exit status 2).
    Usage(anyhow::Error),
    /// A failed check, build, output or push (exit status 1).
    Run(anyhow::Error),
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => return command_line_error(&error),
    };
    let log = LogSettings {
        verbosity: args.verbosity.clone(),
        format: args.log_format.clone(),
        timestamp: args.log_timestamp,
    };
    logging::init(&log);
    if let Err(error) = hoist_build::cleanup::install_signal_handler() {
        report(
            &log,
            &anyhow::Error::new(error).context("cannot handle SIGINT and SIGTERM"),
        );
        return ExitCode::FAILURE;
    }
    // Errors are reported as one line of causes, each printed once: library errors leave
    // their source's text out of their own message, and `report` skips a cause whose text
    // the line already contains (see `logging::error_line`).
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(error)) => {
            report(&log, &error);
            ExitCode::from(USAGE_ERROR)
        }
        Err(Failure::Run(error)) => {
            report(&log, &error);
            // A build cut short by SIGINT or SIGTERM exits with 128 + the signal number.
            match hoist_build::cleanup::signal_exit_status().and_then(|s| u8::try_from(s).ok()) {
                Some(status) => ExitCode::from(status),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// Prints help and version as clap does, and any other command-line error on one line
/// with clap's tip, exit status 2.
fn command_line_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;

    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let text = error.to_string();
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let message = lines.next().unwrap_or("invalid command line");
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let tip = lines
        .find_map(|line| line.strip_prefix("tip: "))
        .map(|tip| format!("; {tip}"))
        .unwrap_or_default();
    eprintln!("hoist: error: {message}{tip}; see hoist --help");
    ExitCode::from(USAGE_ERROR)
}

fn run(args: &Args) -> Result<(), Failure> {
    let started = Instant::now();
    let options =
        Options::from_args(args, &KanikoEnvironment::from_process()).map_err(Failure::Usage)?;
    let context = context::prepare(
        &options.context,
        options.context_sub_path.as_deref(),
        &options.work_parent,
    )
    .map_err(context_failure)?;
    let dockerfile = resolve_dockerfile(&options.dockerfile, &context).map_err(Failure::Usage)?;
    let file = read_dockerfile(&dockerfile).map_err(Failure::Run)?;

    let runtime = tokio::runtime::Runtime::new()
        .context("failed to start the async runtime")
        .map_err(Failure::Run)?;
    let push_client = push_client(&options);
    if !options.no_push && options.check_push_access {
        publish::check_push_access(&runtime, &push_client, &options.destinations)
            .map_err(Failure::Run)?;
    }

    let source = base_image_source(&options).map_err(Failure::Run)?;
    let planned = plan(&file, &options, &source).map_err(Failure::Run)?;
    let output = build(&planned, &dockerfile, &options, &context).map_err(Failure::Run)?;
    let created = if options.reproducible {
        CreationTime::Epoch
    } else {
        CreationTime::Now
    };
    let image = output::finalize(output.image.clone(), &options.labels, created)
        .map_err(|error| Failure::Run(error.into()))?;
    // The image's digest is known only now, and a destination that names another digest
    // must fail before any output file is written or any blob is pushed.
    hoist_registry::check_push_destinations(
        image.rendered.manifest_descriptor.digest.as_ref(),
        &options.destinations,
    )
    .map_err(|error| Failure::Run(error.into()))?;
    options
        .outputs
        .write_image(&image, &options.destinations)
        .map_err(|error| Failure::Run(error.into()))?;
    let digest = if options.no_push {
        tracing::info!("--no-push given, skipping the push");
        image.rendered.manifest_descriptor.digest.to_string()
    } else {
        let origins = source.layer_origins();
        publish::push(&runtime, &push_client, &image, &options, &origins).map_err(Failure::Run)?
    };
    options
        .outputs
        .write_digests(&digest, &options.destinations)
        .map_err(|error| Failure::Run(error.into()))?;
    drop(output);
    tracing::info!(digest, "done in {:.2}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Maps a context failure to a usage error when the input as given is at fault, and to
/// a run failure when this machine is, such as a full disk while extracting a tarball.
fn context_failure(error: ContextError) -> Failure {
    if error.is_invalid_input() {
        Failure::Usage(error.into())
    } else {
        Failure::Run(error.into())
    }
}

/// Finds the Dockerfile as Kaniko does: the path as given when it exists, else relative to
/// the context.
fn resolve_dockerfile(dockerfile: &Path, context: &PreparedContext) -> anyhow::Result<PathBuf> {
    if dockerfile.is_file() {
        return Ok(dockerfile.to_path_buf());
    }
    let in_context = context.dir().join(dockerfile);
    if in_context.is_file() {
        return Ok(in_context);
    }
    anyhow::bail!(
        "no Dockerfile at {} or {}; pass its path with --dockerfile",
        dockerfile.display(),
        in_context.display()
    )
}

/// A Dockerfile read and parsed, before its stages are resolved.
struct DockerfileInput {
    name: String,
    escape: char,
    instructions: Vec<hoist_dockerfile::instructions::Instruction>,
}

/// Reads and parses the Dockerfile.
fn read_dockerfile(dockerfile: &Path) -> anyhow::Result<DockerfileInput> {
    let name = dockerfile.display().to_string();
    let text = hoist_dockerfile::read::read_dockerfile(dockerfile)
        .context("cannot read the Dockerfile")?;
    let parsed = hoist_dockerfile::parser::parse(&text, &name)?;
    let instructions = hoist_dockerfile::instructions::instructions(&parsed)?;
    Ok(DockerfileInput {
        name,
        escape: parsed.escape,
        instructions,
    })
}

/// Resolves the stages for the target, pulling the base images the target needs so
/// that their ENV reaches expansion.
fn plan<'a>(
    file: &DockerfileInput,
    options: &Options,
    source: &'a RegistrySource,
) -> anyhow::Result<PlannedBuild<'a>> {
    let platform = PlanPlatform {
        os: options.platform.os.clone(),
        architecture: options.platform.architecture.clone(),
        variant: options.platform.variant.clone().unwrap_or_default(),
    };
    let build_options = BuildOptions {
        build_args: options.build_args.clone(),
        target: options.target.clone(),
        target_platform: platform.clone(),
        build_platform: platform,
    };
    let mut planned = plan_build(
        &file.name,
        file.escape,
        &file.instructions,
        &build_options,
        &options.platform,
        source,
    )?;
    for warning in &planned.plan.warnings {
        tracing::warn!("{warning}");
    }
    if !options.skip_unused_stages {
        // Without --skip-unused-stages, Kaniko builds every stage up to the target.
        // NOTE: planning pulls only the bases that the target needs, so the other
        // stages are expanded without their base image's ENV. Nothing of them reaches
        // the image.
        // A stage for another platform cannot be built, and nothing of an unused one
        // reaches the image, so it is left out with a warning.
        let plan = &planned.plan;
        let mut needed = plan.needed.clone();
        for stage in &plan.stages[..=plan.target] {
            if needed.contains(&stage.index) {
                continue;
            }
            match hoist_build::bases::other_platform(stage, &options.platform) {
                Some(requested) => tracing::warn!(
                    stage = stage.index,
                    "skipping unused stage for platform {requested}: hoist builds stages \
                     for {} only",
                    options.platform
                ),
                None => needed.push(stage.index),
            }
        }
        needed.sort_unstable();
        planned.plan.needed = needed;
    }
    Ok(planned)
}

fn credentials() -> Credentials {
    Credentials::Keychain(Keychain::from_environment(&Environment::from_process()))
}

fn push_client(options: &Options) -> Client {
    let client_options = ClientOptions {
        transport: options.push_transport.clone(),
        retry: RetryPolicy::default(),
        ..ClientOptions::default()
    };
    Client::new(client_options, credentials())
}

fn base_image_source(options: &Options) -> anyhow::Result<RegistrySource> {
    let client = ClientOptions {
        transport: options.pull_transport.clone(),
        registry_mirrors: options.registry_mirrors.clone(),
        mirror_fallback: options.mirror_fallback,
        ..ClientOptions::default()
    };
    let source = RegistrySource::new(RegistrySourceOptions {
        client,
        credentials: credentials(),
        cache_dir: Some(options.cache_dir.clone()),
        download_retries: options.download_retries,
        retry_backoff: std::time::Duration::from_secs(1),
        work_parent: options.work_parent.clone(),
    })?;
    Ok(source)
}

fn build(
    planned: &PlannedBuild<'_>,
    dockerfile: &Path,
    options: &Options,
    context: &PreparedContext,
) -> anyhow::Result<BuildOutput> {
    let sandbox = Sandbox::locate()?;
    let settings = BuildSettings {
        file: dockerfile.display().to_string(),
        work_parent: options.work_parent.clone(),
        platform: options.platform.clone(),
        build_args: options.build_args.clone(),
        compression: options.compression,
        context: Some(context.dir().to_path_buf()),
        snapshot: options.snapshot,
        run_mounts: Default::default(),
        layer_mtime_epoch: options.reproducible.then_some(0),
    };
    let output = hoist_build::stage::build(&planned.plan, &settings, &sandbox, &planned.bases)?;
    Ok(output)
}
