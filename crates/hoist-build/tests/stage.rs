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
    build_with_context(dockerfile, work_parent, None)
}

fn build_with_context(
    dockerfile: &str,
    work_parent: &std::path::Path,
    context: Option<&std::path::Path>,
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
        context: context.map(std::path::Path::to_path_buf),
        snapshot: Default::default(),
        run_mounts: Default::default(),
        layer_mtime_epoch: None,
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
fn copy_without_context_is_unsupported() {
    let work = temporary_dir();
    let error = build_dockerfile("FROM busybox\nCOPY a /a\n", work.path()).expect_err("fails");
    assert_eq!(
        error.to_string(),
        "Dockerfile:2: a path source in a build without a context is not supported yet"
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

/// Creates a build context with a file, a directory with a relative
/// symlink, a file that `.dockerignore` excludes and a symlink that points
/// outside.
fn context_dir(parent: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::{PermissionsExt, symlink};

    let context = parent.join("context");
    std::fs::create_dir_all(context.join("dir/sub")).expect("create context");
    std::fs::write(context.join("a.txt"), "a\n").expect("write a.txt");
    std::fs::set_permissions(
        context.join("a.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod a.txt");
    std::fs::write(context.join("dir/sub/b.txt"), "b\n").expect("write b.txt");
    std::fs::write(context.join("dir/ignored.txt"), "secret\n").expect("write ignored");
    symlink("../a.txt", context.join("dir/link")).expect("symlink link");
    symlink("/etc/passwd", context.join("escape")).expect("symlink escape");
    std::fs::write(context.join(".dockerignore"), "dir/ignored.txt\n").expect("write ignore");
    context
}

#[test]
fn copy_from_context_follows_rules() {
    use std::os::unix::fs::MetadataExt;

    let work = temporary_dir();
    let context = context_dir(work.path());
    let dockerfile = "FROM busybox\nWORKDIR /app\nCOPY a.txt ./\nCOPY dir /app/dir/\n\
                      COPY --chown=nobody --chmod=0600 a.txt /owned/a\n";
    let output = build_with_context(dockerfile, work.path(), Some(&context)).expect("build");
    let root = output.work_dir().join("stage-0/rootfs");

    let copied = std::fs::metadata(root.join("app/a.txt")).expect("stat /app/a.txt");
    assert_eq!(copied.mode() & 0o7777, 0o640);
    assert_eq!((copied.uid(), copied.gid()), (0, 0));
    assert_eq!(
        std::fs::read_to_string(root.join("app/dir/sub/b.txt")).expect("read"),
        "b\n"
    );
    let link = std::fs::read_link(root.join("app/dir/link")).expect("read link");
    assert_eq!(link, std::path::Path::new("../a.txt"));
    assert!(!root.join("app/dir/ignored.txt").exists());

    let owned = std::fs::metadata(root.join("owned/a")).expect("stat /owned/a");
    assert_eq!((owned.uid(), owned.gid()), (65534, 65534));
    assert_eq!(owned.mode() & 0o7777, 0o600);
    let created = std::fs::metadata(root.join("owned")).expect("stat /owned");
    assert_eq!(
        created.uid(),
        65534,
        "a directory the copy creates gets the owner"
    );
    let existing = std::fs::metadata(root.join("app")).expect("stat /app");
    assert_eq!(existing.uid(), 0);
    assert_eq!(output.image.layers().len(), 5);
}

#[test]
fn copy_sources_stay_in_context() {
    let work = temporary_dir();
    let context = context_dir(work.path());
    for source in ["missing", "../../etc/passwd", "escape", "dir/ignored.txt"] {
        let dockerfile = format!("FROM busybox\nCOPY {source} /copied\n");
        let error = build_with_context(&dockerfile, work.path(), Some(&context)).expect_err(source);
        assert_eq!(
            error.to_string(),
            format!("Dockerfile:2: source {source:?} not found in the build context")
        );
    }
}
