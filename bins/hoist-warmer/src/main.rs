//! The `hoist-warmer` command: pulls base images into the content-addressed cache that
//! the executor reads, so builds start without a registry round trip per layer.

mod dockerfile;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{ArgGroup, Parser};
use hoist_auth::{Environment, Keychain};
use hoist_image::Platform;
use hoist_registry::cli::TransportArgs;
use hoist_registry::{
    BlobCache, Client, ClientOptions, Credentials, DEFAULT_MAX_CONCURRENCY, DEFAULT_REGISTRY,
    ImageReference, host_platform,
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
    /// A mirror of docker.io (host or host:port) tried before it; repeatable.
    #[arg(long, value_name = "HOST")]
    registry_mirror: Vec<String>,
    /// Mirrors tried in order before REGISTRY, separated by `;`; repeatable.
    #[arg(long, value_name = "REGISTRY=MIRROR[;MIRROR]", value_parser = parse_registry_map)]
    registry_map: Vec<(String, Vec<String>)>,
    /// Fail when every mirror fails instead of pulling from the registry itself.
    #[arg(long)]
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
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hoist-warmer: {error:#}");
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
        .init();
}

/// Parses `REGISTRY=MIRROR[;MIRROR]`, the form of `--registry-map`.
fn parse_registry_map(text: &str) -> Result<(String, Vec<String>), String> {
    let invalid = || format!("invalid registry map {text:?}: expected REGISTRY=MIRROR[;MIRROR]");
    let (registry, mirrors) = text.split_once('=').ok_or_else(invalid)?;
    let mirrors: Vec<String> = mirrors
        .split(';')
        .filter(|mirror| !mirror.is_empty())
        .map(ToOwned::to_owned)
        .collect();
    if registry.is_empty() || mirrors.is_empty() {
        return Err(invalid());
    }
    Ok((registry.to_owned(), mirrors))
}

/// Collects `--registry-mirror` (for docker.io) and `--registry-map` into one map.
fn registry_mirrors(args: &Args) -> BTreeMap<String, Vec<String>> {
    let mut mirrors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !args.registry_mirror.is_empty() {
        mirrors
            .entry(DEFAULT_REGISTRY.to_owned())
            .or_default()
            .extend(args.registry_mirror.iter().cloned());
    }
    for (registry, listed) in &args.registry_map {
        mirrors
            .entry(registry.clone())
            .or_default()
            .extend(listed.iter().cloned());
    }
    mirrors
}

/// Returns the `--image` references, then the Dockerfile's base images that are not among
/// them, each once.
fn image_references(args: &Args, platform: &Platform) -> anyhow::Result<Vec<ImageReference>> {
    let mut references = Vec::new();
    for text in &args.images {
        let reference: ImageReference = text
            .parse()
            .with_context(|| format!("invalid --image {text:?}"))?;
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

fn run(args: &Args) -> anyhow::Result<()> {
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
        registry_mirrors: registry_mirrors(args),
        mirror_fallback: !args.skip_default_registry_fallback,
        ..ClientOptions::default()
    };
    let keychain = Keychain::from_environment(&Environment::from_process());
    let client = Client::new(options, Credentials::Keychain(keychain));

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    for reference in &references {
        let pulled = runtime.block_on(client.pull(reference, &platform, &cache))?;
        cache.record_reference(reference, &platform, &pulled.manifest_descriptor())?;
        println!("{reference} {}", pulled.manifest.digest);
    }
    Ok(())
}
