//! COPY and ADD on the testkit's busybox base: the files each rule puts in
//! the stage root, and the errors of sources that are missing, outside the
//! context or not supported.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use hoist_build::stage::BuildOutput;
use hoist_testkit::sha256_digest;

mod common;
mod support;

use common::{FileServer, LAST_MODIFIED_SECONDS, compressed_tar};

/// Builds `dockerfile` with `context`; `busybox` names the testkit's
/// busybox image in `FROM` and in `COPY --from`.
fn build_in(
    dockerfile: &str,
    work: &Path,
    context: &Path,
) -> Result<BuildOutput, Box<dyn std::error::Error>> {
    let settings = support::settings(work, Some(context));
    support::build_with(dockerfile, &settings, &support::source(&[]))
}

/// A work directory with an empty `context/` in it.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hoist-build-copy-")
            .tempdir_in("/var/tmp")
            .expect("temporary directory");
        std::fs::create_dir(dir.path().join("context")).expect("create context");
        Self { dir }
    }

    fn context(&self) -> PathBuf {
        self.dir.path().join("context")
    }

    fn write(&self, path: &str, content: &[u8]) -> PathBuf {
        let path = self.context().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
        std::fs::write(&path, content).expect("write context file");
        path
    }

    fn build(&self, dockerfile: &str) -> Result<BuildOutput, Box<dyn std::error::Error>> {
        build_in(dockerfile, &self.dir.path().join("builds"), &self.context())
    }

    /// Builds `dockerfile` and returns the output with the root of its last
    /// stage.
    fn build_root(&self, dockerfile: &str) -> (BuildOutput, PathBuf) {
        std::fs::create_dir_all(self.dir.path().join("builds")).expect("create builds");
        let output = self.build(dockerfile).expect("build");
        let stages = dockerfile.matches("FROM ").count();
        let root = output
            .work_dir()
            .join(format!("stage-{}/rootfs", stages - 1));
        (output, root)
    }

    fn build_error(&self, dockerfile: &str) -> String {
        std::fs::create_dir_all(self.dir.path().join("builds")).expect("create builds");
        self.build(dockerfile).expect_err("build fails").to_string()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {path:?}: {error}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|error| panic!("stat {path:?}: {error}"))
        .mode()
        & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let metadata = std::fs::symlink_metadata(path).expect("stat");
    (metadata.uid(), metadata.gid())
}

#[test]
fn wildcards_follow_go_match() {
    let work = Work::new();
    work.write("a.txt", b"a\n");
    work.write("b.txt", b"b\n");
    work.write("c.md", b"c\n");
    work.write("dir1/x.txt", b"x\n");
    work.write("dir2/y.txt", b"y\n");
    work.write("dir2/z.md", b"z\n");
    let dockerfile = "FROM busybox\nCOPY *.txt /star/\nCOPY dir?/*.txt /nested/\n\
                      COPY [ab].txt /class/\nCOPY c.m? /single\n";
    let (_output, root) = work.build_root(dockerfile);
    assert_eq!(read(&root.join("star/a.txt")), "a\n");
    assert_eq!(read(&root.join("star/b.txt")), "b\n");
    assert!(!root.join("star/c.md").exists());
    assert_eq!(read(&root.join("nested/x.txt")), "x\n");
    assert_eq!(read(&root.join("nested/y.txt")), "y\n");
    assert!(!root.join("nested/z.md").exists());
    assert!(root.join("class/a.txt").is_file());
    assert!(root.join("class/b.txt").is_file());
    assert_eq!(
        read(&root.join("single")),
        "c\n",
        "one match names the file"
    );
}

#[test]
fn wildcard_without_match_fails() {
    let work = Work::new();
    work.write("a.txt", b"a\n");
    let error = work.build_error("FROM busybox\nCOPY *.rs /src/\n");
    assert_eq!(
        error,
        "Dockerfile:2: no files in the build context match the pattern \"*.rs\""
    );
    let error = work.build_error("FROM busybox\nCOPY [a.txt /src/\n");
    assert_eq!(error, "Dockerfile:2: invalid wildcard pattern \"[a.txt\"");
}

#[test]
fn several_sources_need_directory_destination() {
    let work = Work::new();
    work.write("a.txt", b"a\n");
    work.write("b.txt", b"b\n");
    let error = work.build_error("FROM busybox\nCOPY a.txt b.txt /files\n");
    assert_eq!(
        error,
        "Dockerfile:2: several sources need a directory destination: \
         end \"/files\" with / or create it first"
    );
    let error = work.build_error("FROM busybox\nCOPY *.txt /files\n");
    assert!(
        error.contains("several sources need a directory"),
        "{error}"
    );
    let (_output, root) =
        work.build_root("FROM busybox\nRUN mkdir /files\nCOPY a.txt b.txt /files\n");
    assert!(root.join("files/a.txt").is_file(), "an existing directory");
    assert!(root.join("files/b.txt").is_file());
}

#[test]
fn symlinks_followed_only_as_sources() {
    let work = Work::new();
    work.write("dir/a.txt", b"a\n");
    symlink("a.txt", work.context().join("dir/link")).expect("symlink");
    symlink("dir", work.context().join("dir-link")).expect("symlink");
    let dockerfile = "FROM busybox\nCOPY dir/link /followed\nCOPY dir-link /through/\n";
    let (_output, root) = work.build_root(dockerfile);
    let followed = std::fs::symlink_metadata(root.join("followed")).expect("stat");
    assert!(
        followed.is_file(),
        "a symlink named as the source is followed"
    );
    assert_eq!(read(&root.join("followed")), "a\n");
    let link_target =
        std::fs::read_link(root.join("through/link")).expect("link inside a directory");
    assert_eq!(link_target, Path::new("a.txt"));
}

#[test]
fn hardlinks_stay_hardlinks() {
    let work = Work::new();
    let first = work.write("dir/first", b"shared\n");
    std::fs::hard_link(&first, work.context().join("dir/second")).expect("hard link");
    let (output, root) = work.build_root("FROM busybox\nCOPY dir /linked/\n");
    let first = std::fs::metadata(root.join("linked/first")).expect("stat first");
    let second = std::fs::metadata(root.join("linked/second")).expect("stat second");
    assert_eq!(first.ino(), second.ino());

    let layer = output.image.layers().last().expect("a COPY layer");
    let blob = layer.open().expect("open layer");
    let decoder = flate2::read::GzDecoder::new(blob);
    let mut archive = tar::Archive::new(decoder);
    let links: Vec<String> = archive
        .entries()
        .expect("entries")
        .map(|entry| entry.expect("entry"))
        .filter(|entry| entry.header().entry_type() == tar::EntryType::Link)
        .map(|entry| entry.path().expect("path").to_string_lossy().into_owned())
        .collect();
    assert_eq!(links, ["linked/second"], "the layer stores one hardlink");
}

#[test]
fn special_files_and_xattrs_copied() {
    use std::os::unix::fs::FileTypeExt;

    let work = Work::new();
    let file = work.write("tree/file", b"f\n");
    xattr::set(&file, "user.origin", b"context").expect("set user xattr");
    let fifo = work.context().join("tree/fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .expect("mkfifo");
    let device = work.context().join("tree/null");
    let null = rustix::fs::makedev(1, 3);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &device,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        null,
    )
    .expect("mknod");
    let (output, root) =
        work.build_root("FROM busybox\nCOPY tree /special/\nCOPY tree/file /top\n");

    let copied_fifo = std::fs::symlink_metadata(root.join("special/fifo")).expect("stat fifo");
    assert!(copied_fifo.file_type().is_fifo());
    assert_eq!(copied_fifo.mode() & 0o7777, 0o640);
    let copied_device = std::fs::symlink_metadata(root.join("special/null")).expect("stat null");
    assert!(copied_device.file_type().is_char_device());
    assert_eq!(copied_device.rdev(), null);
    for path in ["special/file", "top"] {
        let value = xattr::get(root.join(path), "user.origin").expect("read xattr");
        assert_eq!(value.as_deref(), Some(&b"context"[..]), "{path}");
    }

    let layer = output.image.layers().last().expect("a COPY layer");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer.open().expect("open")));
    let mut entries = archive.entries().expect("entries");
    let top = entries
        .find_map(|entry| {
            let mut entry = entry.expect("entry");
            let is_top = entry.path().expect("path") == Path::new("top");
            is_top.then(|| {
                let extensions = entry.pax_extensions().expect("pax").expect("pax records");
                extensions
                    .map(|extension| extension.expect("record").key().expect("key").to_owned())
                    .collect::<Vec<_>>()
            })
        })
        .expect("top in the layer");
    assert!(
        top.contains(&"SCHILY.xattr.user.origin".to_owned()),
        "{top:?}"
    );
}

#[test]
fn destination_resolves_inside_root() {
    let work = Work::new();
    work.write("a.txt", b"a\n");
    let dockerfile = "FROM busybox\nRUN mkdir /srv && ln -s /srv /app && ln -s ../../../../.. /up \\\n\
                      && ln -s /srv/target /file-link && ln -s /../../../../hoist-escaped /evil\n\
                      COPY a.txt /app/\nCOPY a.txt /up/escaped.txt\nCOPY a.txt /file-link\n\
                      COPY a.txt /evil\n";
    let (output, root) = work.build_root(dockerfile);
    assert_eq!(
        read(&root.join("srv/target")),
        "a\n",
        "a final symlink is followed"
    );
    assert!(root.join("file-link").is_symlink());
    assert_eq!(read(&root.join("hoist-escaped")), "a\n");
    assert!(!Path::new("/hoist-escaped").exists());
    assert_eq!(read(&root.join("srv/a.txt")), "a\n");
    assert!(root.join("app").is_symlink(), "the symlink stays");
    assert_eq!(read(&root.join("escaped.txt")), "a\n");
    let outside = output.work_dir().join("escaped.txt");
    assert!(!outside.exists());
    assert!(!work.dir.path().join("escaped.txt").exists());
}

#[test]
fn chown_spares_existing_directories() {
    let work = Work::new();
    work.write("tree/sub/file", b"f\n");
    let dockerfile = "FROM busybox\nRUN mkdir -p /existing && chmod 0750 /existing\n\
                      COPY --chown=1000:1001 tree /existing/\n\
                      COPY --chown=1000:1001 tree/sub/file /new/deep/file\n";
    let (_output, root) = work.build_root(dockerfile);
    assert_eq!(owner(&root.join("existing")), (0, 0));
    assert_eq!(mode(&root.join("existing")), 0o750);
    assert_eq!(owner(&root.join("existing/sub")), (1000, 1001));
    assert_eq!(owner(&root.join("existing/sub/file")), (1000, 1001));
    assert_eq!(owner(&root.join("new")), (1000, 1001));
    assert_eq!(owner(&root.join("new/deep")), (1000, 1001));
    assert_eq!(owner(&root.join("new/deep/file")), (1000, 1001));
    assert_eq!(owner(&root.join("bin")), (0, 0));
}

#[test]
fn symbolic_chmod_changes_bits() {
    let work = Work::new();
    let file = work.write("tree/file", b"f\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let script = work.write("tree/script", b"#!/bin/sh\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // NOTE: buildah 1.28 accepts octal --chmod only, so this checks the
    // tree alone.
    let dockerfile = "FROM busybox\nCOPY --chmod=u+x,g-r tree/file /one\n\
                      COPY --chmod=a=rX tree /tree/\n";
    let (_output, root) = work.build_root(dockerfile);
    assert_eq!(mode(&root.join("one")), 0o700);
    assert_eq!(mode(&root.join("tree/file")), 0o444);
    assert_eq!(mode(&root.join("tree/script")), 0o555);
    // An invalid mode such as `u+q` never gets here: resolving the plan
    // rejects it, as the hoist-dockerfile tests show.
}

#[test]
fn exclude_patterns_skip_entries() {
    let work = Work::new();
    work.write("docs/guide.md", b"g\n");
    work.write("docs/keep.txt", b"k\n");
    work.write("docs/skip/deep.txt", b"d\n");
    work.write("home.txt", b"h\n");
    work.write("home.rs", b"r\n");
    // NOTE: buildah 1.28 has no --exclude, so this checks the tree alone.
    let dockerfile = "FROM busybox\nCOPY --exclude=*.md --exclude=skip docs /docs/\n\
                      COPY --exclude=*.txt hom* /home-files/\n";
    let (_output, root) = work.build_root(dockerfile);
    assert!(root.join("docs/keep.txt").is_file());
    assert!(!root.join("docs/guide.md").exists());
    assert!(!root.join("docs/skip").exists());
    assert!(root.join("home-files/home.rs").is_file());
    assert!(!root.join("home-files/home.txt").exists());
}

#[test]
fn parents_keep_source_directories() {
    let work = Work::new();
    work.write("x/a.txt", b"a\n");
    work.write("y/a.txt", b"b\n");
    work.write("base/lib/c.txt", b"c\n");
    // NOTE: buildah 1.28 has no --parents, so this checks the tree alone.
    let dockerfile = "FROM busybox\nCOPY --parents x/a.txt y/a.txt /p/\n\
                      COPY --parents ./base/./lib/*.txt /pivot/\nCOPY --parents x /dirs/\n";
    let (_output, root) = work.build_root(dockerfile);
    assert_eq!(read(&root.join("p/x/a.txt")), "a\n");
    assert_eq!(read(&root.join("p/y/a.txt")), "b\n");
    assert_eq!(read(&root.join("pivot/lib/c.txt")), "c\n");
    assert_eq!(read(&root.join("dirs/x/a.txt")), "a\n");
}

#[test]
fn sources_never_leave_context() {
    let work = Work::new();
    work.write("inside/a.txt", b"a\n");
    symlink("/etc", work.context().join("etc-link")).expect("symlink");
    symlink("../../..", work.context().join("up-link")).expect("symlink");
    let cases = [
        ("../../etc/passwd", "source \"../../etc/passwd\" not found"),
        ("etc-link/passwd", "source \"etc-link/passwd\" not found"),
        (
            "up-link/etc/passwd",
            "source \"up-link/etc/passwd\" not found",
        ),
        (
            "etc-link/*",
            "no files in the build context match the pattern \"etc-link/*\"",
        ),
        (
            "up-link/etc/pass*",
            "match the pattern \"up-link/etc/pass*\"",
        ),
    ];
    for (source, expected) in cases {
        let error = work.build_error(&format!("FROM busybox\nCOPY {source} /stolen/\n"));
        assert!(error.starts_with("Dockerfile:2: "), "{error}");
        assert!(error.contains(expected), "{source}: {error}");
    }
    let (_output, root) = work.build_root("FROM busybox\nCOPY up-link/inside /kept/\n");
    assert_eq!(
        read(&root.join("kept/a.txt")),
        "a\n",
        "`..` stops at the context"
    );
}

#[test]
fn add_extracts_local_archives() {
    let work = Work::new();
    let formats = ["tar", "gz", "bz2", "xz", "zst"];
    let mut dockerfile = String::from("FROM busybox\n");
    for format in formats {
        // Names that hide the format: detection reads the content.
        work.write(&format!("archive-{format}.bin"), &compressed_tar(format));
        dockerfile.push_str(&format!("ADD archive-{format}.bin /x-{format}\n"));
    }
    let (_output, root) = work.build_root(&dockerfile);
    for format in formats {
        let directory = root.join(format!("x-{format}/pkg"));
        assert_eq!(read(&directory.join("data")), "hello\n", "{format}");
        assert_eq!(owner(&directory.join("data")), (1234, 1234), "{format}");
        assert_eq!(mode(&directory.join("data")), 0o640, "{format}");
        let data = std::fs::metadata(directory.join("data")).expect("stat data");
        let link = std::fs::metadata(directory.join("data-link")).expect("stat link");
        assert_eq!(data.ino(), link.ino(), "{format}: hardlink kept");
        assert_eq!(data.mtime(), 1_000_000_000, "{format}");
        let target = std::fs::read_link(directory.join("current")).expect("symlink");
        assert_eq!(target, Path::new("data"), "{format}");
    }
}

#[test]
fn add_copies_non_archives_as_files() {
    let work = Work::new();
    work.write("plain.tar.gz", b"not an archive\n");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(b"compressed text, no tar\n").expect("gzip");
    let gzip = gzip.finish().expect("gzip");
    work.write("text.gz", &gzip);
    let dockerfile = "FROM busybox\nADD plain.tar.gz text.gz /files/\n\
                      ADD --chown=1000:1000 --chmod=0751 plain.tar.gz /owned\n";
    let (_output, root) = work.build_root(dockerfile);
    assert_eq!(read(&root.join("files/plain.tar.gz")), "not an archive\n");
    let copied = std::fs::read(root.join("files/text.gz")).expect("read text.gz");
    assert_eq!(copied, gzip);
    assert_eq!(owner(&root.join("owned")), (1000, 1000));
    assert_eq!(mode(&root.join("owned")), 0o751);
}

#[test]
fn add_archive_stays_in_destination() {
    let work = Work::new();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    let name = b"../../../escaped";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder
        .append(&header, &b"bad\n"[..])
        .expect("append entry");
    work.write("evil.tar", &builder.into_inner().expect("finish tar"));
    let error = work.build_error("FROM busybox\nADD evil.tar /unpacked/\n");
    assert!(
        error.starts_with("Dockerfile:2: failed to extract the archive"),
        "{error}"
    );
    assert!(!work.dir.path().join("escaped").exists());
}

#[test]
fn add_downloads_urls() {
    let archive = compressed_tar("gz");
    let server = FileServer::start(vec![
        ("/files/hello.txt", b"hello\n".to_vec()),
        ("/files/app.tar.gz", archive.clone()),
    ]);
    let work = Work::new();
    // NOTE: buildah 1.28 rejects --checksum; the differential test covers
    // downloads without it.
    let good = sha256_digest(b"hello\n");
    let dockerfile = format!(
        "FROM busybox\nADD {hello} /downloads/\nADD {archive} /downloads/\n\
         ADD --checksum={good} --chown=1000:1000 --chmod=0644 {hello} /named\n",
        hello = server.url("/files/hello.txt"),
        archive = server.url("/files/app.tar.gz"),
    );
    let (_output, root) = work.build_root(&dockerfile);
    let hello = root.join("downloads/hello.txt");
    assert_eq!(read(&hello), "hello\n");
    assert_eq!(mode(&hello), 0o600);
    assert_eq!(owner(&hello), (0, 0));
    let modified = std::fs::metadata(&hello).expect("stat").mtime();
    assert_eq!(modified, LAST_MODIFIED_SECONDS, "mtime from Last-Modified");
    let downloaded = std::fs::read(root.join("downloads/app.tar.gz")).expect("read archive");
    assert_eq!(downloaded, archive, "a downloaded archive is not extracted");
    assert_eq!(owner(&root.join("named")), (1000, 1000));
    assert_eq!(mode(&root.join("named")), 0o644);
}

#[test]
fn add_rejects_bad_downloads() {
    let server = FileServer::start(vec![("/hello.txt", b"hello\n".to_vec())]);
    let work = Work::new();
    work.write("local.txt", b"local\n");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let actual = sha256_digest(b"hello\n");
    let url = server.url("/hello.txt");
    let error = work.build_error(&format!("FROM busybox\nADD --checksum={wrong} {url} /h\n"));
    assert_eq!(
        error,
        format!("Dockerfile:2: checksum mismatch for {url}: expected {wrong}, got {actual}")
    );
    let missing = server.url("/missing");
    let error = work.build_error(&format!("FROM busybox\nADD {missing} /m\n"));
    assert_eq!(
        error,
        format!("Dockerfile:2: failed to download {missing}: HTTP status 404 Not Found")
    );
    let error = work.build_error(&format!(
        "FROM busybox\nADD --checksum={actual} local.txt /l\n"
    ));
    assert_eq!(
        error,
        "Dockerfile:2: --checksum applies to URL sources only, not to \"local.txt\""
    );
    let error = work.build_error(&format!("FROM busybox\nCOPY {url} /c\n"));
    assert!(error.contains("use ADD for URL sources"), "{error}");
}

#[test]
fn failures_remove_work_directory() {
    let work = Work::new();
    work.write("a.txt", b"a\n");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let server = FileServer::start(vec![("/a.txt", b"a\n".to_vec())]);
    let cases = [
        (
            "COPY --chown=ghost a.txt /a".to_owned(),
            "Dockerfile:2: invalid --chown value \"ghost\"".to_owned(),
        ),
        (
            "COPY missing.txt /a".to_owned(),
            "Dockerfile:2: source \"missing.txt\" not found in the build context".to_owned(),
        ),
        (
            format!("ADD --checksum={wrong} {} /a", server.url("/a.txt")),
            "Dockerfile:2: checksum mismatch".to_owned(),
        ),
    ];
    for (instruction, expected) in cases {
        let error = work.build_error(&format!("FROM busybox\n{instruction}\n"));
        assert!(error.starts_with(&expected), "{instruction}: {error}");
        let left: Vec<_> = std::fs::read_dir(work.dir.path().join("builds"))
            .expect("read work parent")
            .collect();
        assert!(left.is_empty(), "{instruction}: {left:?}");
    }
}

#[test]
fn git_sources_are_unsupported() {
    let work = Work::new();
    let error =
        work.build_error("FROM busybox\nADD --keep-git-dir=true git@git.invalid:a.git /src\n");
    assert_eq!(
        error,
        "Dockerfile:2: ADD --keep-git-dir is not supported yet"
    );
    let error = work.build_error("FROM busybox\nADD https://git.invalid/repo.git /src\n");
    assert_eq!(
        error,
        "Dockerfile:2: ADD from the Git repository \"https://git.invalid/repo.git\" \
         is not supported yet"
    );
}

#[test]
fn copy_from_image_reference() {
    let work = Work::new();
    let dockerfile = "FROM busybox\nRUN mkdir /marker\n\
                      FROM scratch\nCOPY --from=busybox /bin/busybox /bin/\n\
                      COPY --from=busybox /etc/passwd /etc/group /etc/\n";
    let (_output, root) = work.build_root(dockerfile);
    assert!(root.join("bin/busybox").is_file());
    assert!(root.join("etc/passwd").is_file());
    assert!(root.join("etc/group").is_file());
    assert!(!root.join("marker").exists(), "the image, not the stage");
    let error = work.build_error("FROM busybox\nCOPY --from=unknown /a /a\n");
    assert!(
        error.starts_with("Dockerfile:2: failed to use the image \"unknown\" of --from"),
        "{error}"
    );
}

#[test]
fn heredoc_sources_become_files() {
    // NOTE: buildah 1.28 reads `<<EOF` as a file name, so this checks the
    // tree alone.
    let work = Work::new();
    let dockerfile = "FROM busybox\nCOPY <<EOF /etc/greeting\nhello\nworld\nEOF\n\
                      COPY --chmod=0755 <<run.sh <<-notes.txt /heredocs/\n#!/bin/sh\nrun.sh\n\
                      \tindented\n\tnotes.txt\n";
    let (_output, root) = work.build_root(dockerfile);
    assert_eq!(read(&root.join("etc/greeting")), "hello\nworld\n");
    assert_eq!(mode(&root.join("etc/greeting")), 0o644);
    assert_eq!(read(&root.join("heredocs/run.sh")), "#!/bin/sh\n");
    assert_eq!(mode(&root.join("heredocs/run.sh")), 0o755);
    assert_eq!(read(&root.join("heredocs/notes.txt")), "indented\n");

    let escaping = "FROM busybox\nCOPY <<../../../escaped /h/\nbody\n../../../escaped\n";
    let (_output, root) = work.build_root(escaping);
    assert_eq!(read(&root.join("h/escaped")), "body\n");
    assert!(!work.dir.path().join("escaped").exists());
    assert!(!work.dir.path().join("builds/escaped").exists());
}

#[test]
fn heredoc_bodies_expand_variables() {
    let work = Work::new();
    let dockerfile = "FROM busybox\nARG FOO=bar\nARG GREETING=ignored\nENV GREETING=hello\n\
                      COPY <<EOF /expanded\necho \"$GREETING ${FOO}\"\nEOF\n\
                      COPY <<'EOF' /literal\necho \"$GREETING\"\nEOF\n\
                      ADD <<-EOF /chomped\n\t${FOO}\nEOF\n\
                      COPY <<EOF /escaped\n\\$FOO\nEOF\n";
    let (_output, root) = work.build_root(dockerfile);
    assert_eq!(read(&root.join("expanded")), "echo \"hello bar\"\n");
    assert_eq!(read(&root.join("literal")), "echo \"$GREETING\"\n");
    assert_eq!(read(&root.join("chomped")), "bar\n");
    // Expanded once: the escaped dollar stays a dollar.
    assert_eq!(read(&root.join("escaped")), "$FOO\n");
}

#[test]
fn link_destination_holds_only_directories() {
    // NOTE: buildah 1.28 rejects --link, so this checks the tree alone.
    let work = Work::new();
    work.write("a.txt", b"a\n");
    work.write("tree/b.txt", b"b\n");
    let dockerfile = "FROM busybox\n\
        RUN mkdir -p /srv /existing && ln -s /srv /app && chmod 0750 /existing \\\n\
         && echo old > /existing/old\n\
        COPY --link a.txt /app/\n\
        COPY --link tree /existing/\n\
        COPY --link --chown=1000:1000 a.txt /fresh/dir/\n";
    let (_output, root) = work.build_root(dockerfile);
    assert!(!root.join("app").is_symlink(), "the symlink is replaced");
    assert!(root.join("app").is_dir());
    assert_eq!(read(&root.join("app/a.txt")), "a\n");
    assert!(
        !root.join("srv/a.txt").exists(),
        "the symlink is not followed"
    );
    assert_eq!(read(&root.join("existing/old")), "old\n");
    assert_eq!(read(&root.join("existing/b.txt")), "b\n");
    assert_eq!(mode(&root.join("existing")), 0o750);
    assert_eq!(owner(&root.join("fresh")), (1000, 1000));
    assert_eq!(owner(&root.join("fresh/dir/a.txt")), (1000, 1000));
}
