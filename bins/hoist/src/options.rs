//! Validation of the command line into the settings of one run. Every check here happens
//! before anything is built or sent, and a failure is a usage error (exit status 2).

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use hoist_build::context::ContextSource;
use hoist_build::output::OutputFiles;
use hoist_build::snapshot::{SnapshotMode, SnapshotSettings};
use hoist_image::Platform;
use hoist_registry::cli::{MirrorVariables, collect_registry_mirrors};
use hoist_registry::{ImageReference, TransportOptions, host_platform};
use hoist_snapshot::Compression;

use crate::args::Args;

/// The environment variables that Kaniko's executor reads besides `DOCKER_CONFIG`.
#[derive(Debug, Default, Clone)]
pub(crate) struct KanikoEnvironment {
    /// `KANIKO_NO_PUSH`.
    pub(crate) no_push: Option<String>,
    /// `KANIKO_REGISTRY_MIRROR`.
    pub(crate) registry_mirror: Option<String>,
    /// `KANIKO_REGISTRY_MAP`.
    pub(crate) registry_map: Option<String>,
}

impl KanikoEnvironment {
    /// Reads the variables from the process environment.
    pub(crate) fn from_process() -> Self {
        let read = |name: &str| std::env::var(name).ok();
        Self {
            no_push: read("KANIKO_NO_PUSH"),
            registry_mirror: read("KANIKO_REGISTRY_MIRROR"),
            registry_map: read("KANIKO_REGISTRY_MAP"),
        }
    }
}

/// The validated settings of a run.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) context: ContextSource,
    pub(crate) context_sub_path: Option<PathBuf>,
    pub(crate) dockerfile: PathBuf,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) target: Option<String>,
    pub(crate) skip_unused_stages: bool,
    pub(crate) platform: Platform,
    pub(crate) destinations: Vec<ImageReference>,
    pub(crate) no_push: bool,
    pub(crate) check_push_access: bool,
    pub(crate) outputs: OutputFiles,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) reproducible: bool,
    pub(crate) push_retries: u32,
    pub(crate) push_transport: TransportOptions,
    pub(crate) pull_transport: TransportOptions,
    pub(crate) registry_mirrors: BTreeMap<String, Vec<String>>,
    pub(crate) mirror_fallback: bool,
    pub(crate) download_retries: u32,
    pub(crate) compression: Compression,
    pub(crate) snapshot: SnapshotSettings,
    pub(crate) work_parent: PathBuf,
    pub(crate) cache_dir: PathBuf,
}

impl Options {
    /// Validates `args`, with the Kaniko variables in `env` and the process environment
    /// for bare `--build-arg KEY`.
    pub(crate) fn from_args(args: &Args, env: &KanikoEnvironment) -> anyhow::Result<Self> {
        reject_unsupported(args)?;
        check_output_paths(args)?;
        let no_push = args.no_push || parse_env_bool("KANIKO_NO_PUSH", env.no_push.as_deref())?;
        let destinations = parse_destinations(&args.destinations)?;
        if destinations.is_empty() && !no_push {
            bail!("no --destination given; pass one or more, or --no-push to only build");
        }
        Ok(Self {
            context: ContextSource::parse(&args.context)?,
            context_sub_path: args.context_sub_path.clone(),
            dockerfile: args.dockerfile.clone(),
            build_args: parse_build_args(&args.build_args)?,
            target: args.target.clone(),
            skip_unused_stages: args.skip_unused_stages,
            platform: args.custom_platform.clone().unwrap_or_else(host_platform),
            destinations,
            no_push,
            check_push_access: !args.skip_push_permission_check,
            outputs: OutputFiles {
                tar_path: args.tar_path.clone(),
                oci_layout_path: args.oci_layout_path.clone(),
                digest_file: args.digest_file.clone(),
                image_name_with_digest_file: args.image_name_with_digest_file.clone(),
                image_name_tag_with_digest_file: args.image_name_tag_with_digest_file.clone(),
            },
            labels: parse_labels(&args.labels)?,
            reproducible: args.reproducible,
            push_retries: args.push_retry,
            push_transport: transport(args, false),
            pull_transport: transport(args, true),
            registry_mirrors: registry_mirrors(args, env)?,
            mirror_fallback: !args.skip_default_registry_fallback,
            download_retries: args.image_download_retry,
            compression: compression(&args.compression, args.compression_level)?,
            snapshot: snapshot(args)?,
            work_parent: work_parent(&args.kaniko_dir)?,
            cache_dir: args.cache_dir.clone(),
        })
    }
}

fn reject_unsupported(args: &Args) -> anyhow::Result<()> {
    if let Some(flag) = args.unsupported.first_set() {
        bail!("{flag} is not supported yet");
    }
    // TODO: honour --ignore-var-run=true for files that RUN writes under /var/run. The
    // walk snapshotter has no exclusion list, so they are kept like any other change.
    if !args.ignore_path.is_empty() {
        bail!("--ignore-path is not supported yet");
    }
    Ok(())
}

/// `--snapshot-mode` and `--single-snapshot`; the snapshotter is overlayfs where
/// the kernel allows it, else the walk.
fn snapshot(args: &Args) -> anyhow::Result<SnapshotSettings> {
    let mode: SnapshotMode = args
        .snapshot_mode
        .parse()
        .context("invalid --snapshot-mode")?;
    Ok(SnapshotSettings {
        mode,
        single: args.single_snapshot,
        ..SnapshotSettings::default()
    })
}

/// Checks that each output file can be created where it is asked for, so that a typo
/// fails before the build and the push instead of after them.
fn check_output_paths(args: &Args) -> anyhow::Result<()> {
    let outputs = [
        ("--tar-path", &args.tar_path),
        ("--oci-layout-path", &args.oci_layout_path),
        ("--digest-file", &args.digest_file),
        (
            "--image-name-with-digest-file",
            &args.image_name_with_digest_file,
        ),
        (
            "--image-name-tag-with-digest-file",
            &args.image_name_tag_with_digest_file,
        ),
    ];
    for (flag, path) in outputs {
        let Some(path) = path else { continue };
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            bail!(
                "{flag} {}: the directory {} does not exist",
                path.display(),
                parent.display()
            );
        }
        if flag != "--oci-layout-path" && path.is_dir() {
            bail!("{flag} {}: is a directory, expected a file", path.display());
        }
    }
    Ok(())
}

fn parse_env_bool(name: &str, value: Option<&str>) -> anyhow::Result<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(false),
        Some("1" | "t" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "f" | "false" | "no" | "off") => Ok(false),
        Some(other) => bail!("invalid value {other:?} for {name}: expected true or false"),
    }
}

fn parse_destinations(texts: &[String]) -> anyhow::Result<Vec<ImageReference>> {
    texts
        .iter()
        .map(|text| ImageReference::parse_destination(text).context("invalid --destination"))
        .collect()
}

/// Parses `KEY=VALUE` build args; a bare `KEY` takes the environment's value and is
/// left out when the environment has none, as Docker does.
fn parse_build_args(texts: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut args = BTreeMap::new();
    for text in texts {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (text.as_str(), std::env::var(text).ok()),
        };
        if key.is_empty() {
            bail!("invalid --build-arg {text:?}: expected KEY=VALUE or KEY");
        }
        if let Some(value) = value {
            args.insert(key.to_owned(), value);
        }
    }
    Ok(args)
}

fn parse_labels(texts: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    texts
        .iter()
        .map(|text| match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("invalid --label {text:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// Returns the push transport, or with `pull` the pull transport: Kaniko's `--insecure`
/// and `--skip-tls-verify` apply to pushes, their `-pull` forms to pulls, and the
/// per-registry flags to both.
fn transport(args: &Args, pull: bool) -> TransportOptions {
    let (insecure, skip_tls_verify) = if pull {
        (args.insecure_pull, args.skip_tls_verify_pull)
    } else {
        (args.insecure, args.skip_tls_verify)
    };
    TransportOptions {
        insecure,
        insecure_registries: args.insecure_registry.iter().cloned().collect(),
        skip_tls_verify,
        skip_tls_verify_registries: args.skip_tls_verify_registry.iter().cloned().collect(),
        registry_certificates: args.registry_certificate.iter().cloned().collect(),
        client_certificates: args.registry_client_cert.iter().cloned().collect(),
        read_timeout: None,
    }
}

/// Collects `--registry-mirror` (for docker.io), `--registry-map` and their environment
/// variables into mirrors per registry, with the parser that hoist-warmer uses too.
fn registry_mirrors(
    args: &Args,
    env: &KanikoEnvironment,
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let variables = MirrorVariables {
        registry_mirror: env.registry_mirror.clone(),
        registry_map: env.registry_map.clone(),
    };
    let mirrors = collect_registry_mirrors(&args.registry_mirror, &args.registry_map, &variables)?;
    Ok(mirrors)
}

/// Returns the layer compression; parallel gzip keeps the bytes independent of the
/// thread count, so the digest does not depend on the machine.
fn compression(algorithm: &str, level: i32) -> anyhow::Result<Compression> {
    let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    match algorithm {
        "zstd" => {
            let level = if level == -1 { 3 } else { level };
            if !(1..=22).contains(&level) {
                bail!("invalid --compression-level {level} for zstd: expected 1 to 22");
            }
            Ok(Compression::Zstd {
                level,
                workers: threads,
            })
        }
        _ => {
            let level = if level == -1 { 6 } else { level };
            let level = u32::try_from(level)
                .ok()
                .filter(|level| *level <= 9)
                .with_context(|| {
                    format!("invalid --compression-level {level} for gzip: expected 0 to 9")
                })?;
            Ok(Compression::ParallelGzip { level, threads })
        }
    }
}

/// Checks `--kaniko-dir`: an existing directory other than `/`.
fn work_parent(dir: &Path) -> anyhow::Result<PathBuf> {
    let absolute = std::fs::canonicalize(dir)
        .with_context(|| format!("--kaniko-dir {} does not exist", dir.display()))?;
    if absolute == Path::new("/") {
        bail!("--kaniko-dir must not be /: hoist never builds in the machine's root");
    }
    if !absolute.is_dir() {
        bail!("--kaniko-dir {} is not a directory", dir.display());
    }
    Ok(absolute)
}

/// Returns each destination's repository once, in the order given.
pub(crate) fn repositories(destinations: &[ImageReference]) -> Vec<&ImageReference> {
    let mut seen = BTreeSet::new();
    destinations
        .iter()
        .filter(|reference| seen.insert((reference.registry(), reference.repository())))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn registry_map_reads_kaniko_format() {
        // hoist-warmer's test `registry_map_matches_executor` reads the same values.
        let args = Args::try_parse_from([
            "hoist",
            "--registry-map",
            "index.docker.io=a.example;gcr.io=127.0.0.1:5000",
            "--registry-map",
            "gcr.io=b.example",
            "--registry-mirror",
            "c.example",
        ])
        .unwrap();
        let env = KanikoEnvironment {
            no_push: None,
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
        assert_eq!(registry_mirrors(&args, &env).unwrap(), expected);
    }

    #[test]
    fn registry_map_variable_is_checked() {
        let args = Args::try_parse_from(["hoist"]).unwrap();
        let env = KanikoEnvironment {
            registry_map: Some("gcr.io".to_owned()),
            ..KanikoEnvironment::default()
        };
        let message = registry_mirrors(&args, &env).unwrap_err().to_string();
        assert!(message.contains("KANIKO_REGISTRY_MAP"), "{message}");
        assert!(message.contains("REGISTRY=MIRROR"), "{message}");
    }

    #[test]
    fn bare_build_arg_reads_environment() {
        let args = parse_build_args(&["PATH".to_owned(), "A=b=c".to_owned()]).unwrap();
        assert_eq!(args.get("A").map(String::as_str), Some("b=c"));
        assert!(args.contains_key("PATH"));
        let args = parse_build_args(&["HOIST_SURELY_UNSET_VARIABLE".to_owned()]).unwrap();
        assert!(args.is_empty());
        assert!(parse_build_args(&["=x".to_owned()]).is_err());
    }

    #[test]
    fn compression_levels_are_checked() {
        assert!(compression("gzip", 10).is_err());
        assert!(compression("zstd", 0).is_err());
        assert!(matches!(
            compression("zstd", -1).unwrap(),
            Compression::Zstd { level: 3, .. }
        ));
        assert!(matches!(
            compression("gzip", -1).unwrap(),
            Compression::ParallelGzip { level: 6, .. }
        ));
    }

    #[test]
    fn kaniko_no_push_values() {
        assert!(parse_env_bool("KANIKO_NO_PUSH", Some("true")).unwrap());
        assert!(!parse_env_bool("KANIKO_NO_PUSH", Some("false")).unwrap());
        assert!(parse_env_bool("KANIKO_NO_PUSH", Some("maybe")).is_err());
    }

    #[test]
    fn push_and_pull_flags_split_transport() {
        let args = Args::try_parse_from([
            "hoist",
            "--insecure",
            "--skip-tls-verify-pull",
            "--insecure-registry",
            "r.example:5000",
        ])
        .unwrap();
        let push = transport(&args, false);
        let pull = transport(&args, true);
        assert!(push.insecure);
        assert!(!push.skip_tls_verify);
        assert!(!pull.insecure);
        assert!(pull.skip_tls_verify);
        assert!(push.insecure_registries.contains("r.example:5000"));
        assert!(pull.insecure_registries.contains("r.example:5000"));
    }

    #[test]
    fn root_is_no_work_parent() {
        assert!(work_parent(Path::new("/")).is_err());
        assert!(work_parent(Path::new("/nonexistent-hoist-dir")).is_err());
    }
}
