//! The `hoist-warmer` command: pulls base images into the content-addressed cache that
//! the executor reads, so builds start without a registry round trip per layer.

mod dockerfile;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::{ArgAction, ArgGroup, CommandFactory as _, Parser};
use hoist_auth::{Environment, Keychain};
use hoist_image::Platform;
use hoist_registry::cli::{MirrorError, MirrorVariables, TransportArgs, collect_registry_mirrors};
use hoist_registry::{
    BlobCache, Client, ClientOptions, Credentials, DEFAULT_MAX_CONCURRENCY, ImageReference,
    host_platform,
};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(version, about)]
#[command(group(ArgGroup::new("source").args(["images", "dockerfile"]).required(true).multiple(true)))]
struct Args {
    /// An image to pull into the cache; repeatable.
    #[arg(long = "image", short = 'i', value_name = "REF")]
    images: Vec<String>,
    /// A Dockerfile whose `FROM` images are pulled into the cache, after expansion with its
    /// global ARGs and `--build-arg`. `scratch` and stage names are skipped.
    #[arg(long, value_name = "FILE")]
    dockerfile: Option<PathBuf>,
    /// A build arg for expanding the Dockerfile's `FROM` lines: `KEY=VALUE`, or `KEY` to
    /// take the value from the environment. Repeatable.
    #[arg(long, value_name = "KEY=VALUE", requires = "dockerfile")]
    build_arg: Vec<String>,
    /// The cache directory, an OCI image layout: blobs go to `DIR/blobs/sha256/<hex>` and
    /// each image's reference and platform to `DIR/index.json`.
    #[arg(long, value_name = "DIR")]
    cache_dir: PathBuf,
    /// The platform chosen from image indexes, `os/architecture[/variant]`; this
    /// machine's platform by default.
    #[arg(long, value_name = "PLATFORM", value_parser = Platform::parse)]
    custom_platform: Option<Platform>,
    /// A mirror (host or host:port) tried before docker.io. Repeatable, and also read from
    /// `KANIKO_REGISTRY_MIRROR`.
    #[arg(long, value_name = "HOST")]
    registry_mirror: Vec<String>,
    /// Mirrors tried before a registry, `REGISTRY=MIRROR[;REGISTRY=MIRROR]`, as in the
    /// `hoist` executor. Repeatable, and entries for the same registry are tried in order.
    /// Also read from `KANIKO_REGISTRY_MAP`.
    #[arg(long, value_name = "MAP")]
    registry_map: Vec<String>,
    /// Fail when every mirror fails instead of pulling from the registry itself. Takes
    /// `--skip-default-registry-fallback` or `=true`/`=false`, as the `hoist` executor does.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    skip_default_registry_fallback: bool,
    /// Number of blobs downloaded at the same time.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENCY)]
    max_concurrency: usize,
    #[command(flatten)]
    transport: TransportArgs,
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    let mirrors = match registry_mirrors(&args, &MirrorVariables::from_process()) {
        Ok(mirrors) => mirrors,
        // A usage error like those of clap itself: the message, usage and exit status 2.
        Err(error) => Args::command()
            .error(ErrorKind::ValueValidation, error)
            .exit(),
    };
    match run(&args, mirrors) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Each cause once, escaped, because messages quote text from registries and
            // image files, which may contain control characters.
            eprintln!(
                "hoist-warmer: {}",
                hoist_registry::cli::error_line(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// Sends log events to standard error; `RUST_LOG` sets the level, `info` by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal, so that CI logs and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Collects `--registry-mirror` (for docker.io), `--registry-map` and their environment
/// variables with the parser of the `hoist` executor.
fn registry_mirrors(
    args: &Args,
    variables: &MirrorVariables,
) -> Result<BTreeMap<String, Vec<String>>, MirrorError> {
    collect_registry_mirrors(&args.registry_mirror, &args.registry_map, variables)
}

/// Returns the `--image` references, then the Dockerfile's base images that are not among
/// them, each once.
fn image_references(args: &Args, platform: &Platform) -> anyhow::Result<Vec<ImageReference>> {
    let mut references = Vec::new();
    for text in &args.images {
        let reference: ImageReference = text.parse().context("invalid --image")?;
        if !references.contains(&reference) {
            references.push(reference);
        }
    }
    if let Some(path) = &args.dockerfile {
        let build_args = dockerfile::parse_build_args(&args.build_arg)?;
        for reference in dockerfile::base_images(path, &build_args, platform)? {
            if !references.contains(&reference) {
                references.push(reference);
            }
        }
    }
    Ok(references)
}

fn run(args: &Args, registry_mirrors: BTreeMap<String, Vec<String>>) -> anyhow::Result<()> {
    let platform = args.custom_platform.clone().unwrap_or_else(host_platform);
    let references = image_references(args, &platform)?;
    if references.is_empty() {
        tracing::warn!("no image to warm: the Dockerfile names only scratch and stages");
        return Ok(());
    }
    let cache = BlobCache::open(&args.cache_dir)?;
    let options = ClientOptions {
        transport: args.transport.options(),
        max_concurrency: args.max_concurrency.max(1),
        registry_mirrors,
        mirror_fallback: !args.skip_default_registry_fallback,
        ..ClientOptions::default()
    };
    let keychain = Keychain::from_environment(&Environment::from_process());
    let client = Client::new(options, Credentials::Keychain(keychain));

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    for reference in &references {
        let pulled = runtime.block_on(client.pull(reference, &platform, &cache))?;
        // A reference to a single image (no index) yields that image whatever the requested
        // platform, so the cache records the platform its config states.
        let image_platform = pulled.image.config().platform();
        if !platform.matches(&image_platform) {
            tracing::warn!(
                %reference,
                requested = %platform,
                image = %image_platform,
                "the image is built for another platform than requested"
            );
        }
        cache.record_reference(reference, &image_platform, &pulled.manifest_descriptor())?;
        write_output(&format!("{reference} {}\n", pulled.manifest.digest))?;
    }
    Ok(())
}

/// Writes `text` to standard output. A closed pipe, as in `hoist-warmer ... | head -0`, is
/// not an error, and the remaining images are still pulled, because the output only reports
/// what is already in the cache.
fn write_output(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("failed to write to standard output")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_map_matches_executor() {
        // The `hoist` executor's test `registry_map_reads_kaniko_format` reads the same
        // values into the same mirrors.
        let args = Args::try_parse_from([
            "hoist-warmer",
            "--image",
            "r.example/app:1",
            "--cache-dir",
            "/nonexistent",
            "--registry-map",
            "index.docker.io=a.example;gcr.io=127.0.0.1:5000",
            "--registry-map",
            "gcr.io=b.example",
            "--registry-mirror",
            "c.example",
        ])
        .unwrap();
        let variables = MirrorVariables {
            registry_mirror: Some("d.example".to_owned()),
            registry_map: Some("quay.io=e.example".to_owned()),
        };
        let expected = BTreeMap::from([
            (
                "docker.io".to_owned(),
                vec![
                    "a.example".to_owned(),
                    "c.example".to_owned(),
                    "d.example".to_owned(),
                ],
            ),
            (
                "gcr.io".to_owned(),
                vec!["127.0.0.1:5000".to_owned(), "b.example".to_owned()],
            ),
            ("quay.io".to_owned(), vec!["e.example".to_owned()]),
        ]);
        assert_eq!(registry_mirrors(&args, &variables).unwrap(), expected);
    }

    #[test]
    fn mirror_list_form_is_rejected() {
        let args = Args::try_parse_from([
            "hoist-warmer",
            "--image",
            "r.example/app:1",
            "--cache-dir",
            "/nonexistent",
            "--registry-map",
            "gcr.io=a.example;b.example",
        ])
        .unwrap();
        let error = registry_mirrors(&args, &MirrorVariables::default()).unwrap_err();
        assert!(matches!(error, MirrorError::InvalidMap { .. }), "{error}");
    }

    #[test]
    fn fallback_flag_takes_kaniko_values() {
        let parse = |extra: &[&str]| {
            let base = [
                "hoist-warmer",
                "--image",
                "r.example/app:1",
                "--cache-dir",
                "/c",
            ];
            let args = Args::try_parse_from(base.iter().chain(extra)).unwrap();
            args.skip_default_registry_fallback
        };
        assert!(!parse(&[]));
        assert!(parse(&["--skip-default-registry-fallback"]));
        assert!(parse(&["--skip-default-registry-fallback=true"]));
        assert!(!parse(&["--skip-default-registry-fallback=false"]));
    }
}
