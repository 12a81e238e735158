//! Stages built `FROM` an image: expansion with the image's ENV and the
//! image's `ONBUILD` triggers, on a base that hoist built itself.

mod support;

use support::{build_with, history_after, settings, source, temporary_dir, write_layout};

const BASE: &str = "\
FROM busybox
ENV TOOL_HOME=/opt/tool HOME=/home/tool
RUN mkdir -p /opt/tool /home/tool
ONBUILD RUN echo \"trigger in $TOOL_HOME\" > /onbuild.txt
ONBUILD ENV FROM_TRIGGER=yes
";

const CHILD: &str = "\
FROM toolbase
ENV PATH=/opt/tool/bin:$PATH
ARG CACHE=$HOME/cache
WORKDIR $TOOL_HOME/work
COPY a.txt $HOME/
RUN echo \"$CACHE\" > /cache.txt
";

const BUSYBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds `BASE` into an OCI layout and `CHILD` from it, and returns the
/// child's output with the number of history entries the base has.
fn build_child(work: &std::path::Path) -> (hoist_build::stage::BuildOutput, usize) {
    let base = build_with(BASE, &settings(work, None), &source(&[])).expect("build base");
    let layout = work.join("toolbase");
    write_layout(&base, &layout);
    let base_history = base.image.config().history.len();

    let context = work.join("context");
    std::fs::create_dir(&context).expect("create context");
    std::fs::write(context.join("a.txt"), "a\n").expect("write a.txt");
    let source = source(&[("toolbase", &layout)]);
    let child = build_with(CHILD, &settings(work, Some(&context)), &source).expect("build child");
    (child, base_history)
}

#[test]
fn base_env_reaches_expansion() {
    let work = temporary_dir();
    let (child, _) = build_child(work.path());
    let root = child.work_dir().join("stage-0/rootfs");
    let runtime = &child.image.config().config;

    let env = runtime.env.clone().unwrap_or_default();
    let path = format!("PATH=/opt/tool/bin:{BUSYBOX_PATH}");
    assert!(env.contains(&path), "{env:?}");
    assert_eq!(runtime.working_dir.as_deref(), Some("/opt/tool/work"));
    assert_eq!(
        std::fs::read_to_string(root.join("home/tool/a.txt")).expect("read a.txt"),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("cache.txt")).expect("read cache.txt"),
        "/home/tool/cache\n"
    );
}

#[test]
fn base_triggers_run_first() {
    let work = temporary_dir();
    let (child, base_history) = build_child(work.path());
    let root = child.work_dir().join("stage-0/rootfs");

    assert_eq!(
        std::fs::read_to_string(root.join("onbuild.txt")).expect("read onbuild.txt"),
        "trigger in /opt/tool\n"
    );
    let env = child.image.config().config.env.clone().unwrap_or_default();
    assert!(env.contains(&"FROM_TRIGGER=yes".to_owned()), "{env:?}");
    let history = history_after(&child, base_history);
    assert_eq!(
        history[..2],
        [
            (
                "RUN /bin/sh -c echo \"trigger in $TOOL_HOME\" > /onbuild.txt # buildkit"
                    .to_owned(),
                false
            ),
            ("ENV FROM_TRIGGER=yes".to_owned(), true),
        ]
    );
}

#[test]
fn child_config_drops_triggers() {
    let work = temporary_dir();
    let base = build_with(BASE, &settings(work.path(), None), &source(&[])).expect("build base");
    let triggers = base
        .image
        .config()
        .config
        .on_build
        .clone()
        .unwrap_or_default();
    assert_eq!(triggers.len(), 2, "{triggers:?}");

    let (child, _) = build_child(work.path());
    assert_eq!(child.image.config().config.on_build, None);
}

#[test]
fn failing_trigger_names_from_line() {
    let work = temporary_dir();
    let base = build_with(
        "FROM busybox\nONBUILD RUN exit 3\n",
        &settings(work.path(), None),
        &source(&[]),
    )
    .expect("build base");
    let layout = work.path().join("failing");
    write_layout(&base, &layout);
    drop(base);

    let source = source(&[("failing", &layout)]);
    let error = build_with(
        "ARG A\nFROM failing\n",
        &settings(work.path(), None),
        &source,
    )
    .expect_err("trigger fails");
    let message = error.to_string();
    assert!(
        message.starts_with("Dockerfile:2: RUN exit 3 failed"),
        "{message}"
    );
}

#[test]
fn scratch_stage_gets_default_path() {
    let work = temporary_dir();
    let output = build_with(
        "FROM scratch\nENV PATH=/app/bin:$PATH\n",
        &settings(work.path(), None),
        &source(&[]),
    )
    .expect("build");
    let env = output.image.config().config.env.clone().unwrap_or_default();
    let default_path = hoist_dockerfile::stages::DEFAULT_PATH;
    assert_eq!(env, [format!("PATH=/app/bin:{default_path}")]);
}

#[test]
fn stage_for_another_platform_is_refused() {
    let work = temporary_dir();
    let text =
        "FROM --platform=linux/arm64 scratch AS tools\nFROM scratch\nCOPY --from=tools / /\n";
    let Err(error) = build_with(text, &settings(work.path(), None), &source(&[])) else {
        panic!("a stage for linux/arm64 in a linux/amd64 build must fail");
    };
    let message = error.to_string();
    assert!(
        message.contains("Dockerfile:1: stage tools requests platform linux/arm64"),
        "{message}"
    );
    assert!(
        message.contains("this build is for linux/amd64"),
        "{message}"
    );
}

#[test]
fn stage_for_the_build_platform_is_built() {
    let work = temporary_dir();
    let text = "ARG BUILDPLATFORM=linux/amd64\nFROM --platform=$BUILDPLATFORM scratch\n";
    build_with(text, &settings(work.path(), None), &source(&[]))
        .expect("a stage for the build's own platform builds");
}
