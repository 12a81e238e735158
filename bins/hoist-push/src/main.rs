//! The `hoist-push` command: pushes an OCI image layout directory or a docker-archive
//! tarball to one or more registry references and prints the manifest digest.

mod progress;

use std::collections::BTreeMap;
use std::io::{ErrorKind, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use hoist_auth::{Environment, Keychain};
use hoist_image::{LoadedImage, read_docker_archive, read_oci_layout};
use hoist_registry::cli::TransportArgs;
use hoist_registry::{
    Client, ClientOptions, Credentials, DEFAULT_MAX_CONCURRENCY, ImageReference, UploadMode,
};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The image to push: an OCI image layout directory or a docker-archive tarball.
    source: PathBuf,
    /// The image of the source to push: a tag in the layout's `index.json` or a
    /// `RepoTags` entry of the archive. Needed only when the source has several.
    #[arg(long, value_name = "NAME")]
    source_ref: Option<String>,
    /// A reference to push to; repeat for more tags. Each extra tag of the same
    /// repository costs one manifest PUT. A destination names a tag (`REPO:TAG`) or
    /// the image's manifest digest (`REPO@sha256:...`), not both. A digest other than
    /// the image's fails before anything is sent.
    #[arg(long = "destination", short = 'd', value_name = "REF", required = true)]
    destinations: Vec<String>,
    /// Send blobs in chunks of this many bytes instead of one request per blob.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    chunk_size: Option<u64>,
    /// Number of blobs uploaded at the same time.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENCY)]
    max_concurrency: usize,
    /// Write the manifest digest to this file too.
    #[arg(long, value_name = "FILE", value_parser = output_file)]
    digest_file: Option<PathBuf>,
    #[command(flatten)]
    transport: TransportArgs,
}

/// Checks an output file's path before anything is pushed, so that a typo does not fail a
/// push that has already succeeded.
fn output_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!("the directory {} does not exist", parent.display()));
    }
    if path.is_dir() {
        return Err("it is a directory, expected a file".to_owned());
    }
    Ok(path)
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Each cause once, escaped, because messages quote text from registries and
            // image files, which may contain control characters.
            eprintln!(
                "hoist-push: {}",
                hoist_registry::cli::error_line(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// Sends log events to standard error; `RUST_LOG` sets the level, `info` by default, which
/// prints one line per blob and per manifest.
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

fn run(args: &Args) -> anyhow::Result<()> {
    let destinations = args
        .destinations
        .iter()
        .map(|text| ImageReference::parse_destination(text))
        .collect::<Result<Vec<_>, _>>()?;
    let image = load_source(&args.source, args.source_ref.as_deref())?;
    // A terminal gets progress bars; CI logs get the `info` line per blob instead.
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| Arc::new(progress::Bars::default()) as Arc<dyn hoist_registry::Progress>);
    let options = ClientOptions {
        transport: args.transport.options(),
        upload: args
            .chunk_size
            .map_or(UploadMode::Monolithic, UploadMode::Chunked),
        max_concurrency: args.max_concurrency.max(1),
        progress,
        ..ClientOptions::default()
    };
    let keychain = Keychain::from_environment(&Environment::from_process());
    let client = Client::new(options, Credentials::Keychain(keychain));

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime.block_on(client.push(&image, &destinations, &BTreeMap::new()))?;
    let stats = client.stats();
    tracing::info!(
        digest = %outcome.digest,
        blob_bytes_sent = stats.blob_bytes_sent,
        blobs_uploaded = stats.blobs_uploaded,
        blobs_present = stats.blobs_present,
        manifest_puts = stats.manifest_puts,
        "push finished"
    );
    if let Some(path) = &args.digest_file {
        std::fs::write(path, &outcome.digest)
            .with_context(|| format!("writing the digest to {}", path.display()))?;
    }
    write_output(&format!("{}\n", outcome.digest))
}

/// Writes `text` to standard output. A closed pipe, as in `hoist-push ... | head -0`, is not
/// an error, because the image is already pushed.
fn write_output(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => {
            Err(error).context("failed to write to standard output")
        }
        _ => Ok(()),
    }
}

/// Reads the source: a directory is an OCI image layout, a file a docker-archive.
fn load_source(path: &Path, reference: Option<&str>) -> anyhow::Result<LoadedImage> {
    let image = if path.is_dir() {
        read_oci_layout(path, reference)
            .with_context(|| format!("reading the OCI image layout {}", path.display()))?
    } else {
        read_docker_archive(path, reference)
            .with_context(|| format!("reading the docker-archive {}", path.display()))?
    };
    Ok(image)
}
