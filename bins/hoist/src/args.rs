//! The command line: Kaniko's executor flags with their names, defaults and environment
//! variables, and the Kaniko flags that hoist rejects because it does not implement them.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};
use hoist_image::Platform;
use hoist_registry::{parse_client_certificate, parse_registry_certificate};

const SOURCE: &str = "Build input";
const OUTPUT: &str = "Output and push";
const REGISTRY: &str = "Registries and transport";
const LAYERS: &str = "Layers and snapshots";
const RUNTIME: &str = "Directories and cleanup";
const LOGGING: &str = "Logging";
const UNSUPPORTED: &str = "Kaniko flags not supported yet (rejected when set)";

/// Builds a Dockerfile into an OCI image and pushes it, without a daemon. Takes the flags
/// of Kaniko's executor, so a CI job can swap `/kaniko/executor` for `hoist`.
///
/// RUN steps go through the `hoist-sandbox` helper, which must be installed next to
/// `hoist`. Registry credentials come from `$DOCKER_CONFIG/config.json` (write them with
/// `hoist-login`), else `$HOME/.docker/config.json`.
///
/// Exit status: 0 on success, 1 when the build or push fails, 2 on a usage error.
#[derive(Debug, Parser)]
// A flag given twice keeps its last value, as in Kaniko's flag parser.
#[command(name = "hoist", version, about, long_about, args_override_self = true)]
pub(crate) struct Args {
    /// The build context: a directory (`DIR` or `dir://DIR`), a tarball (`tar://FILE`,
    /// gzip, zstd or plain) or a tarball on standard input (`tar://stdin`).
    #[arg(short = 'c', long, value_name = "CONTEXT", default_value = "/workspace/", help_heading = SOURCE)]
    pub(crate) context: String,
    /// A directory inside the context to use as the context.
    #[arg(long, value_name = "PATH", help_heading = SOURCE)]
    pub(crate) context_sub_path: Option<PathBuf>,
    /// The Dockerfile: a path as given, else relative to the context.
    #[arg(short = 'f', long, value_name = "PATH", default_value = "Dockerfile", help_heading = SOURCE)]
    pub(crate) dockerfile: PathBuf,
    /// A build argument `KEY=VALUE`; a bare `KEY` takes its value from the environment.
    /// Repeatable.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", help_heading = SOURCE)]
    pub(crate) build_args: Vec<String>,
    /// The stage to build; the last stage by default.
    #[arg(long, value_name = "STAGE", help_heading = SOURCE)]
    pub(crate) target: Option<String>,
    /// Build only the stages the target needs. Without it, every stage up to the target
    /// is built, as Kaniko does.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = SOURCE)]
    pub(crate) skip_unused_stages: bool,
    /// The platform of the image, `os/architecture[/variant]`, which picks base images from
    /// indexes; this machine's platform by default.
    #[arg(long, value_name = "PLATFORM", value_parser = Platform::parse, help_heading = SOURCE)]
    pub(crate) custom_platform: Option<Platform>,

    /// A reference to push the image to (`registry/repository:tag`). Repeatable: every
    /// tag of the same repository costs one manifest upload. A destination may name the
    /// image's manifest digest (`registry/repository@sha256:...`) in place of a tag, which
    /// is checked after the build, before any output is written or pushed.
    #[arg(short = 'd', long = "destination", value_name = "REF", help_heading = OUTPUT)]
    pub(crate) destinations: Vec<String>,
    /// Build without pushing. Also set by `KANIKO_NO_PUSH=true`.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = OUTPUT)]
    pub(crate) no_push: bool,
    /// Skip the check, before the build, that the credentials may push to each destination.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = OUTPUT)]
    pub(crate) skip_push_permission_check: bool,
    /// Write the image as a docker-archive tarball (`docker load` format) to this file.
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub(crate) tar_path: Option<PathBuf>,
    /// Write the image as an OCI image layout to this directory.
    #[arg(long, value_name = "DIR", help_heading = OUTPUT)]
    pub(crate) oci_layout_path: Option<PathBuf>,
    /// Write the manifest digest (`sha256:<hex>`) to this file.
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub(crate) digest_file: Option<PathBuf>,
    /// Write `registry/repository@digest` of each destination, one a line, to this file.
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub(crate) image_name_with_digest_file: Option<PathBuf>,
    /// Write `registry/repository:tag@digest` of each destination, one a line, to this file.
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub(crate) image_name_tag_with_digest_file: Option<PathBuf>,
    /// A label `KEY=VALUE` added to the image config. Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", help_heading = OUTPUT)]
    pub(crate) labels: Vec<String>,
    /// Set every timestamp of the image config and history to the Unix epoch and clamp
    /// file mtimes in new layers to it, so the same input gives the same digest.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = OUTPUT)]
    pub(crate) reproducible: bool,
    /// Repeats of a failed push, after the per-request retries (count).
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = OUTPUT)]
    pub(crate) push_retry: u32,

    /// Push over plain HTTP to every registry.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = REGISTRY)]
    pub(crate) insecure: bool,
    /// Push to and pull from this registry (host or host:port) over plain HTTP.
    /// Repeatable.
    #[arg(long, value_name = "HOST", help_heading = REGISTRY)]
    pub(crate) insecure_registry: Vec<String>,
    /// Accept any TLS certificate when pushing.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = REGISTRY)]
    pub(crate) skip_tls_verify: bool,
    /// Accept any TLS certificate from this registry, for pushes and pulls. Repeatable.
    #[arg(long, value_name = "HOST", help_heading = REGISTRY)]
    pub(crate) skip_tls_verify_registry: Vec<String>,
    /// Trust the CA certificates in PATH (PEM) for HOST. Repeatable.
    #[arg(long, value_name = "HOST=PATH", value_parser = parse_registry_certificate, help_heading = REGISTRY)]
    pub(crate) registry_certificate: Vec<(String, PathBuf)>,
    /// Present the client certificate CERT with key KEY (both PEM) to HOST. Repeatable.
    #[arg(long, value_name = "HOST=CERT,KEY", value_parser = parse_client_certificate, help_heading = REGISTRY)]
    pub(crate) registry_client_cert: Vec<(String, (PathBuf, PathBuf))>,
    /// Pull base images over plain HTTP from every registry.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = REGISTRY)]
    pub(crate) insecure_pull: bool,
    /// Accept any TLS certificate when pulling base images.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = REGISTRY)]
    pub(crate) skip_tls_verify_pull: bool,
    /// A mirror (host or host:port) tried before docker.io when pulling. Repeatable; also
    /// read from `KANIKO_REGISTRY_MIRROR`.
    #[arg(long, value_name = "HOST", help_heading = REGISTRY)]
    pub(crate) registry_mirror: Vec<String>,
    /// Mirrors tried before a registry when pulling, `REGISTRY=MIRROR[;REGISTRY=MIRROR]`.
    /// Repeatable, and entries for the same registry are tried in order; also read from
    /// `KANIKO_REGISTRY_MAP`.
    #[arg(long, value_name = "MAP", help_heading = REGISTRY)]
    pub(crate) registry_map: Vec<String>,
    /// Fail a pull when every mirror failed instead of falling back to the registry.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = REGISTRY)]
    pub(crate) skip_default_registry_fallback: bool,
    /// Repeats of a failed base image pull, after the per-request retries (count).
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = REGISTRY)]
    pub(crate) image_download_retry: u32,

    /// The file attributes the snapshotter compares to find changes: `full`, `redo` or
    /// `time`.
    #[arg(long, value_name = "MODE", default_value = "full", value_parser = ["full", "redo", "time"], help_heading = LAYERS)]
    pub(crate) snapshot_mode: String,
    /// Take one snapshot at the end of each stage instead of one per instruction.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = LAYERS)]
    pub(crate) single_snapshot: bool,
    /// The compression of new layers: `gzip` or `zstd`.
    #[arg(long, value_name = "ALGORITHM", default_value = "gzip", value_parser = ["gzip", "zstd"], help_heading = LAYERS)]
    pub(crate) compression: String,
    /// The compression level: 0 to 9 for gzip (default 6), 1 to 22 for zstd (default 3);
    /// -1 picks the default.
    #[arg(long, value_name = "LEVEL", default_value_t = -1, allow_negative_numbers = true, help_heading = LAYERS)]
    pub(crate) compression_level: i32,
    /// Keep `/var/run` out of new layers. Kaniko needs this because it builds in its
    /// container's own root; hoist's stage roots never contain the builder's `/var/run`,
    /// and files that RUN writes under the image's `/var/run` are kept either way.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = LAYERS)]
    pub(crate) ignore_var_run: bool,
    /// A path to leave out of snapshots. Repeatable.
    #[arg(long, value_name = "PATH", help_heading = LAYERS)]
    pub(crate) ignore_path: Vec<String>,

    /// The parent of hoist's work directories (stage roots, new layers, pulled blobs,
    /// an extracted context). Also set by `KANIKO_DIR`. Must not be `/`.
    #[arg(long, value_name = "DIR", env = "KANIKO_DIR", default_value = "/var/tmp", help_heading = RUNTIME)]
    pub(crate) kaniko_dir: PathBuf,
    /// The base image cache that `hoist-warmer` fills; read only, and a missing directory
    /// is an empty cache.
    #[arg(long, value_name = "DIR", default_value = "/cache", help_heading = RUNTIME)]
    pub(crate) cache_dir: PathBuf,
    /// Accepted for Kaniko's jobs. hoist never writes outside its work directories and
    /// always removes them at exit, so there is nothing more to clean.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = RUNTIME)]
    pub(crate) cleanup: bool,
    /// Accepted for Kaniko's jobs. Kaniko needs it to run outside a container; hoist
    /// builds in roots of its own and runs anywhere, so it changes nothing.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = RUNTIME)]
    pub(crate) force: bool,

    /// The log level: trace, debug, info, warn, error (fatal and panic mean error).
    #[arg(short = 'v', long, value_name = "LEVEL", default_value = "info", value_parser = ["trace", "debug", "info", "warn", "error", "fatal", "panic"], help_heading = LOGGING)]
    pub(crate) verbosity: String,
    /// The log format: `text`, `color` (text with ANSI colors) or `json` (one object a
    /// line).
    #[arg(long, value_name = "FORMAT", default_value = "color", value_parser = ["text", "color", "json"], help_heading = LOGGING)]
    pub(crate) log_format: String,
    /// Start each log line with its time (UTC, RFC 3339).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, help_heading = LOGGING)]
    pub(crate) log_timestamp: bool,

    #[command(flatten)]
    pub(crate) unsupported: UnsupportedArgs,
}

/// Kaniko flags that hoist does not implement. They are parsed so that setting one fails
/// with a message that names it, instead of an unknown-flag error or a silent no-op.
#[derive(Debug, clap::Args)]
pub(crate) struct UnsupportedArgs {
    /// Kaniko's layer cache in a registry.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = UNSUPPORTED)]
    cache: Option<String>,
    /// The repository of Kaniko's layer cache.
    #[arg(long, value_name = "REPO", help_heading = UNSUPPORTED)]
    cache_repo: Option<String>,
    /// The lifetime of cached layers.
    #[arg(long, value_name = "DURATION", help_heading = UNSUPPORTED)]
    cache_ttl: Option<String>,
    /// Caching of COPY layers.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = UNSUPPORTED)]
    cache_copy_layers: Option<String>,
    /// Caching of RUN layers.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = UNSUPPORTED)]
    cache_run_layers: Option<String>,
    /// Compression of cached layers.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = UNSUPPORTED)]
    compressed_caching: Option<String>,
    /// Pushing of cache layers.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = UNSUPPORTED)]
    no_push_cache: Option<String>,
    /// Git options of a `git://` context.
    #[arg(long, value_name = "OPTIONS", help_heading = UNSUPPORTED)]
    git: Option<String>,
    /// Kaniko's experimental RUN implementation.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = UNSUPPORTED)]
    use_new_run: Option<String>,
    /// Retries of base image extraction.
    #[arg(long, value_name = "N", help_heading = UNSUPPORTED)]
    image_fs_extract_retry: Option<String>,
    /// Layers for metadata-only instructions.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = UNSUPPORTED)]
    force_build_metadata: Option<String>,
    /// Credential helpers built into Kaniko.
    #[arg(long, value_name = "HELPERS", help_heading = UNSUPPORTED)]
    credential_helpers: Option<String>,
}

impl UnsupportedArgs {
    /// Returns the first flag that is set to something other than `false`.
    pub(crate) fn first_set(&self) -> Option<&'static str> {
        let boolean = |value: &Option<String>| {
            value
                .as_deref()
                .is_some_and(|text| !matches!(text, "false" | "0" | "no" | "off"))
        };
        let given = |value: &Option<String>| value.is_some();
        [
            (boolean(&self.cache), "--cache"),
            (given(&self.cache_repo), "--cache-repo"),
            (given(&self.cache_ttl), "--cache-ttl"),
            (boolean(&self.cache_copy_layers), "--cache-copy-layers"),
            (boolean(&self.cache_run_layers), "--cache-run-layers"),
            (boolean(&self.compressed_caching), "--compressed-caching"),
            (boolean(&self.no_push_cache), "--no-push-cache"),
            (given(&self.git), "--git"),
            (boolean(&self.use_new_run), "--use-new-run"),
            (
                given(&self.image_fs_extract_retry),
                "--image-fs-extract-retry",
            ),
            (
                boolean(&self.force_build_metadata),
                "--force-build-metadata",
            ),
            (given(&self.credential_helpers), "--credential-helpers"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn boolean_flags_take_kaniko_forms() {
        let args = Args::try_parse_from(["hoist", "--no-push", "--ignore-var-run=false"]).unwrap();
        assert!(args.no_push);
        assert!(!args.ignore_var_run);
        let args = Args::try_parse_from(["hoist", "--reproducible=true"]).unwrap();
        assert!(args.reproducible);
    }

    #[test]
    fn repeated_flag_keeps_last_value() {
        let args = Args::try_parse_from(["hoist", "-v", "debug", "-v", "warn"]).unwrap();
        assert_eq!(args.verbosity, "warn");
    }

    #[test]
    fn unsupported_false_value_is_accepted() {
        let args = Args::try_parse_from(["hoist", "--cache=false"]).unwrap();
        assert_eq!(args.unsupported.first_set(), None);
        let args = Args::try_parse_from(["hoist", "--cache"]).unwrap();
        assert_eq!(args.unsupported.first_set(), Some("--cache"));
    }
}
