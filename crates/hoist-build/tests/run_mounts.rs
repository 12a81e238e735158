//! `RUN --mount` of type tmpfs, secret, cache and bind, on the busybox base.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_build::stage::{BuildOutput, BuildSettings};
use support::{build_with, settings, source, temporary_dir};

const SECRET: &str = "s3cret-value-for-hoist";

fn build(dockerfile: &str, settings: &BuildSettings) -> BuildOutput {
    build_with(dockerfile, settings, &source(&[])).expect("build")
}

fn target_root(output: &BuildOutput) -> PathBuf {
    let target = output
        .work_dir()
        .read_dir()
        .expect("read work dir")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.strip_prefix("stage-")?.parse::<usize>().ok())
        .max()
        .expect("a stage directory");
    output.work_dir().join(format!("stage-{target}/rootfs"))
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// Returns settings whose secret `token` is a file containing [`SECRET`].
fn secret_settings(work: &Path) -> BuildSettings {
    let file = work.join("token");
    std::fs::write(&file, SECRET).expect("write secret");
    let mut settings = settings(work, None);
    settings.run_mounts.secrets.insert("token".to_owned(), file);
    settings
}

/// Tells whether any layer the build wrote contains `needle`, uncompressed.
fn layers_contain(output: &BuildOutput, needle: &str) -> bool {
    output.image.layers()[1..].iter().any(|layer| {
        let unpacked = Command::new("gzip")
            .arg("-dc")
            .arg(layer.blob.path())
            .output()
            .expect("run gzip");
        assert!(
            unpacked.status.success(),
            "gzip -dc {:?}",
            layer.blob.path()
        );
        unpacked
            .stdout
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    })
}

#[test]
fn tmpfs_mount_stays_out_of_layer() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox\n\
        RUN --mount=type=tmpfs,target=/scratch,size=1m \
        echo hi > /scratch/x && grep ' /scratch tmpfs ' /proc/mounts > /mounts.txt\n";
    let output = build(dockerfile, &settings(work.path(), None));
    let root = target_root(&output);
    assert!(read(&root, "mounts.txt").contains("size=1024k"));
    assert!(!root.join("scratch").exists());
}

#[test]
fn secret_file_is_readable_not_stored() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox\n\
        RUN --mount=type=secret,id=token \
        test \"$(cat /run/secrets/token)\" = \"s3cret-value-for-hoist\" \
        && stat -c %a /run/secrets/token > /mode.txt \
        && cp /run/secrets/token /token-copy && rm /token-copy\n";
    let output = build(dockerfile, &secret_settings(work.path()));
    let root = target_root(&output);
    assert_eq!(read(&root, "mode.txt"), "400\n");
    assert!(!root.join("run/secrets").exists());
    assert!(!layers_contain(&output, SECRET));
}

#[test]
fn secret_env_reaches_command_only() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox\n\
        RUN --mount=type=secret,id=token,env=TOKEN \
        test \"$TOKEN\" = \"s3cret-value-for-hoist\" && echo checked > /checked\n";
    let output = build(dockerfile, &secret_settings(work.path()));
    assert_eq!(read(&target_root(&output), "checked"), "checked\n");
    let env = output.image.config().config.env.clone().unwrap_or_default();
    assert!(
        !env.iter().any(|variable| variable.contains(SECRET)),
        "{env:?}"
    );
    assert!(!layers_contain(&output, SECRET));
}

#[test]
fn missing_required_secret_is_error() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox\nRUN --mount=type=secret,id=nope,required true\n";
    let error = build_with(dockerfile, &settings(work.path(), None), &source(&[]))
        .expect_err("missing secret");
    assert_eq!(
        error.to_string(),
        "Dockerfile:2: secret \"nope\" is required but was not provided"
    );
}

#[test]
fn missing_optional_secret_is_skipped() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox\n\
        RUN --mount=type=secret,id=nope test ! -e /run/secrets/nope && touch /ran\n";
    let output = build(dockerfile, &settings(work.path(), None));
    assert!(target_root(&output).join("ran").exists());
}

#[test]
fn cache_mount_persists_between_builds() {
    let work = temporary_dir();
    let mut settings = settings(work.path(), None);
    settings.run_mounts.cache_dir = Some(work.path().join("caches"));
    let append = "FROM busybox\n\
        RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log\n";
    drop(build(append, &settings));
    let output = build(
        "FROM busybox\nRUN --mount=type=cache,target=/var/cache/app,sharing=locked \
         cp /var/cache/app/log /seen\n",
        &settings,
    );
    let root = target_root(&output);
    assert_eq!(read(&root, "seen"), "run\n");
    assert!(!root.join("var/cache/app").exists());
}

#[test]
fn bind_from_stage_is_read_only() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox AS data\nRUN echo data > /d.txt\n\
        FROM busybox\n\
        RUN --mount=type=bind,from=data,source=/d.txt,target=/mnt/d.txt cp /mnt/d.txt /copied\n\
        RUN --mount=type=bind,from=data,target=/src touch /src/new || echo refused > /refused\n";
    let output = build(dockerfile, &settings(work.path(), None));
    let root = target_root(&output);
    assert_eq!(read(&root, "copied"), "data\n");
    assert_eq!(read(&root, "refused"), "refused\n");
    assert!(!root.join("mnt").exists());
}

#[test]
fn read_write_bind_discards_writes() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox AS data\nRUN echo data > /d.txt\n\
        FROM busybox\n\
        RUN --mount=type=bind,from=data,target=/src,rw \
        echo changed > /src/d.txt && touch /src/new && cat /src/d.txt > /seen\n";
    let output = build(dockerfile, &settings(work.path(), None));
    let root = target_root(&output);
    assert_eq!(read(&root, "seen"), "changed\n");
    let data = output.work_dir().join("stage-0/rootfs");
    assert_eq!(read(&data, "d.txt"), "data\n");
    assert!(!data.join("new").exists());
}

#[test]
fn read_write_file_bind_is_unimplemented() {
    let work = temporary_dir();
    let dockerfile = "FROM busybox AS data\nRUN echo data > /d.txt\n\
        FROM busybox\n\
        RUN --mount=type=bind,from=data,source=/d.txt,target=/d.txt,rw true\n";
    let error = build_with(dockerfile, &settings(work.path(), None), &source(&[]))
        .expect_err("not implemented");
    assert_eq!(
        error.to_string(),
        "Dockerfile:4: RUN --mount type=bind,rw of a file is not implemented yet"
    );
}

#[test]
fn context_bind_stays_in_context() {
    let work = temporary_dir();
    let context = work.path().join("context");
    std::fs::create_dir(&context).expect("create context");
    std::fs::write(context.join("input.txt"), "input\n").expect("write input");
    let outside = work.path().join("outside.txt");
    std::fs::write(&outside, "outside\n").expect("write outside");
    std::os::unix::fs::symlink(&outside, context.join("escape")).expect("symlink");

    let settings = settings(work.path(), Some(&context));
    let reads_input = "FROM busybox\n\
        RUN --mount=type=bind,source=input.txt,target=/in.txt cp /in.txt /copied\n";
    let output = build(reads_input, &settings);
    assert_eq!(read(&target_root(&output), "copied"), "input\n");

    let escapes = "FROM busybox\n\
        RUN --mount=type=bind,source=escape,target=/m cat /m\n";
    let error = build_with(escapes, &settings, &source(&[])).expect_err("escape fails");
    let message = error.to_string();
    assert!(message.starts_with("Dockerfile:2: RUN cat /m"), "{message}");
    assert!(!message.contains("outside"), "{message}");
}

#[test]
fn context_bind_with_dockerignore_is_unimplemented() {
    let work = temporary_dir();
    let context = work.path().join("context");
    std::fs::create_dir(&context).expect("create context");
    std::fs::write(context.join(".dockerignore"), "secret.txt\n").expect("write ignore");
    let dockerfile = "FROM busybox\nRUN --mount=type=bind,target=/ctx true\n";
    let error = build_with(
        dockerfile,
        &settings(work.path(), Some(&context)),
        &source(&[]),
    )
    .expect_err("not implemented");
    assert_eq!(
        error.to_string(),
        "Dockerfile:2: RUN --mount type=bind from a context with a .dockerignore \
         is not implemented yet"
    );
}
