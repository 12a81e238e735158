//! hoist against `buildah bud --isolation chroot` on the same Dockerfiles
//! and the same busybox base: the unpacked root filesystems are compared
//! file by file and the configs field by field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_build::bases::plan_build;
use hoist_build::sandbox::Sandbox;
use hoist_build::stage::{BuildSettings, LayoutSource, build};
use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::parse;
use hoist_dockerfile::stages::{BuildOptions, Platform as PlanPlatform};
use hoist_image::{ManifestFormat, Platform, write_oci_layout};
mod common;

use common::{FileServer, compressed_tar};
use hoist_testkit::{
    Aspect, BaseImage, Buildah, Exception, ImageSource, Registry, RegistryAccess, base_image,
    compare_rootfs_except, push_base_image, skopeo_inspect_config, unpack_image,
};

/// The config fields that must match.
const CONFIG_FIELDS: [&str; 8] = [
    "Env",
    "WorkingDir",
    "User",
    "Entrypoint",
    "Cmd",
    "Labels",
    "ExposedPorts",
    "StopSignal",
];

fn plan_platform() -> PlanPlatform {
    PlanPlatform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: String::new(),
    }
}

/// Builds `dockerfile` with hoist, resolving each reference of `bases` to
/// the cached layout of its image (the image pushed to the registry), and
/// returns the OCI layout.
fn build_with_hoist(
    dockerfile: &str,
    bases: &[(String, BaseImage)],
    build_args: &BTreeMap<String, String>,
    work: &Path,
) -> PathBuf {
    let context = work.join("context");
    let parsed = parse(dockerfile, "Dockerfile").expect("parse");
    let typed = instructions(&parsed).expect("typed instructions");
    let options = BuildOptions {
        build_args: build_args.clone(),
        target: None,
        target_platform: plan_platform(),
        build_platform: plan_platform(),
    };
    let mut source = LayoutSource::default();
    for (reference, image) in bases {
        let files = base_image(*image).expect("base image");
        source.insert(reference, files.layout, Some(image.manifest_tag()));
    }
    let platform = Platform::linux_amd64();
    let planned = plan_build(
        "Dockerfile",
        parsed.escape,
        &typed,
        &options,
        &platform,
        &source,
    )
    .expect("plan the build");
    let settings = BuildSettings {
        file: "Dockerfile".into(),
        work_parent: work.to_path_buf(),
        platform,
        build_args: build_args.clone(),
        compression: hoist_snapshot::Compression::Gzip { level: 6 },
        context: Some(context),
        snapshot: Default::default(),
        run_mounts: Default::default(),
        layer_mtime_epoch: None,
    };
    let sandbox = Sandbox::new(PathBuf::from(env!("CARGO_BIN_EXE_hoist-sandbox")));
    let output = build(&planned.plan, &settings, &sandbox, &planned.bases).expect("hoist build");
    let layout = work.join("hoist-layout");
    write_oci_layout(&output.image, ManifestFormat::Oci, &layout, &["test"]).expect("write layout");
    layout
}

/// Builds `dockerfile` with buildah and pushes the result to `registry`.
fn build_with_buildah(
    dockerfile: &str,
    registry: &Registry,
    extra: &[&str],
    work: &Path,
) -> ImageSource {
    let context = work.join("context");
    let file = context.join("Dockerfile");
    std::fs::write(&file, dockerfile).expect("write Dockerfile");
    let buildah = Buildah::new().expect("buildah storage");
    let access = RegistryAccess::of(registry);
    buildah
        .bud(&context, &file, "localhost/difference:test", &access, extra)
        .expect("buildah bud");
    let destination = registry.reference("test/buildah:1");
    buildah
        .push("localhost/difference:test", &destination, &access)
        .expect("buildah push");
    ImageSource::in_registry(registry, "test/buildah:1")
}

/// Returns the exceptions for differences that come from Buildah, not from
/// hoist. `buildah bud` 1.28.2 (Debian 12) leaves the empty mount points it
/// creates for a RUN step (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`
/// and `/run`) in the image when the base lacks them. BuildKit removes such
/// mount points after the step, and so does hoist.
fn buildah_mount_points() -> Vec<Exception> {
    vec![
        Exception::path("/etc/hostname"),
        Exception::path("/etc/hosts"),
        Exception::path("/etc/resolv.conf"),
        Exception::subtree("/run"),
    ]
}

/// Builds `template` (with `{base}` for the base image) with both tools and
/// asserts equal trees, apart from Buildah's own mount points and
/// `exceptions`, and equal config fields.
fn assert_same_as_buildah(image: BaseImage, template: &str, exceptions: &[Exception]) {
    assert_same_with_context(image, template, &[], exceptions);
}

/// Like [`assert_same_as_buildah`], with a build context that contains the
/// `(path, content)` files of `context_files`.
fn assert_same_with_context(
    image: BaseImage,
    template: &str,
    context_files: &[(&str, &str)],
    exceptions: &[Exception],
) {
    let write_files = |context: &Path| {
        for (path, content) in context_files {
            let path = context.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
            std::fs::write(path, content).expect("write context file");
        }
    };
    assert_same_with_prepared_context(image, template, write_files, exceptions);
}

/// Like [`assert_same_as_buildah`], with a build context that `prepare`
/// fills.
fn assert_same_with_prepared_context(
    image: BaseImage,
    template: &str,
    prepare: impl FnOnce(&Path),
    exceptions: &[Exception],
) {
    let registry = Registry::builder().start().expect("registry");
    push_base_image(&registry, image).expect("push base image");
    let base = registry.reference(&format!("{}:{}", image.repository(), image.manifest_tag()));
    let dockerfile = template.replace("{base}", &base);
    let work = tempfile::Builder::new()
        .prefix("hoist-build-differential-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory");
    let context = work.path().join("context");
    std::fs::create_dir(&context).expect("create context");
    prepare(&context);

    let bases = [(base, image)];
    compare_builds(
        &registry,
        work.path(),
        &dockerfile,
        &bases,
        &BTreeMap::new(),
        exceptions,
    );
}

/// Builds `dockerfile` in the context `<work>/context` with both tools and
/// asserts equal trees, apart from Buildah's own mount points and
/// `exceptions`, and equal config fields.
fn compare_builds(
    registry: &Registry,
    work: &Path,
    dockerfile: &str,
    bases: &[(String, BaseImage)],
    build_args: &BTreeMap<String, String>,
    exceptions: &[Exception],
) {
    let hoist_layout = build_with_hoist(dockerfile, bases, build_args, work);
    let hoist_source = ImageSource::in_layout(&hoist_layout, "test");
    let buildah_args: Vec<String> = build_args
        .iter()
        .flat_map(|(name, value)| ["--build-arg".to_owned(), format!("{name}={value}")])
        .collect();
    let buildah_args: Vec<&str> = buildah_args.iter().map(String::as_str).collect();
    let buildah_source = build_with_buildah(dockerfile, registry, &buildah_args, work);

    let hoist_root = work.join("hoist-rootfs");
    let buildah_root = work.join("buildah-rootfs");
    unpack_image(&hoist_source, &hoist_root).expect("unpack hoist image");
    unpack_image(&buildah_source, &buildah_root).expect("unpack buildah image");
    let mut all_exceptions = buildah_mount_points();
    all_exceptions.extend_from_slice(exceptions);
    let differences =
        compare_rootfs_except(&hoist_root, &buildah_root, &all_exceptions).expect("compare trees");
    assert!(differences.is_empty(), "{differences}");

    let hoist_config = skopeo_inspect_config(&hoist_source).expect("hoist config");
    let buildah_config = skopeo_inspect_config(&buildah_source).expect("buildah config");
    let mut buildah_config = buildah_config;
    // Buildah labels every image with its own version; BuildKit adds no
    // label.
    if let Some(labels) = buildah_config["config"]["Labels"].as_object_mut() {
        labels.remove("io.buildah.version");
        if labels.is_empty() {
            buildah_config["config"]["Labels"] = serde_json::Value::Null;
        }
    }
    for field in CONFIG_FIELDS {
        assert_eq!(
            hoist_config["config"][field], buildah_config["config"][field],
            "config field {field}"
        );
    }
    assert_eq!(hoist_config["architecture"], buildah_config["architecture"]);
    assert_eq!(hoist_config["os"], buildah_config["os"]);
}

#[test]
fn busybox_run_and_metadata_match() {
    let dockerfile = "\
ARG VERSION=1.0
FROM {base} AS builder
ARG VERSION
RUN mkdir -p /out && echo \"version $VERSION\" > /out/version
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd \\
 && printf 'app:x:1000:\\nstaff:x:50:app\\n' >> /etc/group \\
 && mkdir /data && chown app:app /data

FROM builder
ENV APP_HOME=/srv/app GREETING=hello
WORKDIR $APP_HOME
RUN echo \"$GREETING\" > hello && ln -s hello link && chmod 640 hello
USER app
RUN id > /data/id.txt && touch /data/by-app && echo \"$HOME\" > /data/home
WORKDIR sub
LABEL org.example.name=differential
EXPOSE 8080 53/udp
STOPSIGNAL SIGTERM
CMD [\"sh\", \"-c\", \"cat ../hello\"]
";
    assert_same_as_buildah(BaseImage::Busybox, dockerfile, &[]);
}

#[test]
fn base_env_expansion_matches() {
    let dockerfile = "\
FROM {base}
ENV PATH=/opt/tool/bin:$PATH
ARG SEEN=$PATH
RUN echo \"$SEEN\" > /seen-path
";
    assert_same_as_buildah(BaseImage::Busybox, dockerfile, &[]);
}

#[test]
fn busybox_entrypoint_and_shell_match() {
    let dockerfile = "\
FROM {base}
SHELL [\"/bin/sh\", \"-e\", \"-c\"]
RUN echo shell > /shell-form
RUN [\"/bin/sh\", \"-c\", \"echo exec > /exec-form\"]
RUN rm -rf /home && mkdir -p /etc/app && echo conf > /etc/app/conf
ENTRYPOINT [\"/bin/echo\"]
";
    assert_same_as_buildah(BaseImage::Busybox, dockerfile, &[]);
}

#[test]
fn debian_users_and_files_match() {
    let dockerfile = "\
FROM {base}
RUN groupadd -g 1500 builders && useradd -m -u 1500 -g builders -G users builder
RUN printf 'hello\\n' > /etc/motd && mkdir -p /opt/app && chown builder:builders /opt/app
USER builder
WORKDIR /opt/app
RUN id > ids && echo \"$HOME\" > home && ls -la /dev > dev-listing
USER root
RUN rm -rf /usr/share/doc && ln -s /opt/app /app
";
    // Buildah's chroot isolation binds the builder's whole /dev into RUN
    // steps, where BuildKit and hoist mount a minimal /dev, so the listing
    // differs by design.
    let dev_listing = Exception::path("/opt/app/dev-listing").only(Aspect::Content);
    // NOTE: no apt-get here: it would make the test depend on the mirror.
    assert_same_as_buildah(BaseImage::Debian, dockerfile, &[dev_listing]);
}

#[test]
fn busybox_copy_matches() {
    let dockerfile = "\
FROM {base}
WORKDIR /app
COPY a.txt ./
COPY dir /app/dir/
COPY dir/sub/b.txt /app/renamed
COPY --chown=nobody:nogroup --chmod=0600 a.txt /owned/deep/a
COPY a.txt dir/sub/b.txt /multi/
COPY hidden /hidden/
";
    let files = [
        ("a.txt", "a\n"),
        ("dir/sub/b.txt", "b\n"),
        ("dir/ignored.txt", "secret\n"),
        ("hidden/keep.txt", "kept\n"),
        ("hidden/drop.txt", "dropped\n"),
        (
            ".dockerignore",
            "dir/ignored.txt\nDockerfile\nhidden\n!hidden/keep.txt\n",
        ),
    ];
    assert_same_with_context(BaseImage::Busybox, dockerfile, &files, &[]);
}

#[test]
fn busybox_copy_rules_match() {
    use std::os::unix::fs::symlink;

    let dockerfile = "\
FROM {base}
RUN mkdir -p /srv/data /existing && ln -s /srv/data /data && chmod 0750 /existing \\
 && ln -s /srv/data/target /file-link && ln -s missing-target /dangling
COPY a.txt /file-link
COPY b.txt /dangling
COPY *.txt /star/
COPY dir?/*.txt /nested/
COPY [ab].txt c.m? /existing
COPY dir1/link /followed
COPY dir1 /tree/
COPY links /links/
COPY a.txt /data/
COPY --chown=1000:1001 dir2 /existing/
COPY --chown=1000:1001 --chmod=0640 a.txt /created/deep/
COPY private /private-slash/
COPY private /private-plain
COPY --chmod=0750 dir2 /chmod-tree/
";
    // NOTE: buildah 1.28 rejects --link, so the copy test covers it alone.
    let prepare = |context: &Path| {
        let files = [
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.md", "c\n"),
            ("dir1/x.txt", "x\n"),
            ("dir2/y.txt", "y\n"),
            ("dir2/sub/z.md", "z\n"),
            ("links/first", "shared\n"),
        ];
        for (path, content) in files {
            let path = context.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
            std::fs::write(path, content).expect("write context file");
        }
        symlink("x.txt", context.join("dir1/link")).expect("symlink");
        xattr::set(context.join("dir2/y.txt"), "user.origin", b"context").expect("set xattr");
        std::fs::create_dir(context.join("private")).expect("create private");
        std::fs::write(context.join("private/key"), "k\n").expect("write key");
        std::fs::set_permissions(
            context.join("private"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod private");
        std::fs::hard_link(context.join("links/first"), context.join("links/second"))
            .expect("hard link");
    };
    // Buildah 1.28.2 copies a file to a destination symlink by creating a
    // directory at the link's target and copying into it. hoist writes the
    // file at the target, as BuildKit resolves the destination in the root.
    // NOTE: BuildKit's result here is inferred, not compared with a build.
    let symlink_destinations = [
        Exception::subtree("/srv/data/target"),
        Exception::subtree("/missing-target"),
    ];
    assert_same_with_prepared_context(
        BaseImage::Busybox,
        dockerfile,
        prepare,
        &symlink_destinations,
    );
}

#[test]
fn busybox_add_archives_match() {
    let dockerfile = "\
FROM {base}
ADD archive.tar /plain/
ADD archive-gz.bin /gz
ADD archive-bz2.bin /bz2/
ADD archive-xz.bin /xz/
ADD archive-zst.bin /zst/
ADD not-an-archive.tar.gz text.gz /files/
ADD --chown=1000:1000 archive-gz.bin /owned/
";
    let prepare = |context: &Path| {
        std::fs::write(context.join("archive.tar"), compressed_tar("tar")).expect("write tar");
        for format in ["gz", "bz2", "xz", "zst"] {
            let path = context.join(format!("archive-{format}.bin"));
            std::fs::write(path, compressed_tar(format)).expect("write archive");
        }
        std::fs::write(context.join("not-an-archive.tar.gz"), "plain\n").expect("write file");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gzip, b"text\n").expect("gzip");
        std::fs::write(context.join("text.gz"), gzip.finish().expect("gzip")).expect("write");
    };
    // Buildah 1.28.2 ignores --chown for the entries of an extracted
    // archive and keeps the archive's owners. Docker applies --chown to
    // them, and so does hoist.
    let chown_ignored = Exception::subtree("/owned").only(Aspect::Owner);
    assert_same_with_prepared_context(BaseImage::Busybox, dockerfile, prepare, &[chown_ignored]);
}

#[test]
fn busybox_add_url_matches() {
    let server = FileServer::start(vec![
        ("/files/hello.txt", b"hello\n".to_vec()),
        ("/files/app.tar.gz", compressed_tar("gz")),
    ]);
    // NOTE: buildah 1.28 rejects --checksum, so the copy test covers it
    // alone.
    let dockerfile = format!(
        "FROM {{base}}\nADD {hello} /downloads/\nADD {archive} /downloads/\n\
         ADD --chown=1000:1000 --chmod=0644 {hello} /owned/\n",
        hello = server.url("/files/hello.txt"),
        archive = server.url("/files/app.tar.gz"),
    );
    assert_same_with_context(BaseImage::Busybox, &dockerfile, &[], &[]);
}

#[test]
fn busybox_copy_from_image_matches() {
    let dockerfile = "\
FROM {base} AS first
RUN echo stage > /stage-file && mkdir /out && echo a > /out/a.txt && echo b > /out/b.txt
FROM {base}
COPY --from=first /out/*.txt /from-stage/
COPY --from={base} /bin/busybox /copied/bin/
COPY --from={base} /etc/passwd /etc/group /copied/etc/
COPY --from=first /stage-file /
";
    assert_same_as_buildah(BaseImage::Busybox, dockerfile, &[]);
}

#[test]
fn debian_copy_and_add_match() {
    let dockerfile = "\
FROM {base}
COPY --chown=www-data:www-data site /var/www/site/
COPY --chown=nobody tools/*.sh /usr/local/bin/
ADD --chown=daemon:daemon site/page.html /srv/
ADD bundle.tar.xz /opt/bundle/
WORKDIR /opt/app
COPY site/page.html ./
";
    let prepare = |context: &Path| {
        std::fs::create_dir_all(context.join("site/assets")).expect("create site");
        std::fs::create_dir_all(context.join("tools")).expect("create tools");
        std::fs::write(context.join("site/page.html"), "<p>hi</p>\n").expect("write page");
        std::fs::write(context.join("site/assets/style.css"), "p {}\n").expect("write css");
        std::fs::write(context.join("tools/run.sh"), "#!/bin/sh\n").expect("write run.sh");
        std::fs::write(context.join("tools/build.sh"), "#!/bin/sh\n").expect("write build.sh");
        std::fs::write(context.join("bundle.tar.xz"), compressed_tar("xz")).expect("write xz");
    };
    assert_same_with_prepared_context(BaseImage::Debian, dockerfile, prepare, &[]);
}

/// A multi-stage build like a small project's: ARG before FROM, RUN,
/// COPY with `.dockerignore`, ENV, WORKDIR, a new user, USER and
/// `COPY --from` with several sources.
const SMOKE_DOCKERFILE: &str = "\
ARG REGISTRY=127.0.0.1:5000
FROM ${REGISTRY}/base/debian:bookworm AS build
RUN echo built > /built && dpkg-query -W -f '${Version}' dpkg > /dpkg-version
COPY src/ /input/
ENV NAME=smoke MESSAGE=\"two words\"
WORKDIR /stage
RUN echo \"$NAME $MESSAGE\" > message.txt && ls -l /input > listing.txt
RUN useradd -u 1200 -m worker
USER worker
RUN id > /tmp/who.txt && cp /tmp/who.txt /home/worker/who.txt

FROM ${REGISTRY}/base/busybox:latest
COPY --from=build /built /stage/message.txt /home/worker/who.txt /collected/
COPY --from=build /dpkg-version /collected/
COPY src/sub /sub-copy
ENV B=2
WORKDIR /srv
USER 65534
CMD [\"sh\", \"-c\", \"cat /collected/built\"]
";

#[test]
fn smoke_build_matches() {
    let registry = Registry::builder().start().expect("registry");
    push_base_image(&registry, BaseImage::Busybox).expect("push busybox");
    push_base_image(&registry, BaseImage::Debian).expect("push debian");
    let work = tempfile::Builder::new()
        .prefix("hoist-build-differential-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory");
    let context = work.path().join("context");
    std::fs::create_dir_all(context.join("src/sub")).expect("create context");
    std::fs::write(context.join("src/one.txt"), "one\n").expect("write one.txt");
    std::fs::write(context.join("src/sub/two.txt"), "two\n").expect("write two.txt");
    std::fs::write(context.join("src/scratch.tmp"), "ignored\n").expect("write scratch.tmp");
    std::os::unix::fs::symlink("one.txt", context.join("src/link-to-one")).expect("symlink");
    std::fs::write(context.join(".dockerignore"), "**/*.tmp\n").expect("write .dockerignore");

    let bases: Vec<(String, BaseImage)> = [BaseImage::Debian, BaseImage::Busybox]
        .into_iter()
        .map(|image| {
            let name = format!("{}:{}", image.repository(), image.manifest_tag());
            (registry.reference(&name), image)
        })
        .collect();
    let build_args = BTreeMap::from([("REGISTRY".to_owned(), registry.host().to_owned())]);
    compare_builds(
        &registry,
        work.path(),
        SMOKE_DOCKERFILE,
        &bases,
        &build_args,
        &[],
    );
}
