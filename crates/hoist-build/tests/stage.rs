//! The stage executor on the testkit's busybox base, from Dockerfile text to
//! an OCI layout that umoci unpacks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hoist_build::sandbox::Sandbox;
use hoist_build::stage::{BuildError, BuildOutput, BuildSettings, LayoutSource, build};
use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::parse;
use hoist_dockerfile::stages::{BuildOptions, Platform as PlanPlatform, resolve};
use hoist_image::{ManifestFormat, Platform, write_oci_layout};
use hoist_testkit::{BaseImage, ImageSource, base_image, unpack_image};

fn plan_platform() -> PlanPlatform {
    PlanPlatform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: String::new(),
    }
}

fn build_dockerfile(
    dockerfile: &str,
    work_parent: &std::path::Path,
) -> Result<BuildOutput, BuildError> {
    let parsed = parse(dockerfile, "Dockerfile").expect("parse");
    let typed = instructions(&parsed).expect("typed instructions");
    let options = BuildOptions {
        build_args: BTreeMap::new(),
        target: None,
        target_platform: plan_platform(),
        build_platform: plan_platform(),
    };
    let plan = resolve("Dockerfile", parsed.escape, &typed, &options).expect("resolve stages");

    let busybox = base_image(BaseImage::Busybox).expect("busybox base image");
    let mut source = LayoutSource::default();
    source.insert(
        "busybox",
        busybox.layout,
        Some(BaseImage::Busybox.manifest_tag()),
    );
    let settings = BuildSettings {
        file: "Dockerfile".into(),
        work_parent: work_parent.to_path_buf(),
        platform: Platform::linux_amd64(),
        build_args: BTreeMap::new(),
        // umoci 0.4.7, which unpacks the result, reads no zstd layers.
        compression: hoist_snapshot::Compression::Gzip { level: 6 },
    };
    let sandbox = Sandbox::new(PathBuf::from(env!("CARGO_BIN_EXE_hoist-sandbox")));
    build(&plan, &settings, &sandbox, &source)
}

fn temporary_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hoist-build-stage-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory")
}

const DOCKERFILE: &str = "\
FROM busybox
ARG GREETING=hello
ENV APP_HOME=/app
WORKDIR $APP_HOME
RUN echo \"$GREETING from $APP_HOME\" > greeting
RUN true
LABEL org.example.kind=test
EXPOSE 8080
USER nobody
ENTRYPOINT [\"/bin/sh\"]
";

#[test]
fn busybox_build_produces_config() {
    let work = temporary_dir();
    let output = build_dockerfile(DOCKERFILE, work.path()).expect("build");
    let config = output.image.config();
    let runtime = &config.config;

    let env = runtime.env.clone().unwrap_or_default();
    assert!(env.contains(&"APP_HOME=/app".to_owned()), "{env:?}");
    assert!(
        !env.iter().any(|variable| variable.starts_with("GREETING=")),
        "{env:?}"
    );
    assert_eq!(runtime.working_dir.as_deref(), Some("/app"));
    assert_eq!(runtime.user.as_deref(), Some("nobody"));
    assert_eq!(runtime.entrypoint, Some(vec!["/bin/sh".to_owned()]));
    assert_eq!(runtime.cmd, None, "ENTRYPOINT drops the inherited CMD");
    let labels = runtime.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("org.example.kind").map(String::as_str),
        Some("test")
    );
    assert!(
        runtime
            .exposed_ports
            .clone()
            .unwrap_or_default()
            .contains("8080/tcp")
    );
}

#[test]
fn changed_files_make_layers() {
    let work = temporary_dir();
    let output = build_dockerfile(DOCKERFILE, work.path()).expect("build");
    let config = output.image.config();
    // busybox has one layer; WORKDIR and the first RUN add one each, and
    // `RUN true` changes nothing.
    assert_eq!(output.image.layers().len(), 3);
    let new_history: Vec<(String, bool)> = config
        .history
        .iter()
        .skip_while(|entry| !entry.created_by.as_deref().unwrap_or("").starts_with("ARG"))
        .map(|entry| {
            (
                entry.created_by.clone().unwrap_or_default(),
                entry.empty_layer,
            )
        })
        .collect();
    let expected = [
        ("ARG GREETING=hello", true),
        ("ENV APP_HOME=/app", true),
        ("WORKDIR /app", false),
        (
            "RUN /bin/sh -c echo \"$GREETING from $APP_HOME\" > greeting # buildkit",
            false,
        ),
        ("RUN /bin/sh -c true # buildkit", true),
        ("LABEL org.example.kind=test", true),
        ("EXPOSE map[8080/tcp:{}]", true),
        ("USER nobody", true),
        ("ENTRYPOINT [\"/bin/sh\"]", true),
    ];
    let expected: Vec<(String, bool)> = expected
        .iter()
        .map(|(text, empty)| ((*text).to_owned(), *empty))
        .collect();
    assert_eq!(new_history, expected);
}

#[test]
fn written_layout_unpacks_with_files() {
    let work = temporary_dir();
    let output = build_dockerfile(DOCKERFILE, work.path()).expect("build");
    let layout = work.path().join("layout");
    write_oci_layout(&output.image, ManifestFormat::Oci, &layout, &["test"]).expect("write layout");
    let rootfs = work.path().join("rootfs");
    let source = ImageSource::Layout {
        dir: layout,
        tag: "test".into(),
    };
    unpack_image(&source, &rootfs).expect("umoci unpack");
    let greeting = std::fs::read_to_string(rootfs.join("app/greeting")).expect("read greeting");
    assert_eq!(greeting, "hello from /app\n");
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(!rootfs.join("etc/resolv.conf").exists());
}

#[test]
fn work_dir_removed_after_failure() {
    let work = temporary_dir();
    let error = build_dockerfile("FROM busybox\nRUN exit 4\n", work.path()).expect_err("fails");
    assert!(
        error
            .to_string()
            .starts_with("Dockerfile:2: RUN exit 4 failed"),
        "{error}"
    );
    let left: Vec<_> = std::fs::read_dir(work.path())
        .expect("read work parent")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn copy_is_reported_unimplemented() {
    let work = temporary_dir();
    let error = build_dockerfile("FROM busybox\nCOPY a /a\n", work.path()).expect_err("fails");
    assert_eq!(
        error.to_string(),
        "Dockerfile:2: COPY is not implemented yet"
    );
}

#[test]
fn later_stage_builds_on_earlier() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox AS base\nRUN echo base > /base\n\
                      FROM base\nRUN cat /base > /copied\n";
    let output = build_dockerfile(dockerfile, work.path()).expect("build");
    assert_eq!(output.image.layers().len(), 3);
}
