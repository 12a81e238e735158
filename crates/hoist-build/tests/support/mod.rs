//! Builds Dockerfiles on the testkit's busybox base for the engine tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_build::bases::plan_build;
use hoist_build::sandbox::Sandbox;
use hoist_build::stage::{BuildOutput, BuildSettings, LayoutSource, build};
use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::parse;
use hoist_dockerfile::stages::{BuildOptions, Platform as PlanPlatform};
use hoist_image::{ManifestFormat, Platform, write_oci_layout};
use hoist_testkit::{BaseImage, base_image};

/// Returns a temporary directory under `/var/tmp`, which is on the same
/// file system as the work directories.
pub(crate) fn temporary_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hoist-build-engine-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory")
}

/// Returns build settings for gzip layers under `work_parent`.
pub(crate) fn settings(work_parent: &Path, context: Option<&Path>) -> BuildSettings {
    BuildSettings {
        file: "Dockerfile".into(),
        work_parent: work_parent.to_path_buf(),
        platform: Platform::linux_amd64(),
        build_args: BTreeMap::new(),
        // umoci 0.4.7, which unpacks results in other tests, reads no zstd.
        compression: hoist_snapshot::Compression::Gzip { level: 6 },
        context: context.map(Path::to_path_buf),
        snapshot: Default::default(),
        run_mounts: Default::default(),
        layer_mtime_epoch: None,
    }
}

/// Returns a layout source with busybox as `busybox` and each extra
/// reference mapped to an OCI layout tagged `latest`.
pub(crate) fn source(extra: &[(&str, &Path)]) -> LayoutSource {
    let busybox = base_image(BaseImage::Busybox).expect("busybox base image");
    let mut source = LayoutSource::default();
    source.insert(
        "busybox",
        busybox.layout,
        Some(BaseImage::Busybox.manifest_tag()),
    );
    for (reference, layout) in extra {
        source.insert(reference, layout.to_path_buf(), Some("latest"));
    }
    source
}

/// Plans and builds `dockerfile` with `settings` and `source`.
pub(crate) fn build_with(
    dockerfile: &str,
    settings: &BuildSettings,
    source: &LayoutSource,
) -> Result<BuildOutput, Box<dyn std::error::Error>> {
    let parsed = parse(dockerfile, "Dockerfile")?;
    let typed = instructions(&parsed)?;
    let platform = PlanPlatform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: String::new(),
    };
    let options = BuildOptions {
        build_args: BTreeMap::new(),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    };
    let planned = plan_build(
        "Dockerfile",
        parsed.escape,
        &typed,
        &options,
        &settings.platform,
        source,
    )?;
    let sandbox = Sandbox::new(PathBuf::from(env!("CARGO_BIN_EXE_hoist-sandbox")));
    Ok(build(&planned.plan, settings, &sandbox, &planned.bases)?)
}

/// Writes `output`'s image as an OCI layout tagged `latest` at `layout`.
pub(crate) fn write_layout(output: &BuildOutput, layout: &Path) {
    write_oci_layout(&output.image, ManifestFormat::Oci, layout, &["latest"])
        .expect("write layout");
}

/// Returns the `created_by` and `empty_layer` of each history entry after
/// the first `skip` entries.
pub(crate) fn history_after(output: &BuildOutput, skip: usize) -> Vec<(String, bool)> {
    output
        .image
        .config()
        .history
        .iter()
        .skip(skip)
        .map(|entry| {
            (
                entry.created_by.clone().unwrap_or_default(),
                entry.empty_layer,
            )
        })
        .collect()
}
